"""batch_transform with the whole Beta: rules, enrichment, quality, drops, DLQ, metrics per rule, the drain
switch, one-reload rule disabling, and the test_rule command."""
import json
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from delivery.models import DeadLetter
from ingestion.choices import RecordStatus
from ingestion.models import Record
from ingestion.selectors import reconciliation
from ingestion.services import records_ingest
from monitoring.models import MetricCounter
from opsconsole.models import AuditEntry
from tests.conftest import DEFAULT_SCORING, FILE_DESTINATION, PHONE_RULE, PUSH_SOURCE, ROUTE_ALL_TO_ARCHIVE
from tests.pipeline.test_services import good_record
from transform.models import TransformRun
from transform.quality import QualityScorer
from ingestion.services import IngestRefused
from transform.services import batch_transform, beta_drain, beta_resume

from .conftest import csv_source, enrich_rule

pytestmark = pytest.mark.django_db

CAST_AMOUNT = {"rule_id": "CAST_AMOUNT", "enabled": True, "priority": 100,
               "match": {"field": "amount", "condition": "exists"},
               "transform": {"type": "cast", "config": {"field": "amount", "to": "float"}}, "on_failure": "skip"}
DROP_TESTS = {"rule_id": "DROP_TEST_TRAFFIC", "enabled": True, "priority": 50,
              "match": {"field": "payload.test", "condition": "equals", "value": True},
              "transform": {"type": "drop", "config": {"reason": "synthetic"}}}
STRICT_PHONE = {**PHONE_RULE, "on_failure": "fail"}


def counter(name: str, **labels) -> int:
    key = ",".join(f"{k}={labels[k]}" for k in sorted(labels))
    row = MetricCounter.objects.filter(name=name, labels=key).first()
    return row.value if row else 0


def transform(batch) -> None:
    assert batch_transform(batch_id=str(batch.id)) is True


def test_batch_counts_rules_drops_failures_and_stores_quality(apply_beta, countries_csv):
    apply_beta(sources=[PUSH_SOURCE], rules=[STRICT_PHONE, CAST_AMOUNT, DROP_TESTS,
                                             enrich_rule("countries", "country", {"name": "country_name"}, rule_id="GEO")],
               enrichment=[csv_source(countries_csv)], destinations=[FILE_DESTINATION], routes=[ROUTE_ALL_TO_ARCHIVE])
    records = [good_record(1, phone_number="555-123-4567", country="DE", amount="12.5"),
               good_record(2, phone_number=5551234567),  # not a string: on_failure fail -> DLQ
               good_record(3, payload={"test": True}),  # dropped
               good_record(4, amount="n/a")]  # cast fails, skip
    [batch] = records_ingest(source_id="api_source_1", records=records, origin="test")
    transform(batch)
    by_id = {r.payload["id"]: r for r in Record.objects.all()}
    assert by_id["r1"].status == RecordStatus.ROUTED
    assert by_id["r1"].data["phone_number"] == "+15551234567" and by_id["r1"].data["amount"] == 12.5
    assert by_id["r1"].data["country_name"] == "Germany"
    assert by_id["r1"].quality["level"] == "ok" and set(by_id["r1"].quality["dimensions"]) == {
        "completeness", "consistency", "conformance", "timeliness"}
    assert by_id["r2"].status == RecordStatus.DLQ
    assert by_id["r2"].reason == "rule TRX_042_NORMALIZE_PHONE: field 'phone_number' is a number, not a string"
    assert DeadLetter.objects.get(record=by_id["r2"]).category == "transform"
    assert by_id["r3"].status == RecordStatus.FILTERED and by_id["r3"].reason == "dropped by rule DROP_TEST_TRAFFIC: synthetic"
    assert by_id["r4"].status == RecordStatus.ROUTED and by_id["r4"].data["amount"] == "n/a"
    assert reconciliation()["total"]["balanced"]
    # Per-rule metrics, durable, written once for the batch.
    assert counter("beta_rule_executions_total", rule="DROP_TEST_TRAFFIC") == 4
    assert counter("beta_rule_matches_total", rule="DROP_TEST_TRAFFIC") == 1
    assert counter("beta_rule_executions_total", rule="TRX_042_NORMALIZE_PHONE") == 3
    assert counter("beta_rule_failures_total", rule="TRX_042_NORMALIZE_PHONE") == 1
    assert counter("beta_rule_failures_total", rule="CAST_AMOUNT") == 1
    assert counter("beta_rule_duration_seconds_count", rule="CAST_AMOUNT") == 3  # r3 was dropped before it
    assert counter("beta_records_dropped_total", source="api_source_1", rule="DROP_TEST_TRAFFIC") == 1
    assert counter("beta_records_failed_total", source="api_source_1", rule="TRX_042_NORMALIZE_PHONE") == 1
    assert counter("beta_enrichment_lookups_total", source="countries", result="miss") == 1
    assert counter("beta_enrichment_duration_seconds_count", source="countries") == 1
    assert counter("beta_schema_mapping_total", schema="schemas/api_source_1.json", outcome="success") == 3
    assert counter("beta_schema_mapping_total", schema="schemas/api_source_1.json", outcome="failure") == 1
    [run] = TransformRun.objects.all()
    assert (run.records, run.transformed, run.failed, run.dropped) == (4, 2, 1, 1)
    assert run.rules["CAST_AMOUNT"]["failures"] == 1 and run.enrichment["countries"]["miss"] == 1


