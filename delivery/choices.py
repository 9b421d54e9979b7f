from django.db import models


class DestinationType(models.TextChoices):
    POSTGRESQL = "postgresql", "PostgreSQL table"
    FILE = "file", "JSON lines files"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DELIVERED = "delivered", "Delivered"
    DLQ = "dlq", "Dead letter queue"


class FailureCategory(models.TextChoices):
    TRANSIENT = "transient", "Transient"
    PERMANENT = "permanent", "Permanent"
    AUTHORIZATION = "authorization", "Authorization"
    TRANSFORM = "transform", "Transform"


class DeadLetterState(models.TextChoices):
    NEW = "new", "New"
