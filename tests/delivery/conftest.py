import os

import pytest

from tests.delivery.http_sink import HttpSink


@pytest.fixture
def sink():
    server = HttpSink()
    yield server
    server.close()


def http_destination(url: str, **overrides) -> dict:
    os.environ.setdefault("TEST_SINK_TOKEN", "sink-token-123")
    spec = {
        "destination_id": "partner_api", "destination_type": "api", "enabled": True,
        "connection": {"type": "http", "url": url, "auth_type": "bearer", "token_ref": "env:TEST_SINK_TOKEN"},
        "delivery": {"batch_size": 500, "timeout_ms": 1000, "retry_count": 2, "retry_delay_ms": 50},
        "authorization": {"data_classification": "internal", "allowed_sources": ["api_source_1"]},
        "circuit_breaker": {"failure_threshold": 3, "cooldown_seconds": 0.3, "window_seconds": 60, "min_requests": 10},
    }
    for key, value in overrides.items():
        spec[key] = {**spec.get(key, {}), **value} if isinstance(value, dict) else value
    return spec


ROUTE_TO_PARTNER = {"rule_id": "ROUTE_TO_PARTNER", "enabled": True, "priority": 50,
                    "match": {"source_id": {"in": ["api_source_1"]}}, "destination": "partner_api"}
