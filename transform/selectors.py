"""Reads about Module Beta: rules, quality (Runbook E.2), the enrichment cache (B.2), the dashboard."""
import math
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Avg, Count, FloatField, Max, Min, Q, Sum
from django.db.models.fields.json import KT
from django.db.models.functions import Cast
from django.utils import timezone

from ingestion.choices import BatchStage, RecordStatus
from ingestion.models import Batch, Record

from .cache import cache_store, now_seconds
from .choices import RefreshState
from .enrichment import HIT_RATE_WINDOW_SECONDS, cache_policy, hit_rate
from .models import (
    BetaControl,
    CacheRefresh,
    EnrichmentSource,
    QualityProfile,
    TransformRule,
    TransformRun,
)
from .quality import DIMENSIONS, LEVELS, QualityScorer

DEFAULT_WINDOW_HOURS = 24


def transform_rule_list():
    """Transformation rules in the order they run (priority, then id)."""
    return TransformRule.objects.order_by("priority", "rule_id")


def quality_profile_get() -> QualityProfile | None:
    return QualityProfile.objects.filter(name="default").first()


def quality_scorer() -> QualityScorer:
    profile = quality_profile_get()
    return QualityScorer(profile.spec if profile else None)


# --- drain and queue ----------------------------------------------------------------------------

def beta_queue_depth() -> dict:
    """Records and batches awaiting transformation, and how long the oldest has waited."""
    waiting = Batch.objects.filter(stage=BatchStage.VALIDATED)
    agg = waiting.aggregate(records=Sum("accepted"), batches=Count("id"), oldest=Min("created_at"))
    oldest = agg["oldest"]
    return {
        "module": "beta",
        "batches": agg["batches"] or 0,
        "records": agg["records"] or 0,
        "oldest_waiting_seconds": round((timezone.now() - oldest).total_seconds(), 1) if oldest else 0.0,
    }


def beta_drain_status() -> dict:
    control = BetaControl.objects.filter(name="beta").first()
    depth = beta_queue_depth()
    draining = bool(control and control.draining)
    return {
        "draining": draining,
        "accepting": not draining,
        "drained": draining and depth["records"] == 0,
        "backlog": depth,
        "changed_at": control.changed_at if control else None,
        "changed_by": control.changed_by if control else "",
        "reason": control.reason if control else "",
    }


# --- quality (Runbook E.2) ----------------------------------------------------------------------

def _scored(*, hours: float, source_id: str | None = None, now: datetime | None = None):
    since = (now or timezone.now()) - timedelta(hours=hours)
    rows = Record.objects.filter(ingested_at__gte=since, quality_score__isnull=False)
    return rows.filter(source_id=source_id) if source_id else rows


def quality_stats(*, hours: float = DEFAULT_WINDOW_HOURS, source_id: str | None = None) -> dict:
    """Average, spread and levels of the scores given in the window, per source and in total."""
    scorer = quality_scorer()
    rows = _scored(hours=hours, source_id=source_id)
    total = rows.aggregate(
        scored=Count("id"), average=Avg("quality_score"), minimum=Min("quality_score"), maximum=Max("quality_score"),
        **{level: Count("id", filter=Q(quality__level=level)) for level in LEVELS},
    )
    by_source = []
    for row in rows.values("source_id").annotate(scored=Count("id"), average=Avg("quality_score"),
                                                 rejected=Count("id", filter=Q(status=RecordStatus.REJECTED)))\
            .order_by("source_id"):
        by_source.append({**row, "average": _round(row["average"])})
    return {
        "window_hours": hours,
        "scored": total["scored"],
        "average": _round(total["average"]),
        "min": _round(total["minimum"]),
        "max": _round(total["maximum"]),
        "levels": {level: total[level] for level in LEVELS},
        "rejected": total["reject"],
        "flagged": {"warn": total["warn"], "error": total["error"]},
        "thresholds": scorer.thresholds(),
        "weights": scorer.weights,
        "by_source": by_source,
    }


def quality_distribution(*, hours: float = DEFAULT_WINDOW_HOURS, buckets: int = 10,
                         source_id: str | None = None) -> dict:
    """Histogram of scores in `buckets` equal ranges of [0, 1] (1.0 falls in the last), with thresholds."""
    buckets = max(1, min(int(buckets), 100))
    counts = [0] * buckets
    rows = _scored(hours=hours, source_id=source_id)
    for score, n in rows.values_list("quality_score").annotate(n=Count("id")).order_by():
        index = min(buckets - 1, max(0, int(math.floor(score * buckets))))
        counts[index] += n
    return {
        "window_hours": hours,
        "scored": sum(counts),
        "buckets": [{"from": round(i / buckets, 4), "to": round((i + 1) / buckets, 4), "count": counts[i]}
                    for i in range(buckets)],
        "thresholds": quality_scorer().thresholds(),
    }


