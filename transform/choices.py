from django.db import models


class EnrichmentType(models.TextChoices):
    POSTGRESQL = "postgresql", "PostgreSQL table or query"
    HTTP = "http", "HTTP API by key"
    CSV = "csv", "CSV file"


class RefreshState(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class QualityLevel(models.TextChoices):
    OK = "ok", "OK"
    WARN = "warn", "Warning"
    ERROR = "error", "Error"
    REJECT = "reject", "Rejected"
