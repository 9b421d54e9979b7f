"""JSON log lines: timestamp, level, module, component, message, correlation_id, source_id, details."""
import logging
from datetime import datetime, timezone

import orjson

_STANDARD = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        extra = {k: v for k, v in vars(record).items() if k not in _STANDARD}
        line = {
            "timestamp": datetime.fromtimestamp(record.created, tz=timezone.utc).isoformat(),
            "level": record.levelname,
            "module": extra.pop("module_name", record.name.split(".")[0]),
            "component": extra.pop("component", record.name),
            "message": record.getMessage(),
            "correlation_id": extra.pop("correlation_id", None),
            "source_id": extra.pop("source_id", None),
            "details": extra or None,
        }
        if record.exc_info:
            line["details"] = {**(line["details"] or {}), "exception": self.formatException(record.exc_info)}
        return orjson.dumps(line, default=str).decode()
