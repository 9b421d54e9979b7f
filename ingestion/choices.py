from django.db import models


class SourceType(models.TextChoices):
    REST_API = "rest_api", "REST API (polled)"
    HTTP_PUSH = "http_push", "HTTP push"
    FILE = "file", "File directory"


class BatchStage(models.TextChoices):
    """Where a batch is. Each stage is owned by one module's task; the sweeper re-sends stuck ones."""

    VALIDATED = "validated", "Validated, awaiting transformation"
    TRANSFORMED = "transformed", "Transformed, awaiting delivery"
    DONE = "done", "Done"


class RecordStatus(models.TextChoices):
    """The one accounted place of a record (DESIGN.md §3)."""

    VALIDATED = "validated", "In flight: awaiting transformation"
    ROUTED = "routed", "In flight: awaiting delivery"
    REJECTED = "rejected", "Rejected"
    FILTERED = "filtered", "Filtered"
    DELIVERED = "delivered", "Delivered"
    HELD = "held", "Held (circuit breaker open)"
    DLQ = "dlq", "Dead letter queue"


IN_FLIGHT_STATUSES = (RecordStatus.VALIDATED, RecordStatus.ROUTED)