def quality_low_scores(*, threshold: float = 0.5, limit: int = 100, hours: float | None = None,
                       source_id: str | None = None) -> dict:
    """Records scored below `threshold`, lowest first, with their dimensions and issues."""
    limit = max(1, min(int(limit), 1000))
    rows = Record.objects.filter(quality_score__lt=threshold)
    if hours:
        rows = rows.filter(ingested_at__gte=timezone.now() - timedelta(hours=hours))
    if source_id:
        rows = rows.filter(source_id=source_id)
    items = []
    for r in rows.order_by("quality_score", "-ingested_at")[:limit]:
        quality = r.quality or {}
        items.append({
            "record_id": str(r.id), "source_id": r.source_id, "batch_id": str(r.batch_id), "status": r.status,
            "score": r.quality_score, "level": quality.get("level"), "dimensions": quality.get("dimensions", {}),
            "issues": quality.get("issues", []), "reason": r.reason, "ingested_at": r.ingested_at,
        })
    return {"threshold": threshold, "limit": limit, "count": len(items), "records": items}


def quality_dimensions(*, hours: float = DEFAULT_WINDOW_HOURS, source_id: str | None = None,
                       sample: int = 1000) -> dict:
    """Per dimension: average score, records that lost points, and the most frequent issues (from the
    `sample` lowest-scored records of the window)."""
    rows = _scored(hours=hours, source_id=source_id).filter(quality__isnull=False)
    annotations = {d: Cast(KT(f"quality__dimensions__{d}"), FloatField()) for d in DIMENSIONS}
    aggregates = {}
    for d in DIMENSIONS:
        aggregates[f"{d}_avg"] = Avg(annotations[d])
        aggregates[f"{d}_below"] = Count("id", filter=Q(**{f"{d}_score__lt": 1.0}))
    scored = rows.annotate(**{f"{d}_score": annotations[d] for d in DIMENSIONS}).aggregate(n=Count("id"), **aggregates)
    issues: dict[str, Counter] = {d: Counter() for d in DIMENSIONS}
    for quality in rows.order_by("quality_score").values_list("quality", flat=True)[:sample]:
        for issue in (quality or {}).get("issues", []):
            dimension, _, text = issue.partition(": ")
            if dimension in issues:
                issues[dimension][text] += 1
    scorer = quality_scorer()
    return {
        "window_hours": hours,
        "scored": scored["n"],
        "dimensions": {
            d: {
                "weight": scorer.weights[d],
                "average": _round(scored[f"{d}_avg"]),
                "records_below_1": scored[f"{d}_below"],
                "top_issues": [{"issue": text, "count": n} for text, n in issues[d].most_common(10)],
            }
            for d in DIMENSIONS
        },
    }


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


# --- enrichment cache (Runbook B.2) -------------------------------------------------------------

def _refresh_json(job: CacheRefresh | None) -> dict | None:
    if job is None:
        return None
    percent = None
    if job.keys_total:
        percent = round(100.0 * job.keys_done / job.keys_total, 1)
    elif job.state == RefreshState.DONE:
        percent = 100.0
    return {
        "id": job.id, "target": job.target, "state": job.state, "sources_total": job.sources_total,
        "sources_done": job.sources_done, "keys_total": job.keys_total, "keys_done": job.keys_done,
        "percent": percent, "current_source": job.current_source, "errors": job.errors,
        "requested_by": job.requested_by.get_username() if job.requested_by else None,
        "requested_at": job.requested_at, "started_at": job.started_at, "finished_at": job.finished_at,
    }


def cache_refresh_latest(*, refresh_id: int | None = None) -> dict | None:
    query = CacheRefresh.objects.select_related("requested_by")
    return _refresh_json(query.filter(id=refresh_id).first() if refresh_id else query.first())


def cache_refresh_status() -> dict:
    """The running refreshes (or the last one) with their progress: Runbook B.2 step 4."""
    query = CacheRefresh.objects.select_related("requested_by")
    active = [_refresh_json(j) for j in query.filter(state__in=[RefreshState.QUEUED, RefreshState.RUNNING])]
    return {"active": active, "last": _refresh_json(query.first()), "in_progress": bool(active)}


