from django.db import models


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    HELD = "held", "Held (circuit breaker open)"
    DELIVERED = "delivered", "Delivered"
    DLQ = "dlq", "Dead letter queue"


class FailureCategory(models.TextChoices):
    TRANSIENT = "transient", "Transient"
    PERMANENT = "permanent", "Permanent"
    AUTHORIZATION = "authorization", "Authorization"
    TRANSFORM = "transform", "Transform"


class DeadLetterState(models.TextChoices):
    """The review workflow of Runbook C.2."""

    NEW = "new", "New"
    TRIAGED = "triaged", "Triaged"
    CORRECTED = "corrected", "Corrected"
    REPLAYED = "replayed", "Replayed"
    EXPORTED = "exported", "Exported"
    PURGED = "purged", "Purged"


# Entries still waiting for a decision: what gamma_dlq_size counts.
DLQ_OPEN_STATES = (DeadLetterState.NEW, DeadLetterState.TRIAGED, DeadLetterState.CORRECTED, DeadLetterState.EXPORTED)


class BreakerState(models.TextChoices):
    CLOSED = "closed", "CLOSED"
    OPEN = "open", "OPEN"
    HALF_OPEN = "half_open", "HALF_OPEN"


# gamma_circuit_breaker_state values: the manual alerts on `gamma_circuit_breaker_state == 1` (OPEN).
BREAKER_STATE_VALUE = {BreakerState.CLOSED: 0, BreakerState.OPEN: 1, BreakerState.HALF_OPEN: 2}


class OperationKind(models.TextChoices):
    DLQ_REPLAY = "dlq_replay", "DLQ replay"
    DLQ_EXPORT = "dlq_export", "DLQ export"


class OperationStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"
