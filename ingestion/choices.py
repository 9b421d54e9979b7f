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


class SourceHealth(models.TextChoices):
    """Health of a source from its recent polls (or checks); recovers by itself on the next success."""

    UNKNOWN = "UNKNOWN", "Unknown (not polled yet)"
    HEALTHY = "HEALTHY", "Healthy"
    DEGRADED = "DEGRADED", "Degraded (failing, not yet unhealthy)"
    UNHEALTHY = "UNHEALTHY", "Unhealthy (consecutive failures)"


class FailureKind(models.TextChoices):
    """Why a poll, a token request or a source test failed; what an operator acts on."""

    SECRET = "secret", "Credential reference cannot be resolved"
    DNS = "dns", "Host name does not resolve"
    REFUSED = "refused", "Connection refused"
    TIMEOUT = "timeout", "Timed out"
    TLS = "tls", "TLS handshake or certificate failed"
    CONNECTION = "connection", "Connection failed"
    UNAUTHORIZED = "unauthorized", "HTTP 401 Unauthorized"
    FORBIDDEN = "forbidden", "HTTP 403 Forbidden"
    RATE_LIMITED = "rate_limited", "HTTP 429 Too Many Requests"
    SERVER_ERROR = "server_error", "HTTP 5xx server error"
    HTTP_ERROR = "http_error", "Other HTTP error status"
    TOKEN = "token", "Token endpoint answer unusable"
    HTML = "html", "HTML page instead of data"
    NOT_JSON = "not_json", "Body is not JSON"
    RECORD_PATH = "record_path", "record_path not found in the body"
    INVALID_UTF8 = "invalid_utf8", "Body is not valid UTF-8"
    PARSE = "parse", "Body cannot be parsed"
    DIRECTORY = "directory", "Directory missing or unreadable"


# Failure kinds that mean the endpoint was not reached or refused us (connection status 0).
CONNECTION_FAILURES = {
    FailureKind.SECRET, FailureKind.DNS, FailureKind.REFUSED, FailureKind.TIMEOUT, FailureKind.TLS,
    FailureKind.CONNECTION, FailureKind.UNAUTHORIZED, FailureKind.FORBIDDEN, FailureKind.TOKEN,
    FailureKind.DIRECTORY,
}
# Failure kinds about the body received (counted as parse errors too).
PARSE_FAILURES = {FailureKind.HTML, FailureKind.NOT_JSON, FailureKind.RECORD_PATH, FailureKind.INVALID_UTF8,
                  FailureKind.PARSE}


class BufferLevel(models.TextChoices):
    """Back-pressure level from alpha_buffer_utilization (DESIGN.md §3)."""

    NORMAL = "normal", "Normal (below 60%)"
    WARNING = "warning", "Warning (60% or more)"
    THROTTLE = "throttle", "Throttled (80% or more)"
    FULL = "full", "Full: polling and pushes paused (100%)"


class BufferEventKind(models.TextChoices):
    LEVEL = "level", "Back-pressure level changed"
    RESIZE = "resize", "Capacity resized"
    DRAIN = "drain", "Drained (flushed to Beta)"
    PAUSE = "pause", "Ingestion paused"
    RESUME = "resume", "Ingestion resumed"