def _source_rows(store, now: float) -> list[dict]:
    rows = []
    for source in EnrichmentSource.objects.all():
        try:
            policy = cache_policy(source.spec)
        except ValueError:
            policy = None
        entries = store.count(source.enrichment_id)
        oldest, newest = store.oldest_newest(source.enrichment_id)
        window, totals = store.stats(source.enrichment_id, window_seconds=HIT_RATE_WINDOW_SECONDS, now=now)
        rows.append({
            "source": source.enrichment_id,
            "type": source.source_type,
            "enabled": source.enabled,
            "entries": entries,
            "max_entries": policy.max_entries if policy else None,
            "ttl_seconds": policy.ttl if policy else None,
            "stale_fallback": policy.stale_fallback if policy else None,
            "oldest_entry_age_seconds": round(now - oldest, 1) if oldest else None,
            "newest_entry_age_seconds": round(now - newest, 1) if newest else None,
            "hit_rate": hit_rate(window),
            "window": {k: window.get(k, 0) for k in ("hit", "miss", "stale", "error", "evicted")},
            "since_clear": {k: totals.get(k, 0) for k in ("hit", "miss", "stale", "error", "evicted")},
        })
    return rows


def cache_status() -> dict:
    """Runbook B.2 step 1: backend, entries per source, freshness and the refresh in progress."""
    store, now = cache_store(), now_seconds()
    try:
        sources = _source_rows(store, now)
        reachable, problem = True, ""
    except Exception as exc:  # Redis down: say so instead of failing the page
        sources, reachable, problem = [], False, f"{type(exc).__name__}: {exc}"
    return {
        "backend": store.backend,
        "shared": store.shared,
        "reachable": reachable,
        "problem": problem,
        "entries": sum(s["entries"] for s in sources),
        "sources": sources,
        "refresh": cache_refresh_status(),
    }


def cache_stats() -> dict:
    """Runbook B.2 step 5: entry counts and hit rates per source (last 15 minutes, since the last clear,
    and since the counters began)."""
    status = cache_status()
    durable = enrichment_lookup_totals()
    window = Counter()
    for s in status["sources"]:
        window.update(s["window"])
    return {
        "backend": status["backend"],
        "reachable": status["reachable"],
        "window_seconds": HIT_RATE_WINDOW_SECONDS,
        "entries": status["entries"],
        "hit_rate": hit_rate(window),
        "sources": [
            {**{k: s[k] for k in ("source", "entries", "max_entries", "hit_rate", "window", "since_clear")},
             "lookups_total": durable.get(s["source"], {})}
            for s in status["sources"]
        ],
    }


def enrichment_lookup_totals() -> dict[str, dict[str, int]]:
    """beta_enrichment_lookups_total by source and result (durable counters)."""
    from monitoring.models import MetricCounter

    totals: dict[str, dict[str, int]] = defaultdict(dict)
    for labels, value in MetricCounter.objects.filter(name="beta_enrichment_lookups_total").values_list("labels", "value"):
        parts = dict(p.split("=", 1) for p in labels.split(",") if "=" in p)
        totals[parts.get("source", "")][parts.get("result", "")] = value
    return dict(totals)


# --- the Beta dashboard -------------------------------------------------------------------------

def transform_runs(*, since: datetime) -> list[dict]:
    return list(TransformRun.objects.filter(at__gte=since).order_by("at").values(
        "at", "source_id", "schema", "records", "transformed", "failed", "dropped", "rejected", "filtered",
        "quality_sum", "scored", "duration_seconds", "rules", "enrichment", "worker", "cpu_seconds", "rss_bytes",
        "threads",
    ))


def _bucket(at: datetime, start: datetime, width: timedelta) -> int:
    return int((at - start) / width)


