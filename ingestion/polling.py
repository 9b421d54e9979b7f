"""Polling rest_api sources: fetch pages, parse them, ingest what is new, advance the cursor.

The cursor (SourceState.cursor) says where the next poll resumes and is saved in the same
transaction as the records it covers, so a worker killed at any instant neither skips nor repeats
records: either the page and its cursor are committed, or neither is and the page is fetched again.

Cursor, as JSON:
  url        the next-page link to fetch (a `Link: <...>; rel="next"` header or `polling.next_link_path`);
             after the last page, that page's own URL, fetched again next time for what was added to it
  page_ids   ids (`polling.id_field`, default `id`) already taken from the page at `url` (or, for an
             endpoint with neither links nor timestamps, from the last answer)
  since      the newest `parsing.timestamp_field` value taken; sent as `polling.cursor_param` (default
             `since`) when no link is followed. Servers may answer `>= since`: the ids taken at exactly
             `since` (since_ids) are skipped, so records sharing a timestamp are neither lost nor repeated.
"""
import logging
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from typing import Any
from urllib.parse import urljoin

import httpx
import orjson
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from monitoring.metrics import FETCH_BUCKETS, PARSE_BUCKETS
from monitoring.services import counters_add, histogram_increments, labels_key
from opsconsole.audit import audit_record

from .choices import CONNECTION_FAILURES, PARSE_FAILURES, FailureKind, SourceHealth, SourceType
from .files import source_directory
from .models import Source, SourceError, SourceState
from .parsing import ParseError, Parsed, parse_csv, parse_jsonl, select_record_path
from .rest import SourceClient, SourceFetchError, request_budget_seconds
from .services import IngestRefused, alpha_control, records_ingest, source_state

logger = logging.getLogger(__name__)

ACCEPT = {"json": "application/json", "jsonl": "application/x-ndjson, application/jsonl", "csv": "text/csv"}
MAX_REMEMBERED_IDS = 10_000


@dataclass
class PollResult:
    source_id: str
    outcome: str  # ok, failed, skipped
    reason: str = ""
    pages: int = 0
    fetched: int = 0
    ingested: int = 0
    duplicates: int = 0
    unreadable: int = 0
    batch_ids: list[str] = field(default_factory=list)
    failure: dict | None = None

    def as_dict(self) -> dict:
        return asdict(self)


# --- bodies -------------------------------------------------------------------------------------------

@dataclass
class Page:
    parsed: Parsed
    next_url: str | None
    seconds: float


def _looks_like_html(response: httpx.Response) -> bool:
    content_type = response.headers.get("content-type", "").lower()
    head = response.content.lstrip()[:64].lower()
    return "text/html" in content_type or head.startswith((b"<!doctype html", b"<html"))


def _html_title(data: bytes) -> str:
    text = data[:4096].decode("utf-8", "replace")
    lower = text.lower()
    start, end = lower.find("<title>"), lower.find("</title>")
    return text[start + 7:end].strip()[:80] if 0 <= start < end else ""


def body_parse(response: httpx.Response, spec: dict) -> Page:
    """Records of one answer, and its next-page link; SourceFetchError (a parse kind) if unreadable."""
    parsing = spec.get("parsing") or {}
    polling = spec.get("polling") or {}
    fmt = parsing.get("format") or "json"
    data = response.content
    started = time.perf_counter()
    next_url = response.links.get("next", {}).get("url")
    if _looks_like_html(response):
        title = _html_title(data)
        raise SourceFetchError(FailureKind.HTML, "endpoint answered an HTML page, not " + fmt.upper()
                               + (f" (title: '{title}')" if title else ""), stage="parse",
                               status_code=response.status_code)
    if fmt == "json":
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SourceFetchError(FailureKind.INVALID_UTF8, f"body is not valid UTF-8 (byte {exc.start})",
                                   stage="parse", status_code=response.status_code) from exc
        try:
            document = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            shown = data[:60].decode("utf-8", "replace")
            raise SourceFetchError(FailureKind.NOT_JSON, f"body is not JSON ({exc}); it starts with {shown!r}",
                                   stage="parse", status_code=response.status_code) from exc
        try:
            selected = select_record_path(document, parsing.get("record_path"))
        except ParseError as exc:
            raise SourceFetchError(FailureKind.RECORD_PATH, str(exc), stage="parse",
                                   status_code=response.status_code) from exc
        if isinstance(selected, dict):
            selected = [selected]
        if not isinstance(selected, list):
            raise SourceFetchError(FailureKind.RECORD_PATH, f"record_path {parsing.get('record_path') or '$'} is a "
                                   f"{type(selected).__name__}, not a list of records", stage="parse",
                                   status_code=response.status_code)
        parsed = Parsed(records=selected)
        if polling.get("next_link_path"):
            try:
                link = select_record_path(document, polling["next_link_path"])
            except ParseError:
                link = None
            next_url = link if isinstance(link, str) and link else next_url
    elif fmt == "jsonl":
        parsed = parse_jsonl(data)
        if parsed.bad and not parsed.records:
            raise SourceFetchError(FailureKind.NOT_JSON, f"no line of the body is JSON ({parsed.bad[0][2]})",
                                   stage="parse", status_code=response.status_code)
    else:
        try:
            parsed = parse_csv(data)
        except ParseError as exc:
            raise SourceFetchError(FailureKind.PARSE, str(exc), stage="parse", status_code=response.status_code) from exc
    if next_url:
        next_url = urljoin(str(response.request.url), next_url)
    return Page(parsed=parsed, next_url=next_url, seconds=time.perf_counter() - started)


