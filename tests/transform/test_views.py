"""Beta console pages: dashboard, quality, rule tester, enrichment cache; readers see, operators act."""
import pytest
from django.test import Client

from ingestion.services import records_ingest
from opsconsole import roles
from opsconsole.models import AuditEntry
from tests.conftest import FILE_DESTINATION, PHONE_RULE, PUSH_SOURCE, ROUTE_ALL_TO_ARCHIVE, make_user
from tests.pipeline.test_services import good_record
from transform.models import BetaControl, CacheRefresh
from transform.services import batch_transform

from .conftest import csv_source

pytestmark = pytest.mark.django_db

SLOW_RULE = {"rule_id": "UPPER_NAME", "enabled": True, "priority": 10, "match": {"field": "name", "condition": "exists"},
             "transform": {"type": "case", "config": {"field": "name", "to": "upper"}}}


@pytest.fixture
def beta_data(apply_beta, countries_csv):
    apply_beta(sources=[PUSH_SOURCE], rules=[PHONE_RULE, SLOW_RULE], enrichment=[csv_source(countries_csv)],
               destinations=[FILE_DESTINATION], routes=[ROUTE_ALL_TO_ARCHIVE])
    stale = {"id": "old", "timestamp": "2020-01-01T00:00:00Z", "payload": {}}
    [batch] = records_ingest(source_id="api_source_1", origin="t",
                             records=[good_record(1, name="ada", phone_number="555-123-4567"), good_record(2), stale])
    batch_transform(batch_id=str(batch.id))


_users = iter(range(10**6))


def login(*groups) -> Client:
    client = Client()
    client.force_login(make_user(f"u{next(_users)}-" + "-".join(g.split()[0].lower() for g in groups), *groups))
    return client


def test_pages_need_a_login_and_a_reader_role(beta_data):
    for path in ("/beta/", "/beta/quality/", "/beta/tester/", "/beta/cache/"):
        assert Client().get(path).status_code == 302
    nobody = Client()
    nobody.force_login(make_user("norole"))
    assert nobody.get("/beta/").status_code == 403


def test_dashboard_shows_the_six_panels(beta_data):
    page = login(roles.VIEWER).get("/beta/")
    html = page.content.decode()
    assert page.status_code == 200
    for panel in ("panel-throughput", "panel-quality", "panel-enrichment", "panel-rules", "panel-schemas",
                  "panel-resources"):
        assert f'id="{panel}"' in html
    assert 'data-rule="UPPER_NAME"' in html and 'data-rule="TRX_042_NORMALIZE_PHONE"' in html
    assert 'class="threshold" data-name="reject" data-value="0.3"' in html
    assert "schemas/api_source_1.json" in html
    assert 'id="beta-transformed">3<' in html
    assert 'id="drain-form"' not in html  # viewers do not get the action


def test_operator_drains_and_resumes_from_the_dashboard(beta_data):
    operator = login(roles.OPERATIONS_TEAM)
    assert 'id="drain-form"' in operator.get("/beta/").content.decode()
    operator.post("/beta/drain/", {"action": "drain", "reason": "backup"})
    assert BetaControl.objects.get().draining is True
    assert "draining" in operator.get("/beta/partials/queue/").content.decode() or \
        "drained" in operator.get("/beta/partials/queue/").content.decode()
    operator.post("/beta/drain/", {"action": "resume"})
    assert BetaControl.objects.get().draining is False
    assert login(roles.VIEWER).post("/beta/drain/", {"action": "drain"}).status_code == 403
    assert AuditEntry.objects.filter(action__in=["beta.drain", "beta.resume"]).count() == 2


def test_quality_page_histogram_thresholds_and_low_scores(beta_data):
    html = login(roles.VIEWER).get("/beta/quality/?threshold=0.7").content.decode()
    assert 'id="quality-scored">3<' in html
    for name, value in (("warn", "0.7"), ("error", "0.5"), ("reject", "0.3")):
        assert f'data-name="{name}" data-value="{value}"' in html
    assert 'data-count="1"' in html and 'data-count="2"' in html
    assert "completeness: missing customer_id, transaction_date, amount" in html
    assert "0.62" in html


def test_rule_tester_shows_before_and_after(beta_data):
    operator = login(roles.OPERATIONS_TEAM)
    rule_yaml = ("rule_id: T\nmatch: {field: email, condition: exists}\n"
                 "transform: {type: mask, config: {field: email, keep_last: 6}}\n")
    html = operator.post("/beta/tester/", {"rule_text": rule_yaml,
                                           "samples_text": '{"email": "ada@example.org"}\n{"other": 1}\n'}).content.decode()
    assert 'id="summary-records">2<' in html and 'id="summary-changed">1<' in html
    assert "*********le.org" in html and "ada@example.org" in html
    applied = operator.post("/beta/tester/", {"applied_rule": "TRX_042_NORMALIZE_PHONE",
                                              "samples_text": '[{"phone_number": "555.123.4567"}]'}).content.decode()
    assert "+15551234567" in applied and "rule_id: TRX_042_NORMALIZE_PHONE" in applied
    bad = operator.post("/beta/tester/", {"rule_text": "rule_id: X\ntransform: {type: cast, config: {field: a, to: x}}",
                                          "samples_text": "[]"}).content.decode()
    assert 'id="tester-error"' in bad and "transform.config.to" in bad
    garbage = operator.post("/beta/tester/", {"rule_text": rule_yaml, "samples_text": "{not json"}).content.decode()
    assert "neither JSON nor JSON lines" in garbage
    viewer = login(roles.VIEWER)
    assert 'id="tester-form"' not in viewer.get("/beta/tester/").content.decode()
    assert viewer.post("/beta/tester/", {"rule_text": rule_yaml, "samples_text": "[]"}).status_code == 302


def test_rule_tester_upload(beta_data):
    from django.core.files.uploadedfile import SimpleUploadedFile

    operator = login(roles.OPERATIONS_TEAM)
    rule_file = SimpleUploadedFile("r.yaml", b"rule_id: U\ntransform: {type: trim, config: {field: n}}\n")
    samples = SimpleUploadedFile("s.jsonl", b'{"n": "  x  "}\n')
    html = operator.post("/beta/tester/", {"rule_file": rule_file, "samples_file": samples}).content.decode()
    assert 'id="summary-changed">1<' in html, html[html.find("<main>"):][:1500]


def test_cache_page_and_actions(beta_data):
    viewer_html = login(roles.VIEWER).get("/beta/cache/").content.decode()
    assert 'data-source="countries"' in viewer_html and 'id="refresh-all"' not in viewer_html
    operator = login(roles.OPERATIONS_TEAM)
    assert 'id="refresh-all"' in operator.get("/beta/cache/").content.decode()
    operator.post("/beta/cache/action/", {"action": "refresh", "source": "countries"})
    assert CacheRefresh.objects.get().target == "countries"
    assert "refresh #" in operator.get("/beta/partials/refresh/").content.decode()
    operator.post("/beta/cache/action/", {"action": "clear", "source": ""})
    assert AuditEntry.objects.filter(action="beta.cache.clear").exists()
    assert login(roles.VIEWER).post("/beta/cache/action/", {"action": "clear"}).status_code == 403