def test_disabling_a_failing_rule_takes_one_reload(apply_beta):
    from configuration.runtime import pipeline_runtime

    apply_beta(sources=[PUSH_SOURCE], rules=[STRICT_PHONE], destinations=[FILE_DESTINATION], routes=[ROUTE_ALL_TO_ARCHIVE])
    compiled = pipeline_runtime().rules
    assert pipeline_runtime().rules is compiled  # compiled once per configuration version
    [batch] = records_ingest(source_id="api_source_1", records=[good_record(1, phone_number=1)], origin="t")
    transform(batch)
    assert counter("beta_rule_failures_total", rule="TRX_042_NORMALIZE_PHONE") == 1
    apply_beta(sources=[PUSH_SOURCE], rules=[{**STRICT_PHONE, "enabled": False}], destinations=[FILE_DESTINATION],
               routes=[ROUTE_ALL_TO_ARCHIVE])
    [batch] = records_ingest(source_id="api_source_1", records=[good_record(2, phone_number=1)], origin="t")
    transform(batch)
    assert pipeline_runtime().rules is not compiled and pipeline_runtime().rules.rules == []
    assert Record.objects.get(payload__id="r2").status == RecordStatus.ROUTED
    assert counter("beta_rule_failures_total", rule="TRX_042_NORMALIZE_PHONE") == 1  # no new failure


def test_drain_refuses_new_records_until_resumed_and_finishes_the_backlog(apply_beta, operator):
    apply_beta(sources=[PUSH_SOURCE], destinations=[FILE_DESTINATION], routes=[ROUTE_ALL_TO_ARCHIVE])
    [waiting] = records_ingest(source_id="api_source_1", records=[good_record(1)], origin="t")
    beta_drain(actor=operator, reason="backup")
    with pytest.raises(IngestRefused) as caught:
        records_ingest(source_id="api_source_1", records=[good_record(2)], origin="t")
    assert caught.value.status_code == 503 and caught.value.reason == "beta_draining"
    assert "Module Beta is draining" in caught.value.message
    transform(waiting)  # the backlog is still worked off
    assert Record.objects.get(payload__id="r1").status == RecordStatus.ROUTED
    beta_resume(actor=operator, reason="backup done")
    records_ingest(source_id="api_source_1", records=[good_record(3)], origin="t")
    assert [a.action for a in AuditEntry.objects.filter(action__startswith="beta.").order_by("id")] == \
        ["beta.drain", "beta.resume"]


def test_manual_scoring_yaml_computed_by_hand():
    """Runbook B.3's scoring.yaml: weights .30/.25/.25/.20, completeness -0.2 per missing field,
    timeliness -0.01 per hour beyond 24 h; no consistency or conformance rules (both score 1)."""
    scorer = QualityScorer(DEFAULT_SCORING)
    now = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    fresh = {"customer_id": "c", "transaction_date": "2026-11-28", "amount": 1, "timestamp": "2026-11-28T11:00:00Z"}
    assert scorer.score(fresh, now).total == 1.0
    # one field missing, 34 h old: completeness 0.8, timeliness 1 - 0.01 * 10 = 0.9
    # 0.30 * 0.8 + 0.25 + 0.25 + 0.20 * 0.9 = 0.24 + 0.5 + 0.18 = 0.92
    one_missing = {"customer_id": "c", "amount": 1, "timestamp": (now - timedelta(hours=34)).isoformat()}
    score = scorer.score(one_missing, now)
    assert score.dimensions["completeness"] == 0.8 and score.dimensions["timeliness"] == 0.9
    assert score.total == 0.92 and score.level == "ok"
    # all three missing, 124 h old: completeness 0.4, timeliness 0.0 -> 0.12 + 0.5 = 0.62: warn (< 0.7)
    worst = {"timestamp": (now - timedelta(hours=124)).isoformat()}
    score = scorer.score(worst, now)
    assert (score.total, score.level) == (0.62, "warn")
    assert score.issues == ["completeness: missing customer_id, transaction_date, amount",
                            "timeliness: 124.0 h old (max 24 h)"]