# --- cursor -------------------------------------------------------------------------------------------

def timestamp_key(value: Any) -> tuple | None:
    """A comparable form of a timestamp: numbers as numbers, ISO 8601 strings as instants."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return (0, float(value))
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return (2, value)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=dt_timezone.utc)
        return (1, moment.timestamp())
    return None


def _record_id(record: Any, id_field: str) -> str | None:
    if isinstance(record, dict) and record.get(id_field) is not None:
        return str(record[id_field])
    return None


def cursor_filter(records: list, cursor: dict, *, spec: dict, fetched_url: str | None) -> tuple[list, int]:
    """The records not taken before (by page ids and by timestamp), and how many were skipped."""
    polling = spec.get("polling") or {}
    id_field = polling.get("id_field") or "id"
    ts_field = (spec.get("parsing") or {}).get("timestamp_field")
    page_ids = set(cursor.get("page_ids") or []) if fetched_url == cursor.get("url") else set()
    use_since = ts_field and not cursor.get("url") and cursor.get("since") is not None
    since = timestamp_key(cursor.get("since")) if use_since else None
    since_ids = set(cursor.get("since_ids") or [])
    fresh = []
    for record in records:
        rid = _record_id(record, id_field)
        if rid is not None and rid in page_ids:
            continue
        if since is not None and isinstance(record, dict):
            key = timestamp_key(record.get(ts_field))
            if key is not None and key[0] == since[0] and (key[1] < since[1] or (key[1] == since[1] and rid in since_ids)):
                continue
        fresh.append(record)
    return fresh, len(records) - len(fresh)


def cursor_advance(cursor: dict, records: list, *, spec: dict, fetched_url: str | None, next_url: str | None) -> dict:
    """The cursor after a page has been taken."""
    polling = spec.get("polling") or {}
    id_field = polling.get("id_field") or "id"
    ts_field = (spec.get("parsing") or {}).get("timestamp_field")
    ids = [rid for rid in (_record_id(r, id_field) for r in records) if rid is not None]
    new = dict(cursor)
    if next_url:
        new["url"], new["page_ids"] = next_url, []
    elif fetched_url is not None:  # the last page of a linked feed: fetch it again next time
        same = fetched_url == cursor.get("url")
        new["url"] = fetched_url
        new["page_ids"] = sorted(set(cursor.get("page_ids") or []) | set(ids) if same else set(ids))[-MAX_REMEMBERED_IDS:]
    elif not ts_field:  # neither links nor timestamps: remember the ids of the last answer
        new["page_ids"] = sorted(set(cursor.get("page_ids") or []) | set(ids))[-MAX_REMEMBERED_IDS:]
    if ts_field:
        best = timestamp_key(cursor.get("since")) if cursor.get("since") is not None else None
        since, since_ids = cursor.get("since"), set(cursor.get("since_ids") or [])
        for record in records:
            if not isinstance(record, dict):
                continue
            value = record.get(ts_field)
            key = timestamp_key(value)
            if key is None:
                continue
            rid = _record_id(record, id_field)
            if best is None or key > best:
                best, since, since_ids = key, value, set()
            if key == best and rid is not None:
                since_ids.add(rid)
        if since is not None:
            new["since"], new["since_ids"] = since, sorted(since_ids)[-MAX_REMEMBERED_IDS:]
    return new


# --- health -------------------------------------------------------------------------------------------

def _failure_record(source_id: str, failure: SourceFetchError, *, counts: Counter | None = None) -> None:
    """Count a failed poll on the source's health, its error list and the metrics (one transaction)."""
    now = timezone.now()
    counts = counts or Counter()
    with transaction.atomic():
        source_state(source_id)
        state = SourceState.objects.select_for_update().get(source_id=source_id)
        state.consecutive_failures += 1
        unhealthy_after = max(1, settings.ALPHA_UNHEALTHY_AFTER_FAILURES)
        state.health = SourceHealth.UNHEALTHY if state.consecutive_failures >= unhealthy_after else SourceHealth.DEGRADED
        state.connected = failure.kind not in CONNECTION_FAILURES
        state.last_poll_at = now
        state.last_poll_outcome = "failed"
        state.last_error_at = now
        state.last_error_kind = failure.kind
        state.last_error = failure.message[:2000]
        state.save()
        SourceError.objects.create(source_id=source_id, kind=failure.kind, stage=failure.stage,
                                   status_code=failure.status_code, message=failure.message[:2000])
        counts[("alpha_source_errors_total", labels_key({"source": source_id, "kind": failure.kind}))] += 1
        counts[("alpha_source_polls_total", labels_key({"source": source_id, "outcome": "failed"}))] += 1
        if failure.kind in PARSE_FAILURES:
            counts[("alpha_parse_errors_total", labels_key({"source": source_id}))] += 1
        counters_add(counts)
    logger.warning("poll of %s failed (%s, %s): %s", source_id, failure.kind, failure.stage, failure.message,
                   extra={"source_id": source_id, "component": "poll", "module_name": "alpha",
                          "details": {"kind": failure.kind, "stage": failure.stage, "status_code": failure.status_code}})


