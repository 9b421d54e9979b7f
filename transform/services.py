"""Module Beta services: transform, score and route a batch; drain and resume; test a rule; the enrichment cache."""
import logging
import os
import resource
import socket
import threading
import time
from collections import Counter, defaultdict
from datetime import timedelta

from django.db import connection, transaction
from django.utils import timezone

from configuration.runtime import pipeline_runtime
from delivery.choices import FailureCategory
from delivery.models import BatchDelivery
from delivery.selectors import open_breaker_destinations
from delivery.services import dead_letters_insert
from ingestion.choices import BatchStage, RecordStatus
from ingestion.models import Batch, Record
from monitoring.metrics import LATENCY_BUCKETS, RULE_BUCKETS, TRANSFORM_BUCKETS
from monitoring.services import counters_add, histogram_increments, labels_key
from opsconsole.audit import audit_record
from opsconsole.bulk import bulk_update, load_json
from opsconsole.dispatch import send_after_commit
from opsconsole.errors import ApplicationError

from .models import BetaControl, TransformRun

logger = logging.getLogger(__name__)


class BetaDraining(ApplicationError):
    """Module Beta is draining: ingestion must accept nothing new until it is resumed."""

    status_code = 503


def beta_intake_check() -> None:
    """Raise BetaDraining while Module Beta is draining (ingestion calls this before accepting records)."""
    if BetaControl.objects.filter(name="beta", draining=True).exists():
        raise BetaDraining("Module Beta is draining (POST /api/beta/admin/drain): no new records are accepted "
                           "until it is resumed (POST /api/beta/admin/resume).")


def _beta_control_set(*, actor, draining: bool, reason: str) -> BetaControl:
    name = actor.get_username() if getattr(actor, "is_authenticated", False) else str(actor or "system")
    with transaction.atomic():
        control, _ = BetaControl.objects.select_for_update().get_or_create(name="beta")
        was = control.draining
        control.draining = draining
        control.changed_at = timezone.now()
        control.changed_by = name[:150]
        control.reason = reason
        control.save()
        audit_record(actor=actor, action="beta.drain" if draining else "beta.resume", target="module:beta",
                     reason=reason, details={"was_draining": was})
    return control


def beta_drain(*, actor, reason: str = "") -> BetaControl:
    """Stop intake: ingestion refuses new records (503) while Beta finishes the records it already has."""
    return _beta_control_set(actor=actor, draining=True, reason=reason)


def beta_resume(*, actor, reason: str = "") -> BetaControl:
    """Open intake again after a drain."""
    return _beta_control_set(actor=actor, draining=False, reason=reason)


def _validated_records(batch_id) -> list[tuple]:
    pk = Record._meta.pk
    with connection.cursor() as cursor:
        cursor.execute(
            f'SELECT id, payload FROM "{Record._meta.db_table}" WHERE batch_id = %s AND status = %s',
            [pk.get_db_prep_value(batch_id, connection), RecordStatus.VALIDATED],
        )
        return [(pk.to_python(rid), load_json(payload)) for rid, payload in cursor.fetchall()]


def _schema_of(spec: dict | None, source_id: str) -> str:
    validation = (spec or {}).get("validation") or {}
    ref = validation.get("schema_ref")
    return str(ref) if ref else f"source:{source_id}"


def _worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * resource.getpagesize()
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _reject_reason(score, threshold: float) -> str:
    reason = f"quality score {score.total} below reject threshold {threshold}"
    return f"{reason}: {'; '.join(score.issues)}"[:2000] if score.issues else reason


def _rule_metrics(result, rules_by_id: dict, counts: Counter) -> dict:
    """Per-rule counters and the per-record duration histogram (one write per batch); returns the JSON
    the TransformRun row keeps."""
    summary = {}
    for rule_id, stats in result.rules.items():
        summary[rule_id] = {"executions": stats.executions, "matches": stats.matches, "failures": stats.failures,
                            "dropped": stats.dropped, "seconds": round(stats.seconds, 6)}
        rule = rules_by_id.get(rule_id)
        if rule is None or not rule.emit:
            continue
        label = labels_key({"rule": rule_id})
        counts[("beta_rule_executions_total", label)] += stats.executions
        counts[("beta_rule_matches_total", label)] += stats.matches
        counts[("beta_rule_failures_total", label)] += stats.failures
        if stats.executions:
            per_record = stats.seconds / stats.executions
            counts.update(histogram_increments("beta_rule_duration_seconds", {"rule": rule_id}, RULE_BUCKETS,
                                               [per_record] * stats.executions))
    return summary


def _enrichment_metrics(result, counts: Counter) -> dict:
    summary = {}
    for source, stats in result.enrichment.items():
        for name, n in stats.counts().items():
            counts[("beta_enrichment_lookups_total", labels_key({"source": source, "result": name}))] += n
        if stats.fetch_seconds:
            counts.update(histogram_increments("beta_enrichment_duration_seconds", {"source": source},
                                               TRANSFORM_BUCKETS, stats.fetch_seconds))
        summary[source] = {"lookups": stats.lookups, "hit": stats.hit, "miss": stats.miss, "stale": stats.stale,
                           "error": stats.error, "seconds": round(sum(stats.fetch_seconds), 6)}
    return summary


