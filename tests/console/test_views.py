"""Every console page: login and role required, real data shown, filters, pagination, the htmx panel."""
import re
from datetime import datetime, timezone as dt_timezone

import pytest
from django.db.models import F
from django.test import Client

from configuration.models import ConfigVersion
from delivery.models import DeadLetter
from ingestion.models import Batch, ValidationFailure
from opsconsole.audit import audit_record
from opsconsole.models import AuditEntry
from tests.conftest import make_user

from .conftest import login

pytestmark = pytest.mark.django_db

PAGES = [
    "/", "/partials/overview/", "/partials/status/", "/sources/", "/sources/api_source_1/", "/validation-failures/",
    "/batches/", "/rules/", "/destinations/", "/dlq/", "/reconciliation/", "/config/versions/", "/audit/",
]


def text(response) -> str:
    return re.sub(r"\s+", " ", response.content.decode())


@pytest.mark.parametrize("url", PAGES)
def test_anonymous_is_sent_to_login(client, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/login/?next=")


def test_htmx_request_of_an_expired_session_redirects_the_whole_page(client):
    response = client.get("/partials/overview/", headers={"HX-Request": "true", "HX-Current-URL": "http://testserver/"})
    assert response.status_code == 204
    assert response["HX-Redirect"] == "/login/?next=/"


@pytest.mark.parametrize("url", PAGES)
def test_a_user_without_a_reader_role_is_refused(url):
    assert login(make_user("nobody")).get(url).status_code == 403


@pytest.mark.parametrize("url", PAGES)
def test_viewer_sees_every_page(pipeline_data, viewer_console, url):
    response = viewer_console.get(url)
    assert response.status_code == 200, url


def test_every_batch_detail_page_renders(pipeline_data, viewer_console):
    for batch in Batch.objects.all():
        assert viewer_console.get(f"/batches/{batch.id}/").status_code == 200


def test_login_form_logs_in_and_logout_is_a_post(viewer_user):
    client = Client()
    page = client.get("/login/")
    assert page.status_code == 200 and 'name="username"' in page.content.decode()
    response = client.post("/login/", {"username": "console-viewer", "password": "pw-console-viewer", "next": "/sources/"})
    assert response.status_code == 302 and response["Location"] == "/sources/"
    assert client.get("/sources/").status_code == 200
    assert client.get("/logout/").status_code == 405
    assert client.post("/logout/").status_code == 302
    assert client.get("/sources/").status_code == 302


def test_base_layout_has_navigation_user_and_status(pipeline_data, viewer_console):
    body = text(viewer_console.get("/sources/"))
    for link in ('href="/"', 'href="/sources/"', 'href="/validation-failures/"', 'href="/batches/"', 'href="/rules/"',
                 'href="/destinations/"', 'href="/dlq/"', 'href="/reconciliation/"', 'href="/config/versions/"',
                 'href="/audit/"', 'href="/api/docs/"', 'href="/metrics"'):
        assert link in body, link
    assert 'href="/admin/"' not in body  # a Viewer is not staff
    assert "console-viewer" in body
    assert 'action="/logout/"' in body
    assert 'id="pipeline-status"' in body and "/static/vendor/htmx.min.js" in body


def test_unknown_source_and_batch_are_404(viewer_console):
    assert viewer_console.get("/sources/nope/").status_code == 404
    assert viewer_console.get("/batches/00000000-0000-0000-0000-000000000000/").status_code == 404


# --- overview -------------------------------------------------------------------------------------

def tile(body: str, element_id: str) -> str:
    match = re.search(rf'id="{element_id}">([^<]*)<', body)
    assert match, element_id
    return match.group(1).strip()


def test_overview_shows_live_counts(pipeline_data, viewer_console):
    body = text(viewer_console.get("/"))
    assert tile(body, "count-delivered") == "2"
    assert tile(body, "count-dlq") == "1"
    assert tile(body, "count-rejected") == "1"
    assert tile(body, "count-validated") == "1"  # the waiting batch
    assert tile(body, "count-routed") == "1"  # the retrying delivery
    assert tile(body, "batches-validated") == "1"
    assert tile(body, "batches-transformed") == "1"
    assert tile(body, "pending-deliveries") == "1"
    assert tile(body, "dlq-size") == "1"
    assert tile(body, "rate-ingested") == "1.2"  # 6 records in the last 5 minutes
    assert tile(body, "rate-delivered") == "0.4"
    assert tile(body, "reconciliation-balanced") == "balanced"
    assert "MISSING_REQUIRED_FIELD" in body  # latest validation failures
    assert "cannot connect" in body  # latest delivery error
    assert 'hx-get="/partials/overview/"' in body and 'hx-trigger="every 5s"' in body


def test_overview_panel_partial_is_the_panel_alone(pipeline_data, viewer_console):
    response = viewer_console.get("/partials/overview/", headers={"HX-Request": "true"})
    body = text(response)
    assert response.status_code == 200
    assert "<html" not in body and "<nav" not in body
    assert tile(body, "count-delivered") == "2"


def test_overview_of_an_empty_pipeline(viewer_console):
    body = text(viewer_console.get("/"))
    assert tile(body, "count-delivered") == "0"
    assert "No validation failures." in body and "No delivery errors." in body
    assert tile(body, "overview-status") == "HEALTHY"


# --- sources, failures, batches -------------------------------------------------------------------

def test_sources_list_counts_by_status_and_last_batch(pipeline_data, viewer_console):
    response = viewer_console.get("/sources/")
    sources = {s.source_id: s for s in response.context["object_list"]}
    assert sources["api_source_1"].counts == {
        "validated": 1, "routed": 0, "rejected": 1, "filtered": 0, "delivered": 2, "held": 0, "dlq": 1,
    }
    assert sources["orders_feed"].counts["routed"] == 1
    assert sources["api_source_1"].last_batch_at == pipeline_data["waiting"].created_at
    body = text(response)
    assert 'href="/sources/orders_feed/"' in body and "HTTP push" in body


def test_source_detail_shows_batches_and_failures(pipeline_data, viewer_console):
    body = text(viewer_console.get("/sources/api_source_1/"))
    assert f'href="/batches/{pipeline_data["done"].id}/"' in body
    assert f'href="/batches/{pipeline_data["waiting"].id}/"' in body
    assert "MISSING_REQUIRED_FIELD" in body and "timestamp" in body
    assert str(pipeline_data["retrying"].id) not in body  # another source's batch
    assert 'href="/validation-failures/?source_id=api_source_1"' in body


def test_validation_failures_filter_by_source_and_code(pipeline_data, viewer_console):
    ValidationFailure.objects.create(source_id="orders_feed", error_code="PARSE_ERROR", message="line 3: bad JSON")
    everything = viewer_console.get("/validation-failures/").context["object_list"]
    assert {f.source_id for f in everything} == {"api_source_1", "orders_feed"}
    by_source = viewer_console.get("/validation-failures/?source_id=orders_feed").context["object_list"]
    assert [f.error_code for f in by_source] == ["PARSE_ERROR"]
    by_code = viewer_console.get("/validation-failures/?error_code=MISSING_REQUIRED_FIELD").context["object_list"]
    assert [f.source_id for f in by_code] == ["api_source_1"]
    body = text(viewer_console.get("/validation-failures/"))
    assert '<option value="PARSE_ERROR">' in body and '<option value="orders_feed">' in body


def test_validation_failures_are_paginated(console_config, viewer_console):
    ValidationFailure.objects.bulk_create(
        ValidationFailure(source_id="api_source_1", error_code="MISSING_REQUIRED_FIELD", field="id", message=f"n{i}")
        for i in range(60)
    )
    first = viewer_console.get("/validation-failures/?source_id=api_source_1")
    assert len(first.context["object_list"]) == 50
    assert "Page 1 of 2 (60 rows)" in text(first)
    assert 'href="?source_id=api_source_1&amp;page=2"' in text(first)
    second = viewer_console.get("/validation-failures/?source_id=api_source_1&page=2")
    assert len(second.context["object_list"]) == 10


def test_batches_filter_by_stage(pipeline_data, viewer_console):
    def ids(query):
        return {b.id for b in viewer_console.get(f"/batches/{query}").context["object_list"]}

    assert ids("") == {pipeline_data[k].id for k in ("done", "retrying", "waiting")}
    assert ids("?stage=validated") == {pipeline_data["waiting"].id}
    assert ids("?stage=transformed") == {pipeline_data["retrying"].id}
    assert ids("?stage=done&source_id=api_source_1") == {pipeline_data["done"].id}


def test_batch_detail_shows_records_by_status_and_deliveries(pipeline_data, viewer_console):
    batch = pipeline_data["retrying"]
    response = viewer_console.get(f"/batches/{batch.id}/")
    counts = {row["status"]: row["count"] for row in response.context["tables"][0].rows}
    assert counts["routed"] == 1 and counts["delivered"] == 0
    body = text(response)
    assert "analytics_warehouse" in body and "cannot connect" in body
    assert re.search(r'<td class="kind-number">1</td>', body)  # one attempt so far


# --- Beta, Gamma, DLQ, reconciliation ---------------------------------------------------------------

def test_rules_page_shows_rules_with_their_spec(pipeline_data, viewer_console):
    body = text(viewer_console.get("/rules/"))
    assert "TRX_042_NORMALIZE_PHONE" in body and "Normalize Phone Numbers" in body
    assert "regex_replace" in body and "&quot;on_failure&quot;: &quot;fail&quot;" in body


def test_destinations_show_delivery_counts_and_last_error(pipeline_data, viewer_console):
    response = viewer_console.get("/destinations/")
    destinations = {d.destination_id: d for d in response.context["object_list"]}
    assert destinations["local_archive"].deliveries == {"pending": 0, "held": 0, "delivered": 1, "dlq": 0}
    assert destinations["local_archive"].last_error is None
    assert destinations["analytics_warehouse"].deliveries == {"pending": 1, "held": 0, "delivered": 0, "dlq": 0}
    assert "cannot connect" in destinations["analytics_warehouse"].last_error
    body = text(response)
    assert "Routing rules" in body and "ROUTE_ORDERS_TO_WAREHOUSE" in body


def test_dlq_lists_and_filters_dead_letters(pipeline_data, viewer_console):
    [dead] = viewer_console.get("/dlq/").context["object_list"]
    assert dead.category == "transform" and dead.source_id == "api_source_1"
    assert "TRX_042_NORMALIZE_PHONE" in text(viewer_console.get("/dlq/"))
    assert list(viewer_console.get("/dlq/?category=transform&source_id=api_source_1").context["object_list"]) == [dead]
    assert list(viewer_console.get("/dlq/?category=permanent").context["object_list"]) == []
    assert list(viewer_console.get("/dlq/?source_id=orders_feed").context["object_list"]) == []
    assert DeadLetter.objects.count() == 1


def test_reconciliation_table_and_unbalanced_highlight(pipeline_data, viewer_console):
    body = text(viewer_console.get("/reconciliation/"))
    assert "unbalanced" not in body
    assert "Total" in body
    Batch.objects.filter(source_id="orders_feed").update(received=F("received") + 1)  # a record gone missing
    response = viewer_console.get("/reconciliation/")
    rows = {row["source"]: row for row in response.context["object_list"]}
    assert rows["orders_feed"]["balanced"] is False and rows["api_source_1"]["balanced"] is True
    body = text(response)
    assert body.count('<tr class="unbalanced">') == 1 and '<tr class="unbalanced total">' in body
    assert tile(text(viewer_console.get("/")), "reconciliation-balanced") == "NOT balanced"


# --- configuration and audit ------------------------------------------------------------------------

def test_config_versions_list(pipeline_data, viewer_console):
    response = viewer_console.get("/config/versions/")
    [version] = response.context["object_list"]
    assert version.is_active and version.file_count == len(version.files)
    assert version.sha256 in text(response)
    assert "Reload configuration" not in text(response)  # a Viewer may not reload


def test_viewer_may_not_reload(console_config, viewer_console):
    assert viewer_console.post("/config/reload/").status_code == 403
    assert ConfigVersion.objects.count() == 1


def test_operator_reloads_configuration(tmp_path, settings, operator_console):
    from tests.conftest import PUSH_SOURCE, write_config

    settings.PIPELINE_CONFIG_DIR = str(write_config(tmp_path / "good", sources=[PUSH_SOURCE]))
    assert "Reload configuration" in text(operator_console.get("/config/versions/"))
    response = operator_console.post("/config/reload/", {"comment": "console test"}, follow=True)
    assert "Applied configuration version 1." in text(response)
    assert ConfigVersion.objects.get(is_active=True).comment == "console test"
    entry = AuditEntry.objects.get(action="config.reload")
    assert entry.actor_name == "console-operator"
    again = operator_console.post("/config/reload/", follow=True)
    assert "Configuration unchanged; version 1 stays active." in text(again)


def test_reload_of_an_invalid_configuration_lists_file_field_reason(tmp_path, settings, operator_console):
    from tests.conftest import PUSH_SOURCE, write_config

    broken = {**PUSH_SOURCE, "source_type": "carrier_pigeon"}
    settings.PIPELINE_CONFIG_DIR = str(write_config(tmp_path / "bad", sources=[broken]))
    body = text(operator_console.post("/config/reload/", follow=True))
    assert "nothing was applied" in body
    assert re.search(r"alpha/sources/api_source_1\.yaml: source_type: \S", body), body
    assert ConfigVersion.objects.count() == 0


def test_audit_log_filters_by_action_and_actor(operator_user, viewer_console):
    audit_record(actor=operator_user, action="dlq.replay", target="dlq", reason="destination back")
    audit_record(actor=None, action="config.reload", target="config v1")
    everything = viewer_console.get("/audit/").context["object_list"]
    assert [e.action for e in everything] == ["config.reload", "dlq.replay"]
    assert [e.action for e in viewer_console.get("/audit/?action=dlq.replay").context["object_list"]] == ["dlq.replay"]
    assert [e.actor_name for e in viewer_console.get("/audit/?actor=OPERATOR").context["object_list"]] == ["console-operator"]
    assert "destination back" in text(viewer_console.get("/audit/"))


def test_times_are_shown_in_the_operator_time_zone(pipeline_data, viewer_console, settings):
    batch = pipeline_data["done"]
    settings.TIME_ZONE = "Asia/Tokyo"
    Batch.objects.filter(id=batch.id).update(created_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt_timezone.utc))
    body = text(viewer_console.get(f"/batches/{batch.id}/"))
    assert "2026-01-02 12:04:05" in body  # 03:04:05 UTC is 12:04:05 in Tokyo
    assert "Times in Asia/Tokyo." in body


def test_tool_links_of_the_sidebar_answer_a_logged_in_viewer(viewer_console):
    for url in ("/api/docs/", "/metrics"):
        assert viewer_console.get(url).status_code == 200, url


def test_static_files_are_served_by_the_app(viewer_console):
    for url, fragment in (("/static/vendor/htmx.min.js", b"htmx"), ("/static/console.css", b".status-ok")):
        response = viewer_console.get(url)
        assert response.status_code == 200, url
        assert fragment in b"".join(response.streaming_content)