def _skip_record(source_id: str, reason: str) -> None:
    SourceState.objects.filter(source_id=source_id).update(last_poll_at=timezone.now(), last_poll_outcome=reason[:20])
    counters_add({("alpha_source_polls_total", labels_key({"source": source_id, "outcome": "skipped"})): 1})


def _lease_take(source_id: str, seconds: float) -> bool:
    source_state(source_id)
    now = timezone.now()
    return bool(SourceState.objects.filter(source_id=source_id).filter(
        Q(poll_lease_until__isnull=True) | Q(poll_lease_until__lt=now)
    ).update(poll_lease_until=now + timedelta(seconds=seconds)))


def _lease_renew(source_id: str, seconds: float) -> None:
    SourceState.objects.filter(source_id=source_id).update(poll_lease_until=timezone.now() + timedelta(seconds=seconds))


def _lease_release(source_id: str) -> None:
    SourceState.objects.filter(source_id=source_id).update(poll_lease_until=None)


# --- polling ------------------------------------------------------------------------------------------

def _poll_gate(source: Source | None, source_id: str) -> str:
    """Why a poll must not run now ('' when it may)."""
    if source is None:
        return "unknown source"
    if source.source_type != SourceType.REST_API:
        return f"not a rest_api source ({source.source_type})"
    if not source.enabled:
        return "disabled"
    if alpha_control().paused:
        return "paused"
    if SourceState.objects.filter(source_id=source_id, paused=True).exists():
        return "source paused"
    return ""


def source_poll(*, source_id: str) -> PollResult:
    """Poll a rest_api source once: follow its pages (up to polling.max_pages), ingest what is new.

    Each page is committed with its cursor. A failure is counted with its kind and reason on the
    source's health (UNHEALTHY after ALPHA_UNHEALTHY_AFTER_FAILURES in a row; the next success heals
    it); the cursor stays, so the records are fetched again. Paused ingestion, a full buffer or a
    throttled one stop the poll early, with nothing lost."""
    source = Source.objects.filter(source_id=source_id).first()
    gate = _poll_gate(source, source_id)
    if gate:
        if source is not None and gate != "disabled":
            _skip_record(source_id, gate)
        return PollResult(source_id, "skipped", gate)
    spec = source.spec
    connection = spec.get("connection") or {}
    polling = spec.get("polling") or {}
    lease = request_budget_seconds(connection) + 15  # renewed before every page
    if not _lease_take(source_id, lease):
        return PollResult(source_id, "skipped", "another poll of this source is running")
    result = PollResult(source_id, "ok")
    try:
        _poll_pages(source_id, spec, connection, polling, result, lease)
    except SourceFetchError as failure:
        result.outcome, result.reason, result.failure = "failed", f"{failure.kind}: {failure.message}", failure.as_dict()
        _failure_record(source_id, failure)
    finally:
        _lease_release(source_id)
    return result


