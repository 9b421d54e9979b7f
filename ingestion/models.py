"""Sources (from configuration), batches and records (the data plane's durable state)."""
import uuid

from django.db import models

from .choices import BatchStage, RecordStatus, SourceType


class Source(models.Model):
    """A source adapter as applied from alpha/sources/*.yaml."""

    source_id = models.SlugField(max_length=100, unique=True)
    source_type = models.CharField(max_length=20, choices=SourceType.choices)
    enabled = models.BooleanField(default=True)
    spec = models.JSONField(help_text="The source's YAML, as applied (secrets only as references).")
    config_version = models.PositiveIntegerField()

    class Meta:
        ordering = ["source_id"]

    def __str__(self) -> str:
        return self.source_id


class Batch(models.Model):
    """Records moved together through the stages; the row is what tasks lock and advance."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    source_id = models.CharField(max_length=100, db_index=True)
    stage = models.CharField(max_length=20, choices=BatchStage.choices, default=BatchStage.VALIDATED)
    received = models.PositiveIntegerField(help_text="Records in the request or file.")
    accepted = models.PositiveIntegerField(default=0)
    rejected = models.PositiveIntegerField(default=0)
    origin = models.CharField(max_length=255, blank=True, help_text="Push client, file name or poll.")
    config_version = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True, db_index=True)
    sends = models.PositiveIntegerField(default=1, help_text="How many times its stage task was sent.")

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["stage", "updated_at"])]
        verbose_name_plural = "batches"


class Record(models.Model):
    id = models.UUIDField(primary_key=True, editable=False)
    # Indexed by (batch, status) below, which also serves lookups by batch alone.
    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="records", db_index=False)
    source_id = models.CharField(max_length=100)
    status = models.CharField(max_length=20, choices=RecordStatus.choices)
    payload = models.JSONField(help_text="The validated record as ingested.")
    data = models.JSONField(null=True, blank=True, help_text="The record after transformation.")
    quality_score = models.FloatField(null=True, blank=True)
    quality = models.JSONField(null=True, blank=True,
                               help_text="Quality scoring of Beta: level, per-dimension scores and issues.")
    reason = models.TextField(blank=True)
    ingested_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["source_id", "status"]),
            models.Index(fields=["batch", "status"]),
            models.Index(fields=["ingested_at"]),
            models.Index(fields=["status", "finished_at"]),
            models.Index(fields=["quality_score"]),
        ]


class ValidationFailure(models.Model):
    """A record refused at ingestion, with where and why."""

    source_id = models.CharField(max_length=100, db_index=True)
    batch = models.ForeignKey(Batch, null=True, blank=True, on_delete=models.SET_NULL)
    error_code = models.CharField(max_length=50)
    field = models.CharField(max_length=255, blank=True)
    message = models.TextField()
    raw = models.TextField(blank=True, help_text="The record as received, capped in size.")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]


class FileQuarantine(models.Model):
    """A file of a file source that could not be read as a whole, moved aside with its reason."""

    source_id = models.CharField(max_length=100, db_index=True)
    file_name = models.CharField(max_length=500)
    moved_to = models.CharField(max_length=1000)
    reason = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]


class IngestedFile(models.Model):
    """A file of a file source already taken in; a file seen again (same name and content) is not re-read."""

    source_id = models.CharField(max_length=100)
    file_name = models.CharField(max_length=500)
    sha256 = models.CharField(max_length=64)
    records = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["source_id", "file_name", "sha256"], name="one_ingest_per_file_content")
        ]