def batch_transform(*, batch_id: str) -> bool:
    """Transform, score and route the records of a validated batch; returns False if there was
    nothing to do (already transformed, or gone), which makes a duplicate message harmless.

    Every record ends in one place: DLQ (a rule with on_failure: fail), filtered (a drop rule, or no
    route), rejected (quality below reject, with the issues as reason), or routed. Rules, enrichment and
    quality are counted per batch (one metrics write, one TransformRun row)."""
    runtime = pipeline_runtime()
    with transaction.atomic():
        batch = Batch.objects.select_for_update().filter(id=batch_id, stage=BatchStage.VALIDATED).first()
        if batch is None:
            return False
        now = timezone.now()
        started = time.perf_counter()
        cpu_started = _cpu_seconds()
        updates, dead = [], []
        routes: dict[str, list[str]] = defaultdict(list)
        counts: Counter = Counter()
        source_label = labels_key({"source": batch.source_id})
        unavailable = open_breaker_destinations()
        rows = _validated_records(batch.id)
        result = runtime.rules.apply_batch([payload for _, payload in rows])
        run = Counter()
        quality_sum = 0.0
        for (rid, _payload), outcome in zip(rows, result.outcomes):
            if outcome.failed_rule:
                updates.append((RecordStatus.DLQ, outcome.data, None, None, outcome.reason, now, rid))
                dead.append((rid, batch.id, batch.source_id, "", FailureCategory.TRANSFORM, outcome.reason, None, 1,
                             now, now, False))
                counts[("beta_records_failed_total",
                        labels_key({"source": batch.source_id, "rule": outcome.failed_rule}))] += 1
                run["failed"] += 1
                continue
            if outcome.dropped_rule:
                updates.append((RecordStatus.FILTERED, outcome.data, None, None, outcome.reason, now, rid))
                counts[("beta_records_dropped_total",
                        labels_key({"source": batch.source_id, "rule": outcome.dropped_rule}))] += 1
                run["dropped"] += 1
                continue
            counts[("beta_records_transformed_total", source_label)] += 1
            run["transformed"] += 1
            score = runtime.scorer.score(outcome.data, now)
            quality = score.as_json()
            quality_sum += score.total
            if score.level in ("warn", "error"):
                counts[("beta_quality_flagged_total", labels_key({"source": batch.source_id, "level": score.level}))] += 1
                run["warned" if score.level == "warn" else "errored"] += 1
            if score.level == "reject":
                reason = _reject_reason(score, runtime.scorer.reject)
                updates.append((RecordStatus.REJECTED, outcome.data, score.total, quality, reason, now, rid))
                counts[("beta_records_rejected_total", source_label)] += 1
                run["rejected"] += 1
                continue
            plan = runtime.router.plan(batch.source_id, score.total, outcome.data, unavailable)
            for destination_id, refusal in plan.refused:
                dead.append((rid, batch.id, batch.source_id, destination_id, FailureCategory.AUTHORIZATION,
                             f"route refused: {refusal}", None, 0, now, now, False))
                counts[("gamma_routes_refused_total",
                        labels_key({"destination": destination_id, "source": batch.source_id}))] += 1
            if not plan.destinations:
                if plan.refused:
                    updates.append((RecordStatus.DLQ, outcome.data, score.total, quality, "every route refused", now, rid))
                else:
                    updates.append((RecordStatus.FILTERED, outcome.data, score.total, quality, "no routing rule matched",
                                    now, rid))
                    counts[("beta_records_filtered_total", source_label)] += 1
                    run["filtered"] += 1
                continue
            updates.append((RecordStatus.ROUTED, outcome.data, score.total, quality, "", None, rid))
            for destination_id in plan.destinations:
                routes[destination_id].append(str(rid))
        bulk_update(Record, ("status", "data", "quality_score", "quality", "reason", "finished_at"), updates)
        if dead:
            dead_letters_insert(dead)
        BatchDelivery.objects.bulk_create(
            BatchDelivery(batch=batch, destination_id=d, record_ids=ids) for d, ids in sorted(routes.items())
        )
        schema = _schema_of(runtime.sources.get(batch.source_id), batch.source_id)
        mapped = run["transformed"] + run["dropped"]
        counts[("beta_schema_mapping_total", labels_key({"schema": schema, "outcome": "success"}))] += mapped
        counts[("beta_schema_mapping_total", labels_key({"schema": schema, "outcome": "failure"}))] += len(rows) - mapped
        rules_summary = _rule_metrics(result, {r.rule_id: r for r in runtime.rules.rules}, counts)
        enrichment_summary = _enrichment_metrics(result, counts)
        duration = time.perf_counter() - started
        counts.update(histogram_increments("beta_transform_duration_seconds", {"source": batch.source_id},
                                           TRANSFORM_BUCKETS, [duration]))
        counts.update(histogram_increments("module_latency_seconds", {"module": "alpha"}, LATENCY_BUCKETS,
                                           [(now - batch.created_at).total_seconds()]))
        batch.stage = BatchStage.TRANSFORMED if routes else BatchStage.DONE
        batch.save(update_fields=["stage", "updated_at"])
        counters_add(counts)
        TransformRun.objects.create(
            batch_id=batch.id, source_id=batch.source_id, schema=schema[:255], at=now, records=len(rows),
            transformed=run["transformed"], failed=run["failed"], dropped=run["dropped"], rejected=run["rejected"],
            filtered=run["filtered"], warned=run["warned"], errored=run["errored"], quality_sum=quality_sum,
            scored=run["transformed"], duration_seconds=duration, rules=rules_summary, enrichment=enrichment_summary,
            worker=_worker_name()[:200], cpu_seconds=max(0.0, _cpu_seconds() - cpu_started), rss_bytes=_rss_bytes(),
            threads=threading.active_count(),
        )
        for destination_id in sorted(routes):
            send_after_commit("delivery.deliver_batch", [str(batch.id), destination_id])
    return True


def transform_runs_prune(*, older_than_days: int = 8) -> int:
    """Forget dashboard rows older than the dashboard reads (it shows at most a week)."""
    deleted, _ = TransformRun.objects.filter(at__lt=timezone.now() - timedelta(days=older_than_days)).delete()
    return deleted
