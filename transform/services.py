"""Module Beta services: transform, score and route a batch; drain and resume; test a rule; the enrichment cache."""
import logging
import os
import resource
import socket
import threading
import time
from collections import Counter, defaultdict
from datetime import timedelta
from typing import Any

import orjson
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
from opsconsole.fields import MISSING

from .cache import cache_store, now_seconds
from .choices import RefreshState
from .engine import RuleError, RuleSet, compile_rule
from .enrichment import SourceUnavailable
from .models import BetaControl, CacheRefresh, TransformRun
from .paths import flatten

logger = logging.getLogger(__name__)


DRAIN_RETRY_AFTER_SECONDS = 30


def beta_intake_check() -> None:
    """Refuse records while Module Beta is draining: ingestion calls this before accepting anything.

    Raises ingestion's IngestRefused (503, reason beta_draining, Retry-After), so pushes get a clear
    503 and file scans and polls leave their input where it is and try again later."""
    if BetaControl.objects.filter(name="beta", draining=True).exists():
        from ingestion.services import IngestRefused  # ingestion imports this module; resolved at call time

        raise IngestRefused("Module Beta is draining (POST /api/beta/admin/drain): no new records are accepted "
                            "until it is resumed (POST /api/beta/admin/resume).", status_code=503,
                            reason="beta_draining", retry_after=DRAIN_RETRY_AFTER_SECONDS, utilization=0.0)


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


# --- the rule tester (Runbook B.1 steps 3-4) ----------------------------------------------------

def samples_parse(text: str) -> list:
    """Sample records from text: a JSON array, {"records": [...]}, one JSON object, or JSON lines."""
    text = (text or "").strip()
    if not text:
        raise ApplicationError("No sample records: give a JSON array of records or JSON lines.")
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:
        data = None
        records = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                records.append(orjson.loads(line))
            except orjson.JSONDecodeError as exc:
                raise ApplicationError(f"Sample records are neither JSON nor JSON lines (line {number}: {exc}).") from exc
        return records
    if isinstance(data, dict) and isinstance(data.get("records"), list):
        return data["records"]
    if isinstance(data, list):
        return data
    return [data]


def rule_spec_parse(text: str) -> dict:
    """A rule from YAML (or JSON) text, as a rule file holds it."""
    import yaml

    try:
        spec = yaml.safe_load(text or "")
    except yaml.YAMLError as exc:
        raise ApplicationError(f"Rule is not valid YAML: {exc}") from exc
    if not isinstance(spec, dict):
        raise ApplicationError("Rule must be a mapping of fields (rule_id, match, transform, on_failure, ...).")
    return spec


def _changes(before: Any, after: Any) -> list[dict]:
    old, new = flatten(before) if isinstance(before, dict) else {}, flatten(after) if isinstance(after, dict) else {}
    changes = []
    for path in sorted(set(old) | set(new)):
        a, b = old.get(path, MISSING), new.get(path, MISSING)
        if a != b or (a is MISSING) != (b is MISSING):
            changes.append({"field": path, "before": None if a is MISSING else a, "after": None if b is MISSING else b,
                            "change": "added" if a is MISSING else "removed" if b is MISSING else "changed"})
    return changes


