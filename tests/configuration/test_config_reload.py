"""config_reload: versions, all-or-nothing, idempotence, audit, and the shipped config."""
from pathlib import Path

import pytest

from configuration.loader import files_sha256
from configuration.models import ConfigVersion
from configuration.runtime import pipeline_runtime
from configuration.services import ConfigInvalid, config_drift, config_reload, config_rollback, config_validate
from delivery.models import Destination, RoutingRule
from ingestion.models import Source
from opsconsole.errors import ApplicationError
from opsconsole.models import AuditEntry
from transform.models import EnrichmentSource, QualityProfile, TransformRule

pytestmark = pytest.mark.django_db


def test_shipped_config_validates_clean():
    loaded, issues = config_validate()
    assert issues == []
    assert loaded.counts()["sources"] == 3
    assert "alpha/schemas/api_source_1.json" in loaded.files


def test_reload_applies_every_kind_as_version_1(tree: Path, operator):
    version = config_reload(actor=operator, config_dir=tree, comment="first")
    assert (version.number, version.changed, version.is_active) == (1, True, True)
    assert version.sha256 == files_sha256(version.files)
    assert sorted(Source.objects.values_list("source_id", flat=True)) == ["api_source_1", "file_source_1", "new_api_source"]
    api = Source.objects.get(source_id="api_source_1")
    assert api.config_version == 1 and api.source_type == "http_push"
    assert api.spec["validation"]["schema"]["required"] == ["id", "timestamp", "payload"]
    assert list(TransformRule.objects.values_list("rule_id", flat=True)) == [
        "TRX_042_NORMALIZE_PHONE", "TRX_050_ENRICH_MERCHANT_CATEGORY"]
    assert EnrichmentSource.objects.get().enrichment_id == "merchant_categories"
    assert QualityProfile.objects.get().spec["quality_scoring"]["thresholds"]["reject"] == 0.3
    assert Destination.objects.get(destination_id="local_archive").destination_type == "file"
    assert RoutingRule.objects.get(rule_id="ROUTE_TO_ARCHIVE").destination_id == "local_archive"
    entry = AuditEntry.objects.get(action="config.reload")
    assert entry.actor == operator and entry.details["version"] == 1 and entry.reason == "first"
    assert pipeline_runtime().version == 1


def test_demo_record_passes_the_shipped_pipeline(tree: Path, operator):
    """A record as the demo pushes it: valid, phone normalized, scored above reject, archived."""
    from django.utils import timezone

    config_reload(actor=operator, config_dir=tree)
    runtime = pipeline_runtime()
    now = timezone.now()
    record = {"id": "r1", "timestamp": now.isoformat(), "payload": {"customer_id": "c1"}, "customer_id": "c1",
              "transaction_date": "2026-11-28", "amount": 10.5, "phone_number": "(555) 123-4567"}
    assert runtime.validators["api_source_1"](record) is None
    outcome = runtime.rules.apply(record)
    assert outcome.failed_rule is None and outcome.data["phone_number"] == "+15551234567"
    score = runtime.scorer.score(outcome.data, now)
    assert score.total > runtime.scorer.reject and score.level == "ok"
    assert runtime.router.destinations("api_source_1", score.total, outcome.data) == ["local_archive"]


def _applied_ids() -> dict[str, list[str]]:
    return {
        "sources": sorted(Source.objects.values_list("source_id", flat=True)),
        "rules": sorted(TransformRule.objects.values_list("rule_id", flat=True)),
        "destinations": sorted(Destination.objects.values_list("destination_id", flat=True)),
        "routes": sorted(RoutingRule.objects.values_list("rule_id", flat=True)),
        "versions": list(Source.objects.values_list("config_version", flat=True).distinct()),
    }


def test_one_bad_file_among_good_ones_applies_nothing(tree: Path, operator):
    config_reload(actor=operator, config_dir=tree)
    before = _applied_ids()
    (tree / "alpha/sources/extra.yaml").write_text("source_id: extra\nsource_type: http_push\n")
    (tree / "gamma/destinations/extra.yaml").write_text("destination_id: extra\nconnection: {type: file}\n")
    (tree / "gamma/routing/rules/ROUTE_TO_ARCHIVE.yaml").write_text("rule_id: ROUTE_TO_ARCHIVE\ndestination: nowhere\n")
    with pytest.raises(ConfigInvalid) as caught:
        config_reload(actor=operator, config_dir=tree)
    assert caught.value.status_code == 400
    assert caught.value.errors == [{"file": "gamma/routing/rules/ROUTE_TO_ARCHIVE.yaml", "field": "destination",
                                    "reason": "unknown destination 'nowhere' (known: analytics_warehouse, extra, local_archive)"}]
    assert _applied_ids() == before
    assert list(ConfigVersion.objects.values_list("number", "is_active")) == [(1, True)]
    assert not AuditEntry.objects.filter(details__version=2).exists()