def test_consistency_and_conformance_rules_with_levels():
    spec = json.loads(json.dumps(DEFAULT_SCORING))
    spec["quality_scoring"]["rules"]["consistency"] = {"rules": [
        {"name": "ship_after_order", "field": "shipped_at", "compare": "gte", "other_field": "ordered_at"},
        {"name": "refund_negative", "when": {"field": "type", "condition": "equals", "value": "refund"},
         "require": {"field": "amount", "condition": "lt", "value": 0}},
    ]}
    spec["quality_scoring"]["rules"]["conformance"] = {"penalty_per_violation": 0.5, "formats": [
        {"field": "email", "format": "email"}, {"field": "currency", "format": "currency_code"},
        {"field": "amount", "type": "number"},
    ]}
    scorer = QualityScorer(spec)
    now = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    base = {"customer_id": "c", "transaction_date": "d", "timestamp": now.isoformat()}
    good = {**base, "amount": -5, "type": "refund", "email": "a@b.io", "currency": "EUR",
            "ordered_at": "2026-11-01T00:00:00Z", "shipped_at": "2026-11-02T00:00:00Z"}
    assert scorer.score(good, now).total == 1.0
    bad = {**good, "amount": "5", "email": "nobody", "shipped_at": "2026-10-01T00:00:00Z"}
    score = scorer.score(bad, now)
    # consistency: both rules apply, both fail (amount "5" is not < 0 numerically? "5" reads as 5) -> 0/2 = 0
    # conformance: email and type violations, 1 - 2 * 0.5 = 0
    # total = 0.30 * 1 + 0.25 * 0 + 0.25 * 0 + 0.20 * 1 = 0.5 -> error? 0.5 is not < 0.5: warn
    assert score.dimensions == {"completeness": 1.0, "consistency": 0.0, "conformance": 0.0, "timeliness": 1.0}
    assert (score.total, score.level) == (0.5, "warn")
    assert "consistency: ship_after_order (shipped_at gte ordered_at)" in score.issues
    assert "conformance: email: format email" in score.issues


def test_test_rule_command_writes_the_summary_runbook_b1_reads(tmp_path):
    rule_file = tmp_path / "new_rule.yaml"
    rule_file.write_text((__import__("pathlib").Path(__file__).parent / "manual_rule.yaml").read_text())
    samples = tmp_path / "phone_samples.json"
    samples.write_text(json.dumps([{"phone_number": "555-123-4567"}, {"phone_number": "(555) 987-6543"},
                                   {"phone_number": "+15551112222"}, {"phone_number": "12"}, {"name": "x"},
                                   {"phone_number": 5551234567}]))
    out = tmp_path / "test_results" / "phone_transform_results.json"
    call_command("test_rule", "--rule", str(rule_file), "--input", str(samples), "--output", str(out))
    result = json.loads(out.read_text())
    assert result["summary"] == {**result["summary"], "records": 6, "matched": 5, "changed": 2, "failed": 1,
                                 "dropped": 0, "field_changes": {"phone_number": 2}}
    assert result["results"][0]["changes"] == [{"field": "phone_number", "before": "555-123-4567",
                                                "after": "+15551234567", "change": "changed"}]
    assert result["results"][5]["errors"][0]["reason"] == "field 'phone_number' is a number, not a string"
    bad = tmp_path / "bad.yaml"
    bad.write_text("rule_id: X\ntransform:\n  type: regex_replace\n  config: {field: a, pattern: '([a-'}\n")
    with pytest.raises(CommandError, match=r"bad.yaml: transform.config.pattern: regex does not compile"):
        call_command("test_rule", "--rule", str(bad), "--input", str(samples), "--output", str(out))


def test_drain_leaves_files_in_the_inbox_until_resumed(apply_beta, operator, tmp_path):
    import os
    import time

    from ingestion.files import file_source_scan

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    source = {"source_id": "file_source_1", "source_type": "file", "enabled": True,
              "connection": {"path": str(inbox)}, "parsing": {"format": "jsonl"}, "validation": {"required_fields": ["id"]}}
    apply_beta(sources=[source], destinations=[FILE_DESTINATION], routes=[ROUTE_ALL_TO_ARCHIVE])
    path = inbox / "a.jsonl"
    path.write_text(json.dumps(good_record(1)) + "\n")
    os.utime(path, (time.time() - 10, time.time() - 10))
    beta_drain(actor=operator)
    assert file_source_scan(source_id="file_source_1")["beta_draining"] == 1
    assert path.exists() and not Record.objects.exists()
    beta_resume(actor=operator)
    assert file_source_scan(source_id="file_source_1")["ingested"] == 1
    assert Record.objects.count() == 1