def rule_test(*, rule_spec: dict, records: list, enrichment: Any = None, limit: int = 10_000) -> dict:
    """Apply one rule (or a list of rules) to sample records without touching the pipeline.

    The answer is what beta-rule-tester writes: `summary` (records, matched, changed, failed, dropped,
    field_changes {field: records changed}) and one result per record with before, after and changes.
    The rule is compiled as validation does, so an invalid rule is a 400 naming the field at fault."""
    if len(records) > limit:
        raise ApplicationError(f"{len(records)} sample records; the tester takes at most {limit}.")
    specs = rule_spec if isinstance(rule_spec, list) else [rule_spec]
    for spec in specs:
        try:
            compile_rule(spec)
        except RuleError as exc:
            raise ApplicationError(f"Rule is invalid: {exc.field}: {exc.reason}",
                                   extra={"errors": [{"field": exc.field, "reason": exc.reason}]}) from exc
    ruleset = RuleSet([{**s, "enabled": True} for s in specs], enrichment=enrichment)
    started = time.perf_counter()
    result = ruleset.apply_batch(records)
    elapsed = time.perf_counter() - started
    field_changes: Counter = Counter()
    results = []
    summary = Counter()
    for index, (before, outcome) in enumerate(zip(records, result.outcomes)):
        changes = [] if outcome.failed_rule else _changes(before, outcome.data)
        for change in changes:
            field_changes[change["field"]] += 1
        matched = bool(outcome.matched_rules)
        failed = bool(outcome.failures) or bool(outcome.failed_rule)
        summary.update({"matched": int(matched), "changed": int(bool(changes)), "failed": int(failed),
                        "dropped": int(bool(outcome.dropped_rule)), "dlq": int(bool(outcome.failed_rule))})
        results.append({
            "index": index, "matched": matched, "changed": bool(changes), "failed": failed,
            "dropped": bool(outcome.dropped_rule), "to_dlq": bool(outcome.failed_rule),
            "errors": [{"rule": f.rule_id, "reason": f.reason, "on_failure": f.action} for f in outcome.failures]
                      + ([{"rule": "-", "reason": outcome.reason, "on_failure": "fail"}]
                         if outcome.failed_rule == "-" else []),
            "before": before, "after": None if outcome.failed_rule else outcome.data, "changes": changes,
        })
    return {
        "rules": [{"rule_id": s.get("rule_id"), "type": (s.get("transform") or {}).get("type"),
                   "on_failure": s.get("on_failure", "skip")} for s in specs],
        "summary": {
            "records": len(records), "matched": summary["matched"], "changed": summary["changed"],
            "unchanged": len(records) - summary["changed"], "failed": summary["failed"],
            "dropped": summary["dropped"], "sent_to_dlq": summary["dlq"],
            "field_changes": dict(sorted(field_changes.items())), "duration_ms": round(elapsed * 1000, 3),
        },
        "rule_stats": {rid: {"executions": s.executions, "matches": s.matches, "failures": s.failures,
                             "dropped": s.dropped} for rid, s in result.rules.items()},
        "results": results,
    }


# --- the enrichment cache (Runbook B.2, backup and recovery) ------------------------------------

def enrichment_registry():
    """The enrichment sources of the active configuration (and the cache they share)."""
    return pipeline_runtime().extras["enrichment"]


def cache_refresh_request(*, actor, target: str) -> CacheRefresh:
    """Queue a background refresh of one source's cache entries, or of all sources ('all').

    A refresh of the same target already queued or running is returned instead of starting another."""
    registry = enrichment_registry()
    if target != "all" and target not in registry.sources:
        known = ", ".join(sorted(registry.sources)) or "none"
        raise ApplicationError(f"Unknown enrichment source '{target}' (known: {known}).", status_code=404)
    if target == "all" and not registry.sources:
        raise ApplicationError("No enrichment sources are configured (beta/enrichment/*.yaml).", status_code=409)
    with transaction.atomic():
        running = CacheRefresh.objects.select_for_update().filter(
            target=target, state__in=[RefreshState.QUEUED, RefreshState.RUNNING]).first()
        if running is not None:
            return running
        targets = sorted(registry.sources) if target == "all" else [target]
        job = CacheRefresh.objects.create(
            target=target, sources_total=len(targets),
            requested_by=actor if getattr(actor, "is_authenticated", False) else None,
        )
        audit_record(actor=actor, action="beta.cache.refresh", target=f"enrichment:{target}",
                     details={"refresh_id": job.id, "sources": targets})
        send_after_commit("transform.cache_refresh", [job.id])
    return job


def cache_refresh_run(*, refresh_id: int) -> str | None:
    """Run a queued refresh, source after source, saving progress as it goes; safe to run twice."""
    with transaction.atomic():
        job = CacheRefresh.objects.select_for_update().filter(id=refresh_id, state=RefreshState.QUEUED).first()
        if job is None:
            return None
        job.state, job.started_at = RefreshState.RUNNING, timezone.now()
        job.save(update_fields=["state", "started_at"])
    registry = enrichment_registry()
    targets = sorted(registry.sources) if job.target == "all" else [job.target]
    errors, keys_before = [], 0
    for done, source_id in enumerate(targets):
        CacheRefresh.objects.filter(id=job.id).update(current_source=source_id)

        def progress(keys_done: int, keys_total: int, base=keys_before) -> None:
            CacheRefresh.objects.filter(id=job.id).update(keys_done=base + keys_done, keys_total=base + keys_total)

        try:
            outcome = registry.refresh(source_id, progress=progress)
            keys_before += outcome["keys"]
            if outcome["errors"]:
                errors.append({"source": source_id, "reason": f"{outcome['errors']} keys could not be read"})
        except SourceUnavailable as exc:
            errors.append({"source": source_id, "reason": str(exc)})
        except Exception as exc:  # a broken source must not leave the job running forever
            logger.exception("cache refresh of %s failed", source_id, extra={"component": "enrichment"})
            errors.append({"source": source_id, "reason": f"{type(exc).__name__}: {exc}"[:500]})
        CacheRefresh.objects.filter(id=job.id).update(sources_done=done + 1, keys_done=keys_before,
                                                      keys_total=keys_before)
    failed = len(errors) == len(targets)
    CacheRefresh.objects.filter(id=job.id).update(
        state=RefreshState.FAILED if failed else RefreshState.DONE, errors=errors, current_source="",
        finished_at=timezone.now())
    return RefreshState.FAILED if failed else RefreshState.DONE