def _poll_pages(source_id: str, spec: dict, connection: dict, polling: dict, result: PollResult, lease: float) -> None:
    parsing = spec.get("parsing") or {}
    fmt = parsing.get("format") or "json"
    ts_field = parsing.get("timestamp_field")
    batch_size = polling.get("batch_size") or settings.INGEST_BATCH_SIZE
    max_pages = polling.get("max_pages") or settings.ALPHA_MAX_PAGES_PER_POLL
    page_size_param = polling.get("page_size_param", "limit")
    cursor_param = polling.get("cursor_param", "since")
    endpoint = connection["endpoint"]
    with SourceClient(source_id=source_id, spec=spec) as client:
        for _ in range(max_pages):
            cursor = dict(SourceState.objects.get(source_id=source_id).cursor or {})
            url = cursor.get("url")
            params: dict = {}
            if url is None:
                if page_size_param:
                    params[page_size_param] = batch_size
                if ts_field and cursor_param and cursor.get("since") is not None:
                    params[cursor_param] = cursor["since"]
            _lease_renew(source_id, lease)
            started = time.perf_counter()
            response = client.get(url or endpoint, params=params or None, headers={"Accept": ACCEPT.get(fmt, "*/*")})
            fetch_seconds = time.perf_counter() - started
            page = body_parse(response, spec)
            fresh, duplicates = cursor_filter(page.parsed.records, cursor, spec=spec, fetched_url=url)
            new_cursor = cursor_advance(cursor, page.parsed.records, spec=spec, fetched_url=url, next_url=page.next_url)
            try:
                batches = _page_commit(source_id, cursor, new_cursor, fresh, page, fetch_seconds, batch_size,
                                       origin=f"poll:{str(response.request.url)[:200]}")
            except IngestRefused as refused:
                result.reason = refused.reason
                _skip_record(source_id, refused.reason)
                return
            if batches is None:  # another poll moved the cursor: stop, it has this page
                result.reason = "cursor moved by another poll"
                return
            result.pages += 1
            result.fetched += len(page.parsed.records) + len(page.parsed.bad)
            result.ingested += len(fresh)
            result.duplicates += duplicates
            result.unreadable += len(page.parsed.bad)
            result.batch_ids += [str(b.id) for b in batches]
            more = bool(page.next_url) or (
                ts_field and not url and len(page.parsed.records) >= batch_size and bool(fresh))
            if not more:
                return


def _page_commit(source_id: str, cursor: dict, new_cursor: dict, fresh: list, page: Page, fetch_seconds: float,
                 batch_size: int, *, origin: str) -> list | None:
    """Ingest a page's new records and move the cursor past them, in one transaction."""
    now = timezone.now()
    with transaction.atomic():
        state = SourceState.objects.select_for_update().get(source_id=source_id)
        if (state.cursor or {}) != cursor:
            return None
        batches = []
        if fresh or page.parsed.bad:
            batches = records_ingest(source_id=source_id, records=fresh, bad=page.parsed.bad, origin=origin,
                                     parse_seconds=page.seconds, batch_size=batch_size)
        state.cursor = new_cursor
        state.consecutive_failures = 0
        state.health = SourceHealth.HEALTHY
        state.connected = True
        state.last_poll_at = now
        state.last_poll_outcome = "ok"
        state.last_success_at = now
        state.save()
        counts = histogram_increments("alpha_source_fetch_duration_seconds", {"source": source_id}, FETCH_BUCKETS,
                                      [fetch_seconds])
        if not (fresh or page.parsed.bad):
            counts.update(histogram_increments("alpha_parse_duration_seconds", {"source": source_id}, PARSE_BUCKETS,
                                               [page.seconds]))
        counts[("alpha_source_polls_total", labels_key({"source": source_id, "outcome": "ok"}))] += 1
        counters_add(counts)
    return batches


