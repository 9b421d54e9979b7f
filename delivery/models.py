"""Destinations and routing (from configuration), deliveries and the dead letter queue."""
from django.db import models
from django_fsm import FSMField

from ingestion.models import Batch, Record

from .choices import DeadLetterState, DeliveryStatus, FailureCategory


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

    class Meta:
        constraints = [models.UniqueConstraint(fields=["batch", "destination_id"], name="one_delivery_per_batch_destination")]
        indexes = [models.Index(fields=["status", "next_attempt_at"])]


class DeadLetter(models.Model):
    """A (record, destination) that could not be delivered."""

    record = models.ForeignKey(Record, on_delete=models.CASCADE, related_name="dead_letters")
    batch = models.ForeignKey(Batch, on_delete=models.CASCADE)
    source_id = models.CharField(max_length=100, db_index=True)
    destination_id = models.CharField(max_length=100, db_index=True)
    category = models.CharField(max_length=20, choices=FailureCategory.choices)
    reason = models.TextField()
    attempts = models.PositiveIntegerField()
    first_failed_at = models.DateTimeField()
    last_failed_at = models.DateTimeField()
    retry_eligible = models.BooleanField()
    state = FSMField(default=DeadLetterState.NEW, choices=DeadLetterState.choices, protected=True)

    class Meta:
        ordering = ["-last_failed_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["record", "destination_id"], name="one_dead_letter_per_record_destination")]