def test_versions_are_numbered_hashed_and_only_the_last_is_active(tree: Path, operator):
    first = config_reload(actor=operator, config_dir=tree)
    (tree / "alpha/sources/api_source_1.yaml").write_text(
        (tree / "alpha/sources/api_source_1.yaml").read_text().replace("enabled: true", "enabled: false"))
    second = config_reload(actor=operator, config_dir=tree, comment="disable api_source_1")
    assert (first.number, second.number) == (1, 2)
    assert first.sha256 != second.sha256 and len(second.sha256) == 64
    assert list(ConfigVersion.objects.filter(is_active=True).values_list("number", flat=True)) == [2]
    assert Source.objects.get(source_id="api_source_1").enabled is False
    assert set(Source.objects.values_list("config_version", flat=True)) == {2}
    assert second.files["alpha/sources/api_source_1.yaml"].count("enabled: false") == 1
    assert pipeline_runtime().version == 2


def test_reload_of_unchanged_files_is_idempotent(tree: Path, operator):
    first = config_reload(actor=operator, config_dir=tree)
    again = config_reload(actor=operator, config_dir=tree)
    assert (again.number, again.changed, again.sha256) == (first.number, False, first.sha256)
    assert ConfigVersion.objects.count() == 1
    assert list(AuditEntry.objects.filter(action="config.reload").values_list("details__changed", flat=True)) == [False, True]


def test_rollback_reapplies_old_files_as_a_new_version(tree: Path, operator):
    config_reload(actor=operator, config_dir=tree)
    (tree / "gamma/routing/rules/ROUTE_TO_ARCHIVE.yaml").unlink()
    config_reload(actor=operator, config_dir=tree)
    assert not RoutingRule.objects.filter(rule_id="ROUTE_TO_ARCHIVE").exists()
    back = config_rollback(actor=operator, number=1, reason="archive route went missing")
    assert (back.number, back.changed, back.sha256) == (3, True, ConfigVersion.objects.get(number=1).sha256)
    assert RoutingRule.objects.get(rule_id="ROUTE_TO_ARCHIVE").config_version == 3
    assert Source.objects.get(source_id="api_source_1").spec["validation"]["schema"]["type"] == "object"
    entry = AuditEntry.objects.get(action="config.rollback")
    assert entry.reason == "archive route went missing" and entry.details["rolled_back_to"] == 1
    assert pipeline_runtime().version == 3


def test_rollback_needs_a_reason_and_an_existing_version(tree: Path, operator):
    config_reload(actor=operator, config_dir=tree)
    with pytest.raises(ApplicationError, match="reason is required"):
        config_rollback(actor=operator, number=1, reason=" ")
    with pytest.raises(ApplicationError) as caught:
        config_rollback(actor=operator, number=9, reason="x")
    assert caught.value.status_code == 404


def test_drift_lists_added_removed_and_changed_files(tree: Path, operator):
    assert config_drift(config_dir=tree)["active_version"] is None
    config_reload(actor=operator, config_dir=tree)
    clean = config_drift(config_dir=tree)
    assert clean["drift"] is False and clean["disk_sha256"] == clean["active_sha256"]
    (tree / "gamma/routing/rules/ROUTE_TO_ANALYTICS.yaml").unlink()
    (tree / "beta/quality/scoring.yaml").write_text((tree / "beta/quality/scoring.yaml").read_text() + "# tuned\n")
    (tree / "beta/enrichment").mkdir(exist_ok=True)
    (tree / "beta/enrichment/customer_db.yaml").write_text(
        "enrichment_id: customer_db\ntype: http\nenabled: false\nconnection: {url: 'http://127.0.0.1:1/c/{key}'}\n")
    drift = config_drift(config_dir=tree)
    assert drift["drift"] is True and drift["disk_valid"] is True and drift["active_version"] == 1
    assert drift["added"] == ["beta/enrichment/customer_db.yaml"]
    assert drift["removed"] == ["gamma/routing/rules/ROUTE_TO_ANALYTICS.yaml"]
    assert drift["changed"] == ["beta/quality/scoring.yaml"]


def test_old_versions_beyond_the_kept_ones_are_pruned(tree: Path, operator, settings):
    settings.CONFIG_VERSIONS_KEEP = 30
    scoring = tree / "beta/quality/scoring.yaml"
    text = scoring.read_text()
    for n in range(32):
        scoring.write_text(text + f"# revision {n}\n")
        config_reload(actor=operator, config_dir=tree)
    numbers = list(ConfigVersion.objects.order_by("number").values_list("number", flat=True))
    assert numbers == list(range(3, 33))


def test_reload_from_the_system_is_audited_as_system(tree: Path):
    version = config_reload(actor=None, config_dir=tree)
    entry = AuditEntry.objects.get(action="config.reload")
    assert entry.actor is None and entry.actor_name == "system" and version.applied_by is None