# --- connectivity test (Runbook A.1 step 6) ------------------------------------------------------------

def source_test(*, source_id: str, actor) -> dict:
    """Check that a source can be reached and authenticates, once, now: latency and the precise failure.

    rest_api: resolve the credential references, fetch a fresh OAuth2 token (when used), GET the
    endpoint for one record and read the answer. file: the directory exists and is readable.
    http_push: nothing to connect to. The answer is kept on the source's state and audited."""
    source = Source.objects.filter(source_id=source_id).first()
    if source is None:
        from opsconsole.errors import ApplicationError

        raise ApplicationError(f"Unknown source '{source_id}'.", status_code=404)
    started = time.perf_counter()
    steps: list[dict] = []
    answer: dict = {"source_id": source_id, "source_type": source.source_type, "enabled": source.enabled,
                    "ok": False, "checked_at": timezone.now().isoformat(), "latency_ms": None, "steps": steps,
                    "failure": None}
    try:
        if source.source_type == SourceType.REST_API:
            _test_rest(source, steps, answer)
        elif source.source_type == SourceType.FILE:
            directory = source_directory(source.spec)
            step_started = time.perf_counter()
            if not directory.is_dir():
                raise SourceFetchError(FailureKind.DIRECTORY, f"directory {directory} does not exist", stage="file")
            try:
                pending = sum(1 for p in directory.iterdir() if p.is_file())
            except OSError as exc:
                raise SourceFetchError(FailureKind.DIRECTORY, f"directory {directory} cannot be read ({exc.strerror})",
                                       stage="file") from exc
            steps.append({"step": "directory", "ok": True, "latency_ms": _ms(step_started),
                          "detail": f"{directory}: {pending} file(s) waiting"})
        else:
            steps.append({"step": "push", "ok": True, "latency_ms": 0,
                          "detail": f"push source: clients POST to /api/sources/{source_id}/records"})
        answer["ok"] = True
    except SourceFetchError as failure:
        answer["failure"] = failure.as_dict()
        steps.append({"step": failure.stage, "ok": False, "kind": failure.kind, "detail": failure.message})
    answer["latency_ms"] = _ms(started)
    with transaction.atomic():
        source_state(source_id)
        fields = {"last_test": answer}
        if source.source_type == SourceType.REST_API:
            fields["connected"] = answer["ok"] or (answer["failure"]["kind"] not in CONNECTION_FAILURES)
        SourceState.objects.filter(source_id=source_id).update(**fields)
        audit_record(actor=actor, action="alpha.source.test", target=f"source:{source_id}",
                     details={"ok": answer["ok"], "latency_ms": answer["latency_ms"],
                              "failure_kind": (answer["failure"] or {}).get("kind")})
    return answer


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 1)


def _test_rest(source: Source, steps: list, answer: dict) -> None:
    spec = source.spec
    connection = spec.get("connection") or {}
    polling = spec.get("polling") or {}
    step_started = time.perf_counter()
    client = SourceClient(source_id=source.source_id, spec=spec, retries=0)
    steps.append({"step": "credentials", "ok": True, "latency_ms": _ms(step_started),
                  "detail": f"auth_type {client.credentials.auth_type}: references resolved"})
    with client:
        if client.credentials.auth_type == "oauth2":
            step_started = time.perf_counter()
            client.token(fresh=True)
            steps.append({"step": "token", "ok": True, "latency_ms": _ms(step_started),
                          "detail": "token endpoint issued an access token"})
        step_started = time.perf_counter()
        page_size_param = polling.get("page_size_param", "limit")
        fmt = (spec.get("parsing") or {}).get("format") or "json"
        response = client.get(connection["endpoint"], params={page_size_param: 1} if page_size_param else None,
                              headers={"Accept": ACCEPT.get(fmt, "*/*")})
        fetch_ms = _ms(step_started)
        answer["status_code"] = response.status_code
        steps.append({"step": "fetch", "ok": True, "latency_ms": fetch_ms,
                      "detail": f"HTTP {response.status_code} in {fetch_ms} ms"})
        answer["endpoint_latency_ms"] = fetch_ms
        step_started = time.perf_counter()
        page = body_parse(response, spec)
        steps.append({"step": "parse", "ok": True, "latency_ms": _ms(step_started),
                      "detail": f"{len(page.parsed.records)} record(s) readable"})
