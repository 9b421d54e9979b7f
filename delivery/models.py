"""Destinations and routing (from configuration), deliveries and the dead letter queue."""
from django.conf import settings
from django.db import models
from django_fsm import FSMField, transition

from ingestion.models import Batch, Record

from .choices import (
    BreakerState, DeadLetterState, DeliveryStatus, FailureCategory, OperationKind, OperationStatus,
)


class Destination(models.Model):
    destination_id = models.SlugField(max_length=100, unique=True)
    destination_type = models.CharField(max_length=20, help_text="connection.type (postgresql, file).")
    enabled = models.BooleanField(default=True)
    spec = models.JSONField(help_text="The destination's YAML, as applied (secrets only as references).")
    config_version = models.PositiveIntegerField()

    class Meta:
        ordering = ["destination_id"]

    def __str__(self) -> str:
        return self.destination_id


class RoutingRule(models.Model):
    rule_id = models.CharField(max_length=100, unique=True)
    enabled = models.BooleanField(default=True)
    priority = models.IntegerField(default=1000)
    destination_id = models.CharField(max_length=100)
    spec = models.JSONField()
    config_version = models.PositiveIntegerField()

    class Meta:
        ordering = ["priority", "rule_id"]

    def __str__(self) -> str:
        return self.rule_id


class BatchDelivery(models.Model):
    """The records of one batch bound for one destination: the unit gamma tasks deliver and retry."""

    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="deliveries")
    destination_id = models.CharField(max_length=100, db_index=True)
    record_ids = models.JSONField(help_text="Record ids (strings) routed to this destination.")
    status = models.CharField(max_length=20, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    last_http_status = models.PositiveSmallIntegerField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["batch", "destination_id"], name="one_delivery_per_batch_destination")]
        indexes = [models.Index(fields=["status", "next_attempt_at"]), models.Index(fields=["destination_id", "status"])]


class DeliveryAttempt(models.Model):
    """One try of one batch delivery: what the destination status, latency and errors pages read."""

    delivery = models.ForeignKey(BatchDelivery, on_delete=models.CASCADE, related_name="attempt_log")
    destination_id = models.CharField(max_length=100)
    at = models.DateTimeField()
    ok = models.BooleanField()
    records = models.PositiveIntegerField()
    duration_ms = models.PositiveIntegerField()
    category = models.CharField(max_length=20, choices=FailureCategory.choices, blank=True)
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["destination_id", "at"])]


class DeadLetter(models.Model):
    """A (record, destination) that could not be delivered, and its review (Runbook C.2).

    NEW -> TRIAGED -> REPLAYED; NEW/TRIAGED -> CORRECTED -> REPLAYED; -> EXPORTED; -> PURGED.
    A replay that fails again creates a new entry; the replayed one stays as history.
    """

    record = models.ForeignKey(Record, on_delete=models.CASCADE, related_name="dead_letters")
    batch = models.ForeignKey(Batch, on_delete=models.CASCADE)
    source_id = models.CharField(max_length=100, db_index=True)
    destination_id = models.CharField(max_length=100, db_index=True, blank=True, help_text="Empty for transform failures.")
    category = models.CharField(max_length=20, choices=FailureCategory.choices)
    reason = models.TextField()
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    attempts = models.PositiveIntegerField()
    first_failed_at = models.DateTimeField()
    last_failed_at = models.DateTimeField()
    retry_eligible = models.BooleanField()
    state = FSMField(default=DeadLetterState.NEW, choices=DeadLetterState.choices, protected=True, db_index=True)
    original_payload = models.JSONField(null=True, blank=True, help_text="The record before an operator's correction.")
    corrected_payload = models.JSONField(null=True, blank=True)
    note = models.TextField(blank=True)
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-last_failed_at", "-id"]

    def __str__(self) -> str:
        return f"DLQ #{self.pk} {self.destination_id or 'transform'} {self.state}"

    @transition(field=state, source=DeadLetterState.NEW, target=DeadLetterState.TRIAGED)
    def triage(self) -> None:
        """An operator has looked at it."""

    @transition(field=state, source=[DeadLetterState.NEW, DeadLetterState.TRIAGED], target=DeadLetterState.CORRECTED)
    def correct(self) -> None:
        """The payload was edited; the original is kept."""

    @transition(
        field=state, source=[DeadLetterState.NEW, DeadLetterState.TRIAGED, DeadLetterState.CORRECTED],
        target=DeadLetterState.REPLAYED,
    )
    def replay(self) -> None:
        """Sent through delivery again (a new entry records a new failure)."""

    @transition(
        field=state, source=[DeadLetterState.NEW, DeadLetterState.TRIAGED, DeadLetterState.CORRECTED],
        target=DeadLetterState.EXPORTED,
    )
    def export(self) -> None:
        """Handed over for processing outside the pipeline."""

    @transition(
        field=state,
        source=[DeadLetterState.NEW, DeadLetterState.TRIAGED, DeadLetterState.CORRECTED, DeadLetterState.EXPORTED],
        target=DeadLetterState.PURGED,
    )
    def purge(self) -> None:
        """Removed from the queue for good, with a reason."""


class CircuitBreaker(models.Model):
    """The breaker of one destination (Runbook C.3). CLOSED -> OPEN -> HALF_OPEN -> CLOSED | OPEN."""

    destination_id = models.CharField(max_length=100, unique=True)
    state = FSMField(default=BreakerState.CLOSED, choices=BreakerState.choices, protected=True)
    opened_at = models.DateTimeField(null=True, blank=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    window_started_at = models.DateTimeField(null=True, blank=True)
    window_successes = models.PositiveIntegerField(default=0)
    window_failures = models.PositiveIntegerField(default=0)
    reason = models.TextField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["destination_id"]

    def __str__(self) -> str:
        return f"{self.destination_id}: {self.get_state_display()}"

    @transition(field=state, source=[BreakerState.CLOSED, BreakerState.HALF_OPEN], target=BreakerState.OPEN)
    def trip(self) -> None:
        """Too many failures (or a failed probe): hold deliveries."""

    @transition(field=state, source=BreakerState.OPEN, target=BreakerState.HALF_OPEN)
    def probe(self) -> None:
        """The cool-down passed: let a probe delivery through."""

    @transition(field=state, source=[BreakerState.HALF_OPEN, BreakerState.OPEN], target=BreakerState.CLOSED)
    def close(self) -> None:
        """A probe succeeded, or an operator reset the breaker."""


class BreakerTransition(models.Model):
    """Every breaker transition with its reason (incidents are opened from these)."""

    destination_id = models.CharField(max_length=100, db_index=True)
    source_state = models.CharField(max_length=20, choices=BreakerState.choices)
    target_state = models.CharField(max_length=20, choices=BreakerState.choices)
    reason = models.TextField()
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-at", "-id"]


class OperationRun(models.Model):
    """A long DLQ replay or export running as a task, with its progress."""

    kind = models.CharField(max_length=20, choices=OperationKind.choices)
    status = models.CharField(max_length=20, choices=OperationStatus.choices, default=OperationStatus.QUEUED)
    params = models.JSONField(default=dict)
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    result = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
