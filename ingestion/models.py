"""Sources (from configuration), batches and records (the data plane's durable state)."""
import uuid

from django.db import models

from .choices import BatchStage, BufferEventKind, BufferLevel, FailureKind, RecordStatus, SourceHealth, SourceType


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
        indexes = [models.Index(fields=["stage", "updated_at"]), models.Index(fields=["source_id", "created_at"]),
                   models.Index(fields=["created_at"])]
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


# --- Module Alpha operation state -----------------------------------------------------------------
# Kept apart from Source: a reload replaces Source rows, while pauses, cursors and health must survive it.

class AlphaControl(models.Model):
    """The one row of Module Alpha's switches: pause all ingestion, the buffer's capacity."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1, editable=False)
    paused = models.BooleanField(default=False)
    paused_at = models.DateTimeField(null=True, blank=True)
    paused_by = models.CharField(max_length=150, blank=True)
    pause_reason = models.TextField(blank=True)
    buffer_capacity = models.PositiveIntegerField(
        null=True, blank=True, help_text="Records; empty means settings.ALPHA_BUFFER_CAPACITY.")
    buffer_level = models.CharField(max_length=20, choices=BufferLevel.choices, default=BufferLevel.NORMAL)
    buffer_level_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)


class SourceState(models.Model):
    """What Module Alpha knows of one source at run time: pause, incremental cursor, health, last poll."""

    source_id = models.CharField(max_length=100, unique=True)
    paused = models.BooleanField(default=False)
    paused_at = models.DateTimeField(null=True, blank=True)
    paused_by = models.CharField(max_length=150, blank=True)
    pause_reason = models.TextField(blank=True)
    cursor = models.JSONField(default=dict, blank=True,
                              help_text="Where the next poll resumes; advanced with the records it covers.")
    health = models.CharField(max_length=20, choices=SourceHealth.choices, default=SourceHealth.UNKNOWN)
    connected = models.BooleanField(null=True, blank=True, help_text="Last contact reached and authenticated.")
    consecutive_failures = models.PositiveIntegerField(default=0)
    last_poll_at = models.DateTimeField(null=True, blank=True)
    last_poll_outcome = models.CharField(max_length=20, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)
    last_error_kind = models.CharField(max_length=20, choices=FailureKind.choices, blank=True)
    last_error = models.TextField(blank=True)
    last_test = models.JSONField(null=True, blank=True, help_text="The answer of the last connectivity test.")
    poll_lease_until = models.DateTimeField(null=True, blank=True, help_text="A poll is running until then.")
    last_admitted_at = models.DateTimeField(null=True, blank=True, help_text="Last ingest admitted while throttled.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["source_id"]

    def __str__(self) -> str:
        return self.source_id


class SourceError(models.Model):
    """A failed poll, token request or file read of a source: counted, with its kind and reason."""

    source_id = models.CharField(max_length=100)
    kind = models.CharField(max_length=20, choices=FailureKind.choices)
    stage = models.CharField(max_length=20, blank=True, help_text="credentials, token, fetch, parse or file.")
    status_code = models.PositiveIntegerField(null=True, blank=True)
    message = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["source_id", "created_at"]), models.Index(fields=["created_at"])]


class OAuthToken(models.Model):
    """An OAuth2 access token of a source, shared by every worker until it expires.

    Keyed by a keyed hash of (token_url, client_id, client_secret, scope): rotated credentials get
    their own token at once. The token is stored sealed (configuration.secrets_at_rest, keyed from
    SECRET_KEY), never in clear; read and write it through ingestion.rest. Never shown by the console,
    the API or the admin."""

    source_id = models.CharField(max_length=100)
    credentials_key = models.CharField(max_length=64)
    sealed_token = models.TextField()
    token_type = models.CharField(max_length=40, default="Bearer")
    expires_at = models.DateTimeField()
    obtained_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["source_id", "credentials_key"], name="one_token_per_credentials")]

    def __str__(self) -> str:  # never the token, sealed or not
        return f"OAuth2 token of {self.source_id} (expires {self.expires_at:%Y-%m-%d %H:%M:%S})"


class BufferSample(models.Model):
    """alpha_buffer_utilization over time (the dashboard's buffer panel), taken every few seconds."""

    at = models.DateTimeField(db_index=True)
    buffered = models.PositiveIntegerField()
    capacity = models.PositiveIntegerField()
    by_source = models.JSONField(default=dict)

    class Meta:
        ordering = ["-at"]


class BufferEvent(models.Model):
    """Back-pressure level changes, resizes, drains, pauses: the buffer panel's events."""

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    kind = models.CharField(max_length=20, choices=BufferEventKind.choices)
    source_id = models.CharField(max_length=100, blank=True)
    level = models.CharField(max_length=20, choices=BufferLevel.choices, blank=True)
    utilization = models.FloatField(null=True, blank=True)
    detail = models.TextField(blank=True)
    actor = models.CharField(max_length=150, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
