"""Fixtures of the Module Alpha tests: a real upstream API on 127.0.0.1 and rest_api source specs for it."""
import pytest

from tests.conftest import SCHEMA

from .servers import source_api_server


@pytest.fixture
def source_api():
    with source_api_server() as api:
        yield api


def rest_source(api, source_id: str = "rest_src", *, path: str = "/data", auth: dict | None = None,
                fmt: str = "json", record_path: str | None = "$.data.records", timestamp_field: str | None = "timestamp",
                batch_size: int = 10, interval: int = 60, retry_count: int = 0, timeout_ms: int = 1000,
                enabled: bool = True, polling: dict | None = None, validation: dict | None = None) -> dict:
    parsing = {"format": fmt}
    if record_path:
        parsing["record_path"] = record_path
    if timestamp_field:
        parsing["timestamp_field"] = timestamp_field
    return {
        "source_id": source_id, "source_type": "rest_api", "enabled": enabled,
        "connection": {"endpoint": api.base_url + path, "timeout_ms": timeout_ms, "retry_count": retry_count,
                       "retry_backoff_ms": 20, **(auth or {"auth_type": "none"})},
        "polling": {"interval_seconds": interval, "batch_size": batch_size, **(polling or {})},
        "parsing": parsing,
        "validation": validation if validation is not None else {
            "required_fields": ["id", "timestamp", "payload"], "schema_ref": "schemas/api_source_1.json"},
    }


def oauth2_auth(api, client_id_ref: str = "env:TEST_CLIENT_ID", client_secret_ref: str = "env:TEST_CLIENT_SECRET") -> dict:
    return {"auth_type": "oauth2", "auth_config": {"token_url": api.base_url + "/oauth/token",
                                                   "client_id_ref": client_id_ref, "client_secret_ref": client_secret_ref}}


__all__ = ["SCHEMA", "rest_source", "oauth2_auth"]
