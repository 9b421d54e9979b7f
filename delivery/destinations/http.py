"""HTTP destination: POST a JSON batch with an auth header from a reference and an Idempotency-Key.

2xx acknowledges the batch. 429 and 503 are transient and honour Retry-After; other 5xx, timeouts and
connection failures are transient; 401/403 are authorization failures; any other 4xx is permanent.
The Idempotency-Key is the same on every retry of a batch, so a receiver can drop repeats.
"""
import base64
from email.utils import parsedate_to_datetime
from datetime import datetime, timezone

import httpx
import orjson

from configuration.secrets import SecretError, resolve_secret

from . import DeliveryError, OutgoingRecord


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


class HttpDestination:
    def __init__(self, destination_id: str, spec: dict):
        self.destination_id = destination_id
        self.connection = spec.get("connection") or {}
        self.url = self.connection.get("url") or self.connection.get("endpoint")
        self.timeout = max(0.1, float((spec.get("delivery") or {}).get("timeout_ms", 30000)) / 1000.0)

    def _headers(self) -> dict[str, str]:
        c = self.connection
        kind = c.get("auth_type", "none")
        try:
            if kind == "bearer":
                return {"Authorization": f"Bearer {resolve_secret(c['token_ref'])}"}
            if kind == "basic":
                pair = f"{resolve_secret(c['username_ref'])}:{resolve_secret(c['password_ref'])}"
                return {"Authorization": "Basic " + base64.b64encode(pair.encode()).decode()}
            if kind == "header":
                return {c["header_name"]: resolve_secret(c["header_value_ref"])}
        except SecretError as exc:
            raise DeliveryError(str(exc), transient=False, category="authorization") from exc
        except KeyError as exc:
            raise DeliveryError(f"connection.{exc.args[0]} is required for auth_type {kind}", transient=False) from exc
        return {}

    def _post(self, body: bytes, idempotency_key: str) -> httpx.Response:
        if not self.url:
            raise DeliveryError("connection.url is not set", transient=False)
        headers = {"Content-Type": "application/json", "Idempotency-Key": idempotency_key, **self._headers()}
        try:
            return httpx.post(self.url, content=body, headers=headers, timeout=self.timeout)
        except httpx.TimeoutException as exc:
            raise DeliveryError(f"timeout after {self.timeout:g}s (no acknowledgment)", transient=True) from exc
        except httpx.ConnectError as exc:
            raise DeliveryError(f"cannot connect to {self.url}: {exc}", transient=True) from exc
        except httpx.HTTPError as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc}", transient=True) from exc

    @staticmethod
    def _check(response: httpx.Response) -> None:
        status = response.status_code
        if 200 <= status < 300:
            return
        snippet = response.text[:200].replace("\n", " ")
        message = f"HTTP {status}: {snippet}" if snippet else f"HTTP {status}"
        if status in (429, 503):
            raise DeliveryError(message, transient=True, http_status=status,
                                retry_after=_retry_after(response.headers.get("Retry-After")))
        if status >= 500 or status == 408:
            raise DeliveryError(message, transient=True, http_status=status)
        if status in (401, 403):
            raise DeliveryError(message, transient=False, category="authorization", http_status=status)
        raise DeliveryError(message, transient=False, http_status=status)

    def deliver(self, records: list[OutgoingRecord], *, batch_id: str) -> None:
        if not records:
            return
        body = orjson.dumps({
            "batch_id": batch_id,
            "records": [
                {"record_id": r.record_id, "source_id": r.source_id, "ingested_at": r.ingested_at,
                 "quality_score": r.quality_score, "data": r.data}
                for r in records
            ],
        })
        self._check(self._post(body, f"{batch_id}:{self.destination_id}"))

    def test(self) -> str:
        """Connect and authenticate with an empty batch (receivers acknowledge it like any other)."""
        response = self._post(orjson.dumps({"batch_id": "connectivity-test", "records": []}), "connectivity-test")
        self._check(response)
        return f"HTTP {response.status_code} from {self.url}"