def beta_dashboard(*, minutes: int = 60, slots: int = 12, now: datetime | None = None) -> dict[str, Any]:
    """The six panels of the manual's Module Beta dashboard, from TransformRun rows (one per batch)."""
    now = now or timezone.now()
    minutes = max(5, min(minutes, 24 * 60))
    start = now - timedelta(minutes=minutes)
    width = timedelta(minutes=minutes) / slots
    runs = transform_runs(since=start)
    labels = [(start + width * i) for i in range(slots)]

    throughput = [0] * slots
    for run in runs:
        throughput[min(slots - 1, _bucket(run["at"], start, width))] += run["transformed"]
    day = TransformRun.objects.filter(at__gte=now - timedelta(hours=24), at__lt=start).aggregate(
        n=Sum("transformed"), first=Min("at"))
    baseline = None
    if day["n"] and day["first"]:
        span = max((start - day["first"]).total_seconds(), width.total_seconds())
        baseline = day["n"] / span * width.total_seconds()

    rule_time: dict[str, list[list[float]]] = defaultdict(lambda: [[0.0, 0] for _ in range(slots)])
    rule_totals: dict[str, Counter] = defaultdict(Counter)
    enrich: dict[str, Counter] = defaultdict(Counter)
    enrich_series: dict[str, list[Counter]] = defaultdict(lambda: [Counter() for _ in range(slots)])
    schemas: dict[str, list[Counter]] = defaultdict(lambda: [Counter() for _ in range(slots)])
    workers: dict[str, dict] = {}
    for run in runs:
        slot = min(slots - 1, _bucket(run["at"], start, width))
        for rule_id, s in (run["rules"] or {}).items():
            cell = rule_time[rule_id][slot]
            cell[0] += s.get("seconds", 0.0)
            cell[1] += s.get("executions", 0)
            rule_totals[rule_id].update({k: s.get(k, 0) for k in ("executions", "matches", "failures", "dropped")})
        for source, s in (run["enrichment"] or {}).items():
            counts = Counter({k: s.get(k, 0) for k in ("lookups", "hit", "miss", "stale", "error")})
            counts["micros"] += int(s.get("seconds", 0.0) * 1_000_000)
            counts["fetches"] += 1 if s.get("miss", 0) + s.get("stale", 0) + s.get("error", 0) else 0
            enrich[source].update(counts)
            enrich_series[source][slot].update(counts)
        mapped = run["transformed"] + run["dropped"]
        schemas[run["schema"]][slot].update({"success": mapped, "failure": run["records"] - mapped})
        w = workers.setdefault(run["worker"], Counter())
        w.update({"cpu": run["cpu_seconds"], "busy": run["duration_seconds"], "batches": 1})
        w["rss"], w["threads"], w["last"] = run["rss_bytes"], run["threads"], run["at"]

    heat = []
    for rule_id in sorted(rule_time):
        cells = [round(s / n * 1_000_000, 1) if n else None for s, n in rule_time[rule_id]]
        heat.append({"rule": rule_id, "cells": cells, **rule_totals[rule_id]})
    enrichment_rows = []
    for source in sorted(enrich):
        c = enrich[source]
        series = [hit_rate(Counter({k: b[k] for k in ("hit", "miss", "stale", "error")})) for b in enrich_series[source]]
        enrichment_rows.append({
            "source": source, "lookups": c["lookups"], "hit_rate": hit_rate(c), "stale": c["stale"], "errors": c["error"],
            "avg_fetch_ms": round(c["micros"] / c["fetches"] / 1000, 2) if c["fetches"] else None, "series": series,
        })
    schema_rows = []
    for schema in sorted(schemas):
        total = Counter()
        for b in schemas[schema]:
            total.update(b)
        n = total["success"] + total["failure"]
        schema_rows.append({
            "schema": schema, "success": total["success"], "failure": total["failure"],
            "success_rate": round(total["success"] / n, 4) if n else None,
            "series": [(b["success"], b["failure"]) for b in schemas[schema]],
        })
    worker_rows = [{
        "worker": name, "batches": w["batches"], "cpu_share": round(w["cpu"] / w["busy"], 3) if w["busy"] else None,
        "busy_share": round(w["busy"] / (minutes * 60), 4), "rss_mb": round(w["rss"] / 1048576, 1),
        "threads": w["threads"], "last": w["last"],
    } for name, w in sorted(workers.items())]
    scored = sum(r["scored"] for r in runs)
    return {
        "now": now, "minutes": minutes, "slot_minutes": minutes / slots, "labels": labels,
        "throughput": {"series": throughput, "baseline": round(baseline, 1) if baseline is not None else None,
                       "per_second": round(sum(throughput) / (minutes * 60), 2)},
        "quality": {"average": round(sum(r["quality_sum"] for r in runs) / scored, 4) if scored else None,
                    "scored": scored, "distribution": quality_distribution(hours=minutes / 60)},
        "enrichment": enrichment_rows,
        "rules": heat,
        "schemas": schema_rows,
        "workers": worker_rows,
        "queue": beta_queue_depth(),
        "drain": beta_drain_status(),
        "totals": {k: sum(r[k] for r in runs) for k in ("records", "transformed", "failed", "dropped", "rejected",
                                                        "filtered")},
    }


def recent_window_runs(*, seconds: int = HIT_RATE_WINDOW_SECONDS):
    """TransformRun rows of the last `seconds` (the gauges' window)."""
    return TransformRun.objects.filter(at__gte=timezone.now() - timedelta(seconds=seconds))
