"""config_reload: versions, all-or-nothing, idempotence, audit, and the shipped config."""
from pathlib import Path

import pytest

from configuration.loader import files_sha256
from configuration.models import ConfigVersion
from configuration.runtime import pipeline_runtime
from configuration.services import ConfigInvalid, config_reload, config_validate
from delivery.models import Destination, RoutingRule
from ingestion.models import Source
from opsconsole.models import AuditEntry
from transform.models import QualityProfile, TransformRule

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
    assert TransformRule.objects.get().rule_id == "TRX_042_NORMALIZE_PHONE"
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
