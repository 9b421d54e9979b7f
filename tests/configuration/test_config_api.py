"""The configuration API: reload on the three runbook paths, versions, rollback, drift, applied lists."""
from pathlib import Path

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from configuration.models import ConfigVersion
from configuration.services import config_reload
from opsconsole.models import AuditEntry

pytestmark = pytest.mark.django_db

RELOAD_PATHS = ["/api/alpha/admin/config/reload", "/api/beta/admin/config/reload", "/api/gamma/admin/config/reload"]


def client_for(user=None) -> APIClient:
    client = APIClient()
    if user is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
    return client


@pytest.fixture
def config_dir(tree: Path, settings) -> Path:
    settings.PIPELINE_CONFIG_DIR = str(tree)
    return tree


@pytest.mark.parametrize("path", RELOAD_PATHS)
def test_operator_reloads_on_every_module_path(path, config_dir, operator):
    answer = client_for(operator).post(path)
    assert answer.status_code == 200, answer.json()
    body = answer.json()
    assert body["version"] == 1 and body["changed"] is True and len(body["sha256"]) == 64
    assert body["counts"]["sources"] == 3 and body["counts"]["routing_rules"] == 2
    again = client_for(operator).post(path).json()
    assert (again["version"], again["changed"]) == (1, False)
    assert AuditEntry.objects.filter(action="config.reload", actor=operator).count() == 2


def test_reload_with_a_comment_sent_as_the_manual_does(config_dir, operator):
    answer = client_for(operator).post(RELOAD_PATHS[0], data='{"comment": "CHG-2026-1128-001"}',
                                         content_type="application/x-www-form-urlencoded")
    assert answer.status_code == 200
    assert ConfigVersion.objects.get().comment == "CHG-2026-1128-001"


def test_bad_config_gives_400_with_every_error(config_dir, operator):
    (config_dir / "alpha/sources/api_source_1.yaml").write_text("source_id: api_source_1\nsource_type: ftp\n")
    (config_dir / "gamma/routing/rules/ROUTE_TO_ARCHIVE.yaml").write_text("rule_id: ROUTE_TO_ARCHIVE\ndestination: x\n")
    answer = client_for(operator).post(RELOAD_PATHS[2])
    assert answer.status_code == 400
    body = answer.json()
    assert body["error"].startswith("Configuration is invalid; nothing was applied.")
    assert {(e["file"], e["field"]) for e in body["errors"]} == {
        ("alpha/sources/api_source_1.yaml", "source_type"), ("gamma/routing/rules/ROUTE_TO_ARCHIVE.yaml", "destination"),
    }
    assert ConfigVersion.objects.count() == 0


@pytest.mark.parametrize("path", RELOAD_PATHS)
def test_viewer_may_not_reload(path, config_dir, viewer):
    assert client_for(viewer).post(path).status_code == 403
    assert ConfigVersion.objects.count() == 0


def test_anonymous_gets_nothing(config_dir, operator):
    config_reload(actor=operator)
    anonymous = client_for()
    for path in [*RELOAD_PATHS, "/api/config/versions/1/rollback"]:
        assert anonymous.post(path, {"reason": "x"}).status_code in (401, 403)
    for path in ["/api/config/versions", "/api/config/versions/1", "/api/config/drift", "/api/alpha/admin/sources",
                 "/api/beta/admin/rules", "/api/gamma/admin/destinations"]:
        assert anonymous.get(path).status_code in (401, 403), path


def test_versions_list_and_detail(config_dir, operator, viewer):
    config_reload(actor=operator, comment="first")
    listing = client_for(viewer).get("/api/config/versions")
    assert listing.status_code == 200
    [row] = listing.json()["results"]
    assert (row["number"], row["applied_by"], row["comment"], row["is_active"], row["file_count"]) == (
        1, operator.username, "first", True, len(ConfigVersion.objects.get().files))
    detail = client_for(viewer).get("/api/config/versions/1").json()
    assert "gamma/destinations/analytics_warehouse.yaml" in detail["files"]
    assert "password_ref: env:ANALYTICS_DB_PASSWORD" in detail["files"]["gamma/destinations/analytics_warehouse.yaml"]
    assert client_for(viewer).get("/api/config/versions/5").status_code == 404


def test_rollback_by_operator_with_reason(config_dir, operator, viewer):
    config_reload(actor=operator)
    (config_dir / "gamma/routing/rules/ROUTE_TO_ANALYTICS.yaml").unlink()
    config_reload(actor=operator)
    assert client_for(viewer).post("/api/config/versions/1/rollback", {"reason": "x"}).status_code == 403
    missing_reason = client_for(operator).post("/api/config/versions/1/rollback", {}, format="json")
    assert missing_reason.status_code == 400 and "reason" in missing_reason.json()["fields"]
    answer = client_for(operator).post("/api/config/versions/1/rollback", data='{"reason": "route lost"}',
                                       content_type="text/plain")
    assert answer.status_code == 200 and (answer.json()["version"], answer.json()["changed"]) == (3, True)
    assert AuditEntry.objects.get(action="config.rollback").reason == "route lost"
    assert client_for(operator).post("/api/config/versions/42/rollback", {"reason": "x"}, format="json").status_code == 404


def test_drift(config_dir, operator, viewer):
    config_reload(actor=operator)
    (config_dir / "alpha/sources/file_source_1.yaml").unlink()
    body = client_for(viewer).get("/api/config/drift").json()
    assert body["drift"] is True and body["removed"] == ["alpha/sources/file_source_1.yaml"]  # its schema stays
    assert body["active_version"] == 1 and body["added"] == [] and body["changed"] == []


def test_applied_lists_for_readers(config_dir, operator, viewer):
    config_reload(actor=operator)
    reader = client_for(viewer)
    sources = reader.get("/api/alpha/admin/sources").json()
    assert [(s["source_id"], s["source_type"], s["enabled"]) for s in sources] == [
        ("api_source_1", "http_push", True), ("file_source_1", "file", True), ("new_api_source", "rest_api", False)]
    assert sources[2]["spec"]["connection"]["auth_config"]["client_secret_ref"].startswith("vault:")
    rules = reader.get("/api/beta/admin/rules").json()
    assert [(r["rule_id"], r["enabled"], r["priority"]) for r in rules] == [("TRX_042_NORMALIZE_PHONE", True, 500),
                                                                              ("TRX_050_ENRICH_MERCHANT_CATEGORY", True, 600)]
    destinations = reader.get("/api/gamma/admin/destinations").json()
    assert [(d["destination_id"], d["destination_type"], d["enabled"], d["routing_rules"]) for d in destinations] == [
        ("analytics_warehouse", "postgresql", False, ["ROUTE_TO_ANALYTICS"]),
        ("local_archive", "file", True, ["ROUTE_TO_ARCHIVE"]),
    ]