def cache_export() -> dict:
    """Every cache entry with its age, per source (`curl .../cache/export > beta-cache-<date>.json`)."""
    store = cache_store()
    sources = {}
    for source in sorted(set(store.sources()) | set(enrichment_registry().sources)):
        entries = [{"key": key, "value": entry.value, "fetched_at": entry.fetched_at} for key, entry in store.items(source)]
        if entries:
            sources[source] = {"entries": entries}
    return {"format": "opsconsole-beta-cache/1", "exported_at": timezone.now().isoformat(), "backend": store.backend,
            "entries": sum(len(s["entries"]) for s in sources.values()), "sources": sources}


def cache_import(*, actor, data: Any) -> dict:
    """Load an export back (Module Beta recovery step 4); entries keep their age, so stale stays stale.

    Sources not in the active configuration are skipped and listed; the import is audited."""
    if not isinstance(data, dict) or not isinstance(data.get("sources"), dict):
        raise ApplicationError('Not a cache export: expected {"sources": {source: {"entries": [...]}}}.')
    registry = enrichment_registry()
    store, now = cache_store(), now_seconds()
    loaded, skipped = {}, []
    for source, body in data["sources"].items():
        entries = body.get("entries") if isinstance(body, dict) else None
        if not isinstance(entries, list):
            raise ApplicationError(f"sources.{source}.entries must be a list of {{key, value, fetched_at}}.")
        if source not in registry.sources:
            skipped.append(source)
            continue
        values, times = {}, {}
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict) or not isinstance(entry.get("key"), str) \
                    or not isinstance(entry.get("value", None), (dict, type(None))) \
                    or not isinstance(entry.get("fetched_at"), (int, float)):
                raise ApplicationError(f"sources.{source}.entries[{i}] must be {{key: text, value: object or null, "
                                       "fetched_at: seconds since the epoch}.")
            values[entry["key"]] = entry["value"]
            times[entry["key"]] = min(float(entry["fetched_at"]), now)
        policy = registry.sources[source].policy
        store.put_many(source, values, now=now, max_entries=policy.max_entries, keep_seconds=policy.keep_seconds,
                       times=times)
        loaded[source] = len(values)
    audit_record(actor=actor, action="beta.cache.import", target="enrichment cache",
                 details={"loaded": loaded, "skipped": skipped})
    return {"loaded": loaded, "entries": sum(loaded.values()), "skipped_sources": skipped}


def cache_clear(*, actor, module: str, source: str | None = None, reason: str = "") -> dict:
    """Empty a module's caches (Runbook E.3 step 4). Beta: the enrichment cache (one source or all) and the
    compiled configuration of this process; Alpha and Gamma: the compiled configuration of this process."""
    from configuration.runtime import runtime_reset

    cleared: dict[str, Any] = {}
    if module == "beta":
        store = cache_store()
        if source and source not in set(store.sources()) | set(enrichment_registry().sources):
            raise ApplicationError(f"Unknown enrichment source '{source}'.", status_code=404)
        cleared["enrichment_entries"] = store.clear(source)
        cleared["enrichment_source"] = source or "all"
        cleared["backend"] = store.backend
    runtime_reset()
    cleared["compiled_configuration"] = "this process (rebuilt on next use)"
    audit_record(actor=actor, action=f"{module}.cache.clear", target=f"module:{module}", reason=reason,
                 details=cleared)
    return {"module": module, "cleared": cleared}
