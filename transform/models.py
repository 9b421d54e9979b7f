"""Module Beta state: rules, quality scoring and enrichment sources as applied from beta/*.yaml,
the drain switch, and cache refresh jobs."""
from django.conf import settings
from django.db import models

from .choices import RefreshState


class TransformRule(models.Model):
    rule_id = models.CharField(max_length=100, unique=True)
    name = models.CharField(max_length=255, blank=True)
    description = models.TextField(blank=True)
    enabled = models.BooleanField(default=True)
    priority = models.IntegerField(default=1000, help_text="Lower runs first.")
    spec = models.JSONField(help_text="The rule's YAML, as applied.")
    config_version = models.PositiveIntegerField()

    class Meta:
        ordering = ["priority", "rule_id"]

    def __str__(self) -> str:
        return self.rule_id


class QualityProfile(models.Model):
    """beta/quality/scoring.yaml as applied (one row)."""

    name = models.CharField(max_length=50, unique=True, default="default")
    spec = models.JSONField()
    config_version = models.PositiveIntegerField()


class EnrichmentSource(models.Model):
    """An enrichment source as applied from beta/enrichment/*.yaml (Runbook B.2)."""

    enrichment_id = models.CharField(max_length=100, unique=True)
    source_type = models.CharField(max_length=20, help_text="postgresql, http or csv.")
    enabled = models.BooleanField(default=True)
    spec = models.JSONField(help_text="The source's YAML, as applied (secrets only as references).")
    config_version = models.PositiveIntegerField()

    class Meta:
        ordering = ["enrichment_id"]

    def __str__(self) -> str:
        return self.enrichment_id


class BetaControl(models.Model):
    """Module Beta's intake switch (one row): while draining, ingestion accepts nothing new and the
    backlog is finished (`POST /api/beta/admin/drain`, then `/resume`)."""

    name = models.CharField(max_length=20, unique=True, default="beta")
    draining = models.BooleanField(default=False)
    changed_at = models.DateTimeField(null=True, blank=True)
    changed_by = models.CharField(max_length=150, blank=True)
    reason = models.TextField(blank=True)


class CacheRefresh(models.Model):
    """One enrichment cache refresh run in the background (Runbook B.2 steps 2-4)."""

    target = models.CharField(max_length=100, help_text="An enrichment_id, or 'all'.")
    state = models.CharField(max_length=20, choices=RefreshState.choices, default=RefreshState.QUEUED)
    sources_total = models.PositiveIntegerField(default=0)
    sources_done = models.PositiveIntegerField(default=0)
    keys_total = models.PositiveIntegerField(default=0)
    keys_done = models.PositiveIntegerField(default=0)
    current_source = models.CharField(max_length=100, blank=True)
    errors = models.JSONField(default=list, blank=True)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    requested_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-requested_at", "-id"]


class TransformRun(models.Model):
    """What transforming one batch did: one row per batch (never per record), for the Beta dashboard
    (throughput, rule heat map, schema mapping, enrichment, quality, worker resources)."""

    batch_id = models.UUIDField()
    source_id = models.CharField(max_length=100)
    schema = models.CharField(max_length=255, help_text="The source's schema_ref, or source:<id> without one.")
    at = models.DateTimeField(db_index=True)
    records = models.PositiveIntegerField()
    transformed = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0, help_text="Sent to the DLQ by a rule with on_failure: fail.")
    dropped = models.PositiveIntegerField(default=0)
    rejected = models.PositiveIntegerField(default=0)
    filtered = models.PositiveIntegerField(default=0, help_text="Matched no route.")
    warned = models.PositiveIntegerField(default=0)
    errored = models.PositiveIntegerField(default=0)
    quality_sum = models.FloatField(default=0.0)
    scored = models.PositiveIntegerField(default=0)
    duration_seconds = models.FloatField()
    rules = models.JSONField(default=dict, help_text="{rule_id: {executions, matches, failures, dropped, seconds}}")
    enrichment = models.JSONField(default=dict, help_text="{source: {lookups, hit, miss, stale, error, seconds}}")
    worker = models.CharField(max_length=200, blank=True)
    cpu_seconds = models.FloatField(default=0.0)
    rss_bytes = models.BigIntegerField(default=0)
    threads = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-at"]
