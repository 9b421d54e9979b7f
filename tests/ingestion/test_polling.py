"""rest_api polling against a real HTTP server: cursors without gaps or repeats, pages, authentication,
OAuth2 token cache and refresh, retries, and every kind of bad answer as a counted, visible failure."""
import time

import pytest
from django.test import override_settings

from configuration.secrets_at_rest import seal, unseal
from ingestion.choices import SourceHealth
from ingestion.models import OAuthToken, Record, SourceError, SourceState, ValidationFailure
from ingestion.polling import source_poll
from monitoring.models import MetricCounter
from tests.conftest import FILE_DESTINATION, ROUTE_ALL_TO_ARCHIVE

from .conftest import oauth2_auth, rest_source
from .servers import make_record

pytestmark = pytest.mark.django_db


def ingested_ids(source_id: str = "rest_src") -> list[str]:
    return sorted(Record.objects.filter(source_id=source_id).values_list("payload__id", flat=True))


def counter(name: str, **labels) -> int:
    key = ",".join(f"{k}={labels[k]}" for k in sorted(labels))
    return MetricCounter.objects.filter(name=name, labels=key).values_list("value", flat=True).first() or 0


def state(source_id: str = "rest_src") -> SourceState:
    return SourceState.objects.get(source_id=source_id)


@pytest.fixture
def configure(apply_config):
    def configure(*sources):
        return apply_config(sources=list(sources), destinations=[FILE_DESTINATION], routes=[ROUTE_ALL_TO_ARCHIVE])

    return configure


def test_timestamp_cursor_takes_every_record_once_across_polls(source_api, configure):
    source_api.add([make_record(i) for i in range(25)])
    configure(rest_source(source_api, batch_size=10))

    first = source_poll(source_id="rest_src")
    assert first.outcome == "ok", first
    assert first.pages == 3 and first.ingested == 25
    assert ingested_ids() == [f"r{i:05d}" for i in range(25)]

    again = source_poll(source_id="rest_src")
    assert again.outcome == "ok" and again.ingested == 0 and again.duplicates == 1  # the server answers >= since

    # New records, one sharing the newest timestamp taken so far: exactly these three come in.
    newest = make_record(24)["timestamp"]
    source_api.add([make_record(100, ts=newest), make_record(101, ts="2026-01-02T00:00:00Z"), make_record(102, ts="2026-01-02T00:00:01Z")])
    third = source_poll(source_id="rest_src")
    assert third.ingested == 3, third
    ids = ingested_ids()
    assert len(ids) == len(set(ids)) == 28
    assert state().cursor["since"] == "2026-01-02T00:00:01Z"
    assert state().health == SourceHealth.HEALTHY and state().last_success_at is not None


def test_linked_pages_are_followed_and_the_last_page_is_polled_again(source_api, configure):
    source_api.add([make_record(i) for i in range(7)])
    configure(rest_source(source_api, path="/feed", timestamp_field=None, batch_size=3,
                          polling={"next_link_path": "$.next"}))
    result = source_poll(source_id="rest_src")
    assert result.pages == 3 and result.ingested == 7, result
    assert state().cursor["url"].endswith("page=3&limit=3")

    source_api.add([make_record(i) for i in range(7, 12)])  # fills page 3, adds pages 4
    result = source_poll(source_id="rest_src")
    assert result.ingested == 5, result
    ids = ingested_ids()
    assert ids == [f"r{i:05d}" for i in range(12)]


def test_link_header_pagination(source_api, configure):
    source_api.link_header = True
    source_api.add([make_record(i) for i in range(5)])
    configure(rest_source(source_api, path="/feed", timestamp_field=None, batch_size=2))
    assert source_poll(source_id="rest_src").ingested == 5
    assert len(ingested_ids()) == 5


def test_a_failure_between_pages_resumes_where_the_last_committed_page_ended(source_api, configure):
    source_api.add([make_record(i) for i in range(30)])
    configure(rest_source(source_api, batch_size=10))
    source_api.delay = 0
    # Page 1 is served, page 2 fails: page 1 and its cursor are committed, nothing of page 2.
    original = source_api.failures
    source_api.failures = []
    from ingestion import polling

    pages = {"n": 0}
    real_commit = polling._page_commit

    def commit_then_fail(*args, **kwargs):
        out = real_commit(*args, **kwargs)
        pages["n"] += 1
        if pages["n"] == 1:
            source_api.fail_next("500")
        return out

    polling._page_commit = commit_then_fail
    try:
        failed = source_poll(source_id="rest_src")
    finally:
        polling._page_commit = real_commit
        source_api.failures = original
    assert failed.outcome == "failed" and failed.failure["kind"] == "server_error"
    assert len(ingested_ids()) == 10
    resumed = source_poll(source_id="rest_src")
    assert resumed.outcome == "ok" and resumed.ingested == 20 + 0
    ids = ingested_ids()
    assert len(ids) == len(set(ids)) == 30


