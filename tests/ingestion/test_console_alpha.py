"""The Module Alpha console: the dashboard (health grid, charts), its htmx panels, the source pages and
the one-click operator actions, with roles and audit."""
import pytest
from django.test import Client

from ingestion.models import SourceState
from ingestion.polling import source_poll
from ingestion.services import records_ingest
from opsconsole import roles
from opsconsole.models import AuditEntry
from tests.conftest import FILE_DESTINATION, PUSH_SOURCE, ROUTE_ALL_TO_ARCHIVE, make_user
from tests.pipeline.test_services import good_record

from .conftest import rest_source
from .servers import make_record

pytestmark = pytest.mark.django_db


def login(*groups: str) -> Client:
    client = Client()
    client.force_login(make_user("u-" + "-".join(g.split()[0].lower() for g in groups), *groups))
    return client


@pytest.fixture
def alpha_data(apply_config, source_api):
    source_api.add([make_record(i) for i in range(4)])
    apply_config(sources=[PUSH_SOURCE, rest_source(source_api)], destinations=[FILE_DESTINATION],
                 routes=[ROUTE_ALL_TO_ARCHIVE])
    records_ingest(source_id="api_source_1", origin="t", records=[good_record(1), {"id": "bad"}])
    source_poll(source_id="rest_src")
    source_api.fail_next("html")
    source_poll(source_id="rest_src")
    from ingestion.services import buffer_sample

    buffer_sample()
    return source_api


def test_dashboard_shows_the_manuals_panels_to_a_viewer_without_buttons(alpha_data):
    page = login(roles.VIEWER).get("/alpha/")
    assert page.status_code == 200
    html = page.content.decode()
    for panel in ("panel-health", "panel-rate", "panel-parse", "panel-validation", "panel-buffer", "panel-errors",
                  "panel-failure-summary"):
        assert f'id="{panel}"' in html, panel
    assert html.count("<svg") >= 4  # rate, parse, validation, buffer charts and the error heat map
    assert 'id="health-rest_src"' in html and "DEGRADED" in html and "html: endpoint answered an HTML page" in html
    assert "MISSING_REQUIRED_FIELD" in html  # the last-hour summary and the heat map
    assert "poll:html" in html
    assert 'data-action="pause"' not in html and 'id="pause-all"' not in html
    assert "cdn" not in html.lower()


def test_dashboard_panels_partial_and_operator_buttons(alpha_data):
    operator = login(roles.OPERATIONS_TEAM)
    html = operator.get("/alpha/").content.decode()
    assert 'id="pause-all"' in html and 'data-action="test"' in html and 'data-action="poll"' in html
    partial = operator.get("/alpha/partials/panels/", HTTP_HX_REQUEST="true")
    assert partial.status_code == 200 and b"<html" not in partial.content and b'id="panel-buffer"' in partial.content
    assert Client().get("/alpha/partials/panels/").status_code == 302


def test_operator_actions_from_the_console_are_audited(alpha_data):
    operator = login(roles.OPERATIONS_TEAM)
    response = operator.post("/sources/rest_src/pause/", {"reason": "vendor maintenance", "next": "/alpha/"})
    assert response.status_code == 302 and response["Location"] == "/alpha/"
    assert SourceState.objects.get(source_id="rest_src").paused
    page = operator.get("/alpha/").content.decode()
    assert "Source rest_src paused." in page and 'data-action="resume"' in page
    operator.post("/sources/rest_src/resume/")
    assert not SourceState.objects.get(source_id="rest_src").paused

    test = operator.post("/sources/rest_src/test/", follow=True).content.decode()
    assert "Test of rest_src: OK in" in test
    alpha_data.add([make_record(10)])
    polled = operator.post("/sources/rest_src/poll/", {"next": "https://evil.example/"}, follow=True)
    assert polled.redirect_chain[-1][0] == "/sources/rest_src/"  # no open redirect
    assert "1 new record(s)" in polled.content.decode()
    drained = operator.post("/sources/api_source_1/drain/", follow=True).content.decode()
    assert "Drained api_source_1: 1 records transformed now" in drained

    operator.post("/alpha/pause/", {"reason": "state backup"})
    assert "Ingestion is paused by an operator" in operator.get("/alpha/").content.decode()
    operator.post("/alpha/resume/")
    bad = operator.post("/alpha/buffer/resize/", {"capacity": "many"}, follow=True).content.decode()
    assert "Capacity must be a whole number" in bad
    operator.post("/alpha/buffer/resize/", {"capacity": "50"})
    actions = set(AuditEntry.objects.values_list("action", flat=True))
    assert {"alpha.source.pause", "alpha.source.resume", "alpha.source.test", "alpha.source.poll",
            "alpha.source.drain", "alpha.pause", "alpha.resume", "alpha.buffer.resize"} <= actions


def test_viewers_cannot_act(alpha_data):
    viewer = login(roles.VIEWER)
    for url in ("/alpha/pause/", "/alpha/resume/", "/alpha/buffer/resize/", "/sources/rest_src/pause/",
                "/sources/rest_src/test/", "/sources/rest_src/drain/", "/sources/rest_src/poll/"):
        assert viewer.post(url).status_code == 403, url
    assert not AuditEntry.objects.filter(action__startswith="alpha.").exists()


def test_source_pages_show_health_status_and_errors(alpha_data):
    viewer = login(roles.VIEWER)
    listing = viewer.get("/sources/").content.decode()
    assert "DEGRADED" in listing and "endpoint answered an HTML page" in listing
    detail = viewer.get("/sources/rest_src/").content.decode()
    for text in ("Health", "Failures in a row", "Records, last hour", "Buffered (awaiting Beta)", "Cursor",
                 "Recent poll and connection errors", "Maintenance"):
        assert text in detail, text
    failures = viewer.get("/validation-failures/").content.decode()
    assert "By source and error code, last hour" in failures
    filtered = viewer.get("/validation-failures/?error_code=MISSING_REQUIRED_FIELD&field=time").content.decode()
    assert "MISSING_REQUIRED_FIELD" in filtered
