"""One error type for expected failures; the API turns it into a clear 4xx JSON answer."""
from typing import Any


class ApplicationError(Exception):
    status_code = 400

    def __init__(self, message: str, *, status_code: int | None = None, extra: dict[str, Any] | None = None):
        super().__init__(message)
        self.message = message
        if status_code is not None:
            self.status_code = status_code
        self.extra = extra or {}