def test_oauth2_token_is_cached_shared_and_refreshed_on_expiry_and_401(source_api, configure, monkeypatch):
    monkeypatch.setenv("TEST_CLIENT_ID", "alpha-client")
    monkeypatch.setenv("TEST_CLIENT_SECRET", "alpha-secret")
    source_api.auth = "oauth2"
    source_api.clients = {"alpha-client": "alpha-secret"}
    source_api.token_lifetime = 1.0
    source_api.add([make_record(i) for i in range(3)])
    configure(rest_source(source_api, auth=oauth2_auth(source_api)))

    assert source_poll(source_id="rest_src").outcome == "ok"
    assert source_poll(source_id="rest_src").outcome == "ok"
    assert source_api.token_requests == 1  # cached in the database, used by the second poll
    row = OAuthToken.objects.get(source_id="rest_src")
    assert "alpha-secret" not in row.credentials_key
    [issued] = list(source_api.tokens)
    assert issued not in row.sealed_token and unseal(row.sealed_token) == issued  # sealed at rest
    assert issued not in str(row)

    time.sleep(1.0)  # expired: a new token is fetched before the request
    assert source_poll(source_id="rest_src").outcome == "ok"
    assert source_api.token_requests == 2 and source_api.unauthorized == 0

    source_api.token_lifetime = 3600
    source_api.revoke_tokens()  # the server forgets the token early: 401, refresh once, succeed
    source_api.add([make_record(3)])
    result = source_poll(source_id="rest_src")
    assert result.outcome == "ok" and result.ingested == 1
    assert source_api.unauthorized == 1 and source_api.token_requests == 3


def test_oauth2_cached_token_that_no_longer_unseals_is_a_cache_miss(source_api, configure, monkeypatch, caplog):
    monkeypatch.setenv("TEST_CLIENT_ID", "alpha-client")
    monkeypatch.setenv("TEST_CLIENT_SECRET", "alpha-secret")
    source_api.auth = "oauth2"
    source_api.clients = {"alpha-client": "alpha-secret"}
    source_api.add([make_record(i) for i in range(2)])
    configure(rest_source(source_api, auth=oauth2_auth(source_api)))
    assert source_poll(source_id="rest_src").outcome == "ok" and source_api.token_requests == 1

    with override_settings(SECRET_KEY="the-key-before-rotation"):  # as if sealed under an older SECRET_KEY
        OAuthToken.objects.filter(source_id="rest_src").update(sealed_token=seal(next(iter(source_api.tokens))))
    source_api.add([make_record(2)])
    result = source_poll(source_id="rest_src")
    assert result.outcome == "ok" and result.ingested == 1, result
    assert source_api.token_requests == 2 and source_api.unauthorized == 0
    row = OAuthToken.objects.get(source_id="rest_src")
    assert unseal(row.sealed_token) in source_api.tokens
    assert "cannot be unsealed" in caplog.text
    assert not any(token in caplog.text for token in source_api.tokens)


def test_oauth2_wrong_secret_is_an_unauthorized_failure_at_the_token_stage(source_api, configure, monkeypatch):
    monkeypatch.setenv("TEST_CLIENT_ID", "alpha-client")
    monkeypatch.setenv("TEST_CLIENT_SECRET", "not-the-secret")
    source_api.auth = "oauth2"
    source_api.clients = {"alpha-client": "alpha-secret"}
    configure(rest_source(source_api, auth=oauth2_auth(source_api)))
    result = source_poll(source_id="rest_src")
    assert result.outcome == "failed"
    assert result.failure["kind"] == "unauthorized" and result.failure["stage"] == "token"
    assert "invalid_client" in result.failure["message"]
    assert "not-the-secret" not in str(result.as_dict()) and "not-the-secret" not in state().last_error
    assert state().connected is False


@pytest.mark.parametrize("auth, server_auth", [
    ({"auth_type": "basic", "auth_config": {"username": "reader", "password_ref": "env:TEST_BASIC_PASSWORD"}}, "basic"),
    ({"auth_type": "bearer", "auth_config": {"token_ref": "env:TEST_BEARER"}}, "bearer"),
])
def test_basic_and_bearer_authentication(source_api, configure, monkeypatch, auth, server_auth):
    monkeypatch.setenv("TEST_BASIC_PASSWORD", "s3cret")
    monkeypatch.setenv("TEST_BEARER", "static-token")
    source_api.auth = server_auth
    source_api.add([make_record(1)])
    configure(rest_source(source_api, auth=auth))
    assert source_poll(source_id="rest_src").ingested == 1
    monkeypatch.setenv("TEST_BASIC_PASSWORD", "wrong")
    monkeypatch.setenv("TEST_BEARER", "wrong")
    failed = source_poll(source_id="rest_src")
    assert failed.failure["kind"] == "unauthorized" and failed.failure["status_code"] == 401


def test_unresolvable_credential_reference_fails_polls_with_a_clear_reason(source_api, configure, monkeypatch):
    monkeypatch.delenv("TEST_MISSING_TOKEN", raising=False)
    configure(rest_source(source_api, auth={"auth_type": "bearer", "auth_config": {"token_ref": "env:TEST_MISSING_TOKEN"}}))
    result = source_poll(source_id="rest_src")
    assert result.outcome == "failed" and result.failure["kind"] == "secret"
    assert "env:TEST_MISSING_TOKEN" in result.failure["message"] and "not set" in result.failure["message"]
    assert state().health == SourceHealth.DEGRADED and state().last_error_kind == "secret"
    assert source_api.data_requests == 0  # nothing was sent without credentials


def test_transient_failures_are_retried_with_backoff(source_api, configure):
    source_api.add([make_record(1)])
    configure(rest_source(source_api, retry_count=2))
    source_api.fail_next("500", "500")
    started = time.monotonic()
    result = source_poll(source_id="rest_src")
    assert result.outcome == "ok" and result.ingested == 1
    assert source_api.data_requests == 3
    assert time.monotonic() - started >= 0.05  # 20 ms then 40 ms of backoff (±20%)


BAD_ANSWERS = [
    ("html", "/data", "json", "html", "HTML page"),
    ("500", "/data", "json", "server_error", "HTTP 500"),
    ("timeout", "/data", "json", "timeout", "timed out"),
    ("garbage", "/data", "json", "not_json", "not JSON"),
    ("missing_path", "/data", "json", "record_path", "'data' not found"),
    ("invalid_utf8", "/data", "json", "invalid_utf8", "not valid UTF-8"),
]


@pytest.mark.parametrize("answer, path, fmt, kind, fragment", BAD_ANSWERS)
def test_bad_answers_are_counted_failures_and_the_source_recovers(source_api, configure, answer, path, fmt, kind, fragment):
    source_api.add([make_record(i) for i in range(4)])
    configure(rest_source(source_api, path=path, fmt=fmt, timeout_ms=300))
    for attempt in range(3):
        source_api.fail_next(answer)
        result = source_poll(source_id="rest_src")
        assert result.outcome == "failed", result
        assert result.failure["kind"] == kind and fragment in result.failure["message"], result.failure
    assert state().health == SourceHealth.UNHEALTHY and state().consecutive_failures == 3
    assert SourceError.objects.filter(source_id="rest_src", kind=kind).count() == 3
    assert counter("alpha_source_errors_total", source="rest_src", kind=kind) == 3
    if kind in ("html", "not_json", "record_path", "invalid_utf8"):
        assert counter("alpha_parse_errors_total", source="rest_src") == 3
    assert Record.objects.count() == 0  # nothing half-taken, the cursor did not move

    recovered = source_poll(source_id="rest_src")  # the server answers properly again
    assert recovered.outcome == "ok" and recovered.ingested == 4
    assert state().health == SourceHealth.HEALTHY and state().consecutive_failures == 0


@pytest.mark.parametrize("answer, reason", [("ragged_csv", "has 2 fields, header has 3"), ("", "not valid UTF-8")])
def test_bad_csv_rows_are_rejected_with_reasons_and_the_rest_ingested(source_api, configure, answer, reason):
    configure(rest_source(source_api, path="/csv", fmt="csv", record_path=None,
                          validation={"required_fields": ["id"]}))
    if answer:
        source_api.fail_next(answer)
    result = source_poll(source_id="rest_src")
    assert result.outcome == "ok" and result.unreadable == 1
    assert sorted(Record.objects.filter(status="validated").values_list("payload__id", flat=True)) == ["c1", "c3"]
    [failure] = ValidationFailure.objects.all()
    assert failure.error_code == "PARSE_ERROR" and reason in failure.message and failure.raw.startswith("c2,")
    assert counter("alpha_parse_errors_total", source="rest_src") == 1
