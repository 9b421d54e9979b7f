"""Enrichment sources (beta/enrichment/*.yaml) and batch lookups through the cache (Runbook B.2).

A source file:

    enrichment_id: customer_db
    type: postgresql            # postgresql | http | csv
    enabled: true
    connection:                 # postgresql: host, port, database, username_ref, password_ref, ssl_mode
      ...                       # http: url (with {key}), headers, token_ref;  csv: path
      timeout_ms: 2000
    lookup:
      table: customers          # postgresql: table, or query with %(keys)s
      key_column: customer_id   # postgresql and csv: the column holding the key
      key_type: text            # postgresql: text | int
      fields: [segment, region] # the fields a lookup returns (default: all)
      record_path: data         # http: where the object is in the JSON answer
    cache:
      ttl_seconds: 3600
      max_entries: 100000
      stale_fallback: true
      stale_max_age_seconds: 86400
      negative_ttl_seconds: 300

An enrich rule names the source and the record field that holds the key. A batch looks each
distinct key up once: fresh cache entries first, the rest from the source in one query (postgresql),
one request per key (http, stopping at the first connection failure) or the loaded file (csv).
When the source fails, a stale entry is used if the source allows it; otherwise the lookup is an
error and the rule's on_failure decides. A disabled source is answered from the cache alone.
"""
import csv
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from django.conf import settings

from .cache import Entry, cache_store, now_seconds
from .choices import EnrichmentType

logger = logging.getLogger(__name__)

DEFAULT_TTL = 3600
DEFAULT_MAX_ENTRIES = 100_000
DEFAULT_STALE_MAX_AGE = 86_400
DEFAULT_TIMEOUT_MS = 2000
HIT_RATE_WINDOW_SECONDS = 900
REFRESH_CHUNK = 500


class EnrichmentConfigError(ValueError):
    """A source file that cannot be used; `field` is the offending key."""

    def __init__(self, field: str, reason: str):
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class SourceUnavailable(Exception):
    """The source could not answer (down, timed out, answered garbage)."""


@dataclass
class LookupResult:
    row: dict | None = None
    error: str | None = None
    stale: bool = False


@dataclass
class LookupStats:
    lookups: int = 0
    hit: int = 0
    miss: int = 0
    stale: int = 0
    error: int = 0
    fetch_seconds: list[float] = field(default_factory=list)

    def merge(self, other: "LookupStats") -> None:
        for name in ("lookups", "hit", "miss", "stale", "error"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.fetch_seconds.extend(other.fetch_seconds)

    def counts(self) -> Counter:
        return Counter({k: getattr(self, k) for k in ("hit", "miss", "stale", "error") if getattr(self, k)})


@dataclass
class LookupBatch:
    results: dict[str, LookupResult]
    stats: LookupStats

    def get(self, key: str) -> LookupResult | None:
        return self.results.get(key)


# --- source specs -------------------------------------------------------------------------------

@dataclass
class CachePolicy:
    ttl: float
    max_entries: int
    stale_fallback: bool
    stale_max_age: float
    negative_ttl: float

    @property
    def keep_seconds(self) -> float:
        return self.ttl + (self.stale_max_age if self.stale_fallback else 0)


def _mapping(spec: dict, key: str) -> dict:
    value = spec.get(key) or {}
    if not isinstance(value, dict):
        raise EnrichmentConfigError(key, "must be a mapping")
    return value


def _positive(section: dict, key: str, where: str, default: float) -> float:
    value = section.get(key, default)
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
        raise EnrichmentConfigError(f"{where}.{key}", "must be a positive number")
    return value


def cache_policy(spec: dict) -> CachePolicy:
    cache = _mapping(spec, "cache")
    ttl = _positive(cache, "ttl_seconds", "cache", DEFAULT_TTL)
    stale = cache.get("stale_fallback", False)
    if not isinstance(stale, bool):
        raise EnrichmentConfigError("cache.stale_fallback", "must be true or false")
    return CachePolicy(
        ttl=float(ttl),
        max_entries=int(_positive(cache, "max_entries", "cache", DEFAULT_MAX_ENTRIES)),
        stale_fallback=stale,
        stale_max_age=float(_positive(cache, "stale_max_age_seconds", "cache", DEFAULT_STALE_MAX_AGE)),
        negative_ttl=float(_positive(cache, "negative_ttl_seconds", "cache", min(ttl, 300))),
    )


def csv_path(path: str) -> Path:
    """A CSV source's file: absolute, or relative to the configuration tree."""
    candidate = Path(path)
    return candidate if candidate.is_absolute() else Path(settings.PIPELINE_CONFIG_DIR) / candidate


class Fetcher:
    """Reads rows by key from one source."""

    kind = ""
    enumerable = False  # can list all its rows (for a full refresh)

    def __init__(self, spec: dict):
        self.spec = spec
        self.connection = _mapping(spec, "connection")
        self.lookup = _mapping(spec, "lookup")
        self.timeout = _positive(self.connection, "timeout_ms", "connection", DEFAULT_TIMEOUT_MS) / 1000.0
        fields = self.lookup.get("fields")
        if fields is not None and (not isinstance(fields, list) or not all(isinstance(f, str) and f for f in fields)):
            raise EnrichmentConfigError("lookup.fields", "must be a list of field names")
        self.fields = fields

    def pick(self, row: dict) -> dict:
        return {k: row[k] for k in self.fields if k in row} if self.fields else dict(row)

    def fetch(self, keys: list[str]) -> dict[str, dict | None]:
        """{key: row or None (not found)} for every key; SourceUnavailable when the source fails as a whole.
        A per-key failure is given as an exception value in the answer."""
        raise NotImplementedError

    def rows(self, limit: int) -> Iterator[tuple[str, dict]]:
        raise NotImplementedError

    def close(self) -> None:
        pass


class PostgresFetcher(Fetcher):
    kind = EnrichmentType.POSTGRESQL

    def __init__(self, spec: dict):
        super().__init__(spec)
        from psycopg import sql

        for key in ("host", "database"):
            if not isinstance(self.connection.get(key), str) or not self.connection.get(key):
                raise EnrichmentConfigError(f"connection.{key}", "is required for a postgresql source")
        port = self.connection.get("port", 5432)
        if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
            raise EnrichmentConfigError("connection.port", "must be a port number")
        self.key_column = self.lookup.get("key_column")
        if not isinstance(self.key_column, str) or not self.key_column:
            raise EnrichmentConfigError("lookup.key_column", "is required (the column holding the key)")
        self.key_type = self.lookup.get("key_type", "text")
        if self.key_type not in ("text", "int"):
            raise EnrichmentConfigError("lookup.key_type", "must be text or int")
        table, query = self.lookup.get("table"), self.lookup.get("query")
        if bool(table) == bool(query):
            raise EnrichmentConfigError("lookup.table", "give either table or query")
        if query is not None:
            if not isinstance(query, str) or "%(keys)s" not in query:
                raise EnrichmentConfigError("lookup.query", "must be a SELECT using %(keys)s, e.g. WHERE id = ANY(%(keys)s)")
            if not query.lstrip().lower().startswith(("select", "with")):
                raise EnrichmentConfigError("lookup.query", "must be a SELECT (or WITH ... SELECT) statement")
            self.by_keys = sql.SQL(query)
            self.all_rows = None
        else:
            if not isinstance(table, str):
                raise EnrichmentConfigError("lookup.table", "must be a table name (schema.table allowed)")
            name = sql.Identifier(*table.split("."))
            columns = sql.SQL(", ").join(sql.Identifier(c) for c in dict.fromkeys([self.key_column, *(self.fields or [])])) \
                if self.fields else sql.SQL("*")
            self.by_keys = sql.SQL("SELECT {} FROM {} WHERE {} = ANY(%(keys)s)").format(
                columns, name, sql.Identifier(self.key_column))
            self.all_rows = sql.SQL("SELECT {} FROM {} ORDER BY {} LIMIT %(limit)s").format(
                columns, name, sql.Identifier(self.key_column))
            self.enumerable = True
        self._conn = None
        self._lock = threading.Lock()

    def _connect(self):
        import psycopg
        from psycopg.rows import dict_row

        from configuration.secrets import SecretError, resolve_secret

        c = self.connection
        try:
            user = resolve_secret(c["username_ref"]) if c.get("username_ref") else c.get("username", "postgres")
            password = resolve_secret(c["password_ref"]) if c.get("password_ref") else None
        except SecretError as exc:
            raise SourceUnavailable(f"credentials: {exc}") from exc
        timeout_ms = int(self.timeout * 1000)
        try:
            return psycopg.connect(
                host=c["host"], port=c.get("port", 5432), dbname=c["database"], user=user, password=password,
                sslmode=c.get("ssl_mode", "prefer"), connect_timeout=max(1, int(self.timeout + 0.999)),
                options=f"-c statement_timeout={timeout_ms}", autocommit=True, row_factory=dict_row,
            )
        except psycopg.Error as exc:
            raise SourceUnavailable(f"cannot connect: {type(exc).__name__}: {str(exc).strip()[:200]}") from exc

    def _run(self, query, params) -> list[dict]:
        import psycopg

        with self._lock:
            for attempt in (1, 2):
                if self._conn is None or self._conn.closed:
                    self._conn = self._connect()
                try:
                    return self._conn.execute(query, params).fetchall()
                except psycopg.OperationalError as exc:
                    self.close()
                    if attempt == 2 or "statement timeout" in str(exc) or "canceling statement" in str(exc):
                        raise SourceUnavailable(f"query failed: {str(exc).strip()[:200]}") from exc
                except psycopg.Error as exc:
                    raise SourceUnavailable(f"query failed: {type(exc).__name__}: {str(exc).strip()[:200]}") from exc
        raise SourceUnavailable("query failed")

    def _keys_param(self, keys: list[str]) -> list:
        if self.key_type == "int":
            out = []
            for k in keys:
                try:
                    out.append(int(k))
                except ValueError:
                    continue
            return out
        return keys

    def fetch(self, keys: list[str]) -> dict[str, dict | None]:
        rows = self._run(self.by_keys, {"keys": self._keys_param(keys)})
        found: dict[str, dict | None] = {k: None for k in keys}
        for row in rows:
            if self.key_column not in row:
                raise SourceUnavailable(f"the query's rows have no column '{self.key_column}' (lookup.key_column)")
            found[str(row[self.key_column])] = _jsonable(self.pick(row))
        return found

    def rows(self, limit: int) -> Iterator[tuple[str, dict]]:
        for row in self._run(self.all_rows, {"limit": limit}):
            yield str(row[self.key_column]), _jsonable(self.pick(row))

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:
                pass
        self._conn = None


def _jsonable(row: dict) -> dict:
    """Database values as JSON values (dates and decimals as ISO text and strings)."""
    out = {}
    for key, value in row.items():
        if value is None or isinstance(value, (str, int, float, bool, list, dict)):
            out[key] = value
        elif hasattr(value, "isoformat"):
            out[key] = value.isoformat()
        else:
            out[key] = str(value)
    return out


class HttpFetcher(Fetcher):
    kind = EnrichmentType.HTTP

    def __init__(self, spec: dict):
        super().__init__(spec)
        url = self.connection.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")) or "{key}" not in url:
            raise EnrichmentConfigError("connection.url", "is required: an http(s) URL with {key} where the key goes")
        self.url = url
        headers = self.connection.get("headers") or {}
        if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
            raise EnrichmentConfigError("connection.headers", "must be a mapping of header: text")
        self.headers = dict(headers)
        self.token_ref = self.connection.get("token_ref")
        self.record_path = self.lookup.get("record_path")
        if self.record_path is not None and not isinstance(self.record_path, str):
            raise EnrichmentConfigError("lookup.record_path", "must be a dotted path")
        self.deadline = _positive(self.connection, "batch_deadline_ms", "connection", self.timeout * 1000 * 5) / 1000.0

    def fetch(self, keys: list[str]) -> dict[str, Any]:
        import httpx

        from configuration.secrets import SecretError, resolve_secret

        headers = {"Accept": "application/json", **self.headers}
        if self.token_ref:
            try:
                headers["Authorization"] = f"Bearer {resolve_secret(self.token_ref)}"
            except SecretError as exc:
                raise SourceUnavailable(f"credentials: {exc}") from exc
        found: dict[str, Any] = {}
        started = time.monotonic()
        with httpx.Client(timeout=self.timeout, headers=headers, follow_redirects=False) as client:
            for key in keys:
                if time.monotonic() - started > self.deadline:
                    raise SourceUnavailable(f"batch deadline of {self.deadline:g} s passed after {len(found)} lookups")
                try:
                    response = client.get(self.url.replace("{key}", quote(key, safe="")))
                except httpx.TimeoutException as exc:
                    raise SourceUnavailable(f"timed out after {self.timeout:g} s") from exc
                except httpx.HTTPError as exc:
                    raise SourceUnavailable(f"{type(exc).__name__}: {str(exc)[:200]}") from exc
                if response.status_code == 404:
                    found[key] = None
                    continue
                if response.status_code >= 500:
                    raise SourceUnavailable(f"answered HTTP {response.status_code}")
                if response.status_code != 200:
                    found[key] = SourceUnavailable(f"answered HTTP {response.status_code}")
                    continue
                found[key] = self._row(response)
        return found

    def _row(self, response) -> Any:
        try:
            data = response.json()
        except ValueError:
            return SourceUnavailable("answer is not JSON")
        for part in (self.record_path.split(".") if self.record_path else []):
            data = data.get(part) if isinstance(data, dict) else None
        if data is None:
            return None
        if not isinstance(data, dict):
            return SourceUnavailable("answer is not a JSON object")
        return self.pick(data)


_csv_cache: dict[str, tuple[tuple, dict[str, dict]]] = {}
_csv_lock = threading.Lock()


class CsvFetcher(Fetcher):
    kind = EnrichmentType.CSV
    enumerable = True

    def __init__(self, spec: dict):
        super().__init__(spec)
        path = self.connection.get("path")
        if not isinstance(path, str) or not path:
            raise EnrichmentConfigError("connection.path", "is required (the CSV file)")
        self.path = path
        self.key_column = self.lookup.get("key_column")
        if not isinstance(self.key_column, str) or not self.key_column:
            raise EnrichmentConfigError("lookup.key_column", "is required (the column holding the key)")
        self.delimiter = self.lookup.get("delimiter", ",")
        if not isinstance(self.delimiter, str) or len(self.delimiter) != 1:
            raise EnrichmentConfigError("lookup.delimiter", "must be one character")

    def table(self) -> dict[str, dict]:
        path = csv_path(self.path)
        try:
            stat = path.stat()
        except OSError as exc:
            raise SourceUnavailable(f"cannot read {path}: {exc.strerror}") from exc
        signature = (stat.st_mtime_ns, stat.st_size, self.key_column, self.delimiter)
        with _csv_lock:
            cached = _csv_cache.get(str(path))
            if cached and cached[0] == signature:
                return cached[1]
        try:
            with path.open(newline="", encoding="utf-8-sig") as handle:
                reader = csv.DictReader(handle, delimiter=self.delimiter)
                if self.key_column not in (reader.fieldnames or []):
                    raise SourceUnavailable(f"{path.name} has no column '{self.key_column}' (lookup.key_column)")
                table = {row[self.key_column]: self.pick({k: v for k, v in row.items() if k is not None})
                         for row in reader}
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise SourceUnavailable(f"cannot read {path.name}: {exc}") from exc
        with _csv_lock:
            _csv_cache[str(path)] = (signature, table)
        return table

    def fetch(self, keys: list[str]) -> dict[str, dict | None]:
        table = self.table()
        return {k: table.get(k) for k in keys}

    def rows(self, limit: int) -> Iterator[tuple[str, dict]]:
        for i, (key, row) in enumerate(self.table().items()):
            if i >= limit:
                break
            yield key, row


FETCHERS: dict[str, Callable[[dict], Fetcher]] = {
    EnrichmentType.POSTGRESQL: PostgresFetcher,
    EnrichmentType.HTTP: HttpFetcher,
    EnrichmentType.CSV: CsvFetcher,
}


def fetcher_build(spec: dict) -> Fetcher:
    """Compile a source spec; EnrichmentConfigError names the field at fault."""
    kind = spec.get("type")
    if kind is None:
        raise EnrichmentConfigError("type", f"is required ({', '.join(FETCHERS)})")
    if kind not in FETCHERS:
        raise EnrichmentConfigError("type", f"unknown enrichment type '{kind}' (known: {', '.join(FETCHERS)})")
    fetcher = FETCHERS[kind](spec)
    cache_policy(spec)
    return fetcher


def enrichment_source_check(spec: dict) -> list[tuple[str, str]]:
    """(field, reason) for every problem of a source file that structure alone cannot tell."""
    try:
        fetcher = fetcher_build(spec)
    except EnrichmentConfigError as exc:
        return [(exc.field, exc.reason)]
    problems = []
    if isinstance(fetcher, CsvFetcher) and not csv_path(fetcher.path).is_file():
        problems.append(("connection.path", f"file not found: {csv_path(fetcher.path)}"))
    return problems


# --- the registry: sources of the active configuration ------------------------------------------

@dataclass
class Source:
    enrichment_id: str
    enabled: bool
    spec: dict
    fetcher: Fetcher | None
    policy: CachePolicy
    problem: str = ""


class EnrichmentRegistry:
    """The enrichment sources of one configuration version, with the cache they share."""

    def __init__(self, specs: list[dict], *, store=None):
        self.sources: dict[str, Source] = {}
        for spec in specs:
            sid = spec.get("enrichment_id")
            try:
                fetcher, problem = fetcher_build(spec), ""
                policy = cache_policy(spec)
            except EnrichmentConfigError as exc:  # validated at reload; kept visible if it ever happens
                fetcher, problem = None, str(exc)
                policy = CachePolicy(DEFAULT_TTL, DEFAULT_MAX_ENTRIES, False, DEFAULT_STALE_MAX_AGE, 300)
            self.sources[sid] = Source(sid, bool(spec.get("enabled", True)), spec, fetcher, policy, problem)
        self._store = store

    @property
    def store(self):
        return self._store or cache_store()

    def lookup(self, source_id: str, keys: list[str]) -> LookupBatch:
        """Answers for every key (occurrences counted, each distinct key fetched at most once)."""
        stats = LookupStats(lookups=len(keys))
        source = self.sources.get(source_id)
        if source is None or source.fetcher is None:
            reason = source.problem if source else f"enrichment source '{source_id}' is not configured"
            stats.error = len(keys)
            return LookupBatch({k: LookupResult(error=reason) for k in keys}, stats)
        store, now, policy = self.store, now_seconds(), source.policy
        unique = list(dict.fromkeys(keys))
        try:
            cached = store.get_many(source_id, unique)
        except Exception as exc:  # the cache being down must not stop enrichment
            logger.warning("enrichment cache read failed: %s", exc, extra={"component": "enrichment"})
            cached = {}
        results: dict[str, LookupResult] = {}
        outcome: dict[str, str] = {}
        to_fetch = []
        for key in unique:
            entry = cached.get(key)
            if entry is not None and entry.age(now) < (policy.ttl if entry.value is not None else policy.negative_ttl):
                results[key], outcome[key] = LookupResult(row=entry.value), "hit"
            else:
                to_fetch.append(key)
        fetched: dict[str, Any] = {}
        failure = ""
        if to_fetch and not source.enabled:
            failure = "source is disabled (answering from the cache only)"
        elif to_fetch:
            started = time.perf_counter()
            try:
                fetched = source.fetcher.fetch(to_fetch)
            except SourceUnavailable as exc:
                failure = str(exc)
            except Exception as exc:  # garbage of any kind from a source is its failure, not ours
                failure = f"{type(exc).__name__}: {str(exc)[:200]}"
            stats.fetch_seconds.append(time.perf_counter() - started)
        fresh: dict[str, Any] = {}
        for key in to_fetch:
            value = fetched.get(key, SourceUnavailable(failure or "no answer"))
            if not isinstance(value, Exception):
                results[key], outcome[key] = LookupResult(row=value), "miss"
                fresh[key] = value
                continue
            entry = cached.get(key)
            if entry is not None and (policy.stale_fallback or not source.enabled) and entry.age(now) < policy.keep_seconds:
                results[key], outcome[key] = LookupResult(row=entry.value, stale=True), "stale"
            else:
                results[key], outcome[key] = LookupResult(error=str(value)), "error"
        if failure:
            logger.warning("enrichment source %s failed: %s", source_id, failure,
                           extra={"component": "enrichment", "details": {"keys": len(to_fetch)}})
        counts = Counter(outcome[k] for k in keys)
        stats.hit, stats.miss, stats.stale, stats.error = counts["hit"], counts["miss"], counts["stale"], counts["error"]
        try:
            evicted = store.put_many(source_id, fresh, now=now, max_entries=policy.max_entries,
                                     keep_seconds=policy.keep_seconds) if fresh else 0
            store.stats_add(source_id, Counter({**stats.counts(), "evicted": evicted}), now)
        except Exception as exc:
            logger.warning("enrichment cache write failed: %s", exc, extra={"component": "enrichment"})
        return LookupBatch(results, stats)

    def refresh(self, source_id: str, *, progress: Callable[[int, int], None] | None = None) -> dict:
        """Re-read a source into the cache: every row of a table or CSV file (up to max_entries), or the
        keys already cached for a query or HTTP source. Returns {keys, loaded, errors}."""
        source = self.sources.get(source_id)
        if source is None or source.fetcher is None:
            raise SourceUnavailable(source.problem if source else f"enrichment source '{source_id}' is not configured")
        if not source.enabled:
            raise SourceUnavailable(f"enrichment source '{source_id}' is disabled")
        store, policy, fetcher = self.store, source.policy, source.fetcher
        loaded = 0
        if fetcher.enumerable:
            rows = list(fetcher.rows(policy.max_entries))
            total = len(rows)
            for start in range(0, total, REFRESH_CHUNK):
                chunk = dict(rows[start:start + REFRESH_CHUNK])
                store.put_many(source_id, chunk, now=now_seconds(), max_entries=policy.max_entries,
                               keep_seconds=policy.keep_seconds)
                loaded += len(chunk)
                if progress:
                    progress(loaded, total)
            return {"keys": total, "loaded": loaded, "errors": 0}
        keys = [k for k, _ in store.items(source_id)]
        total, errors = len(keys), 0
        for start in range(0, total, REFRESH_CHUNK):
            chunk = keys[start:start + REFRESH_CHUNK]
            answers = fetcher.fetch(chunk)
            good = {k: v for k, v in answers.items() if not isinstance(v, Exception)}
            errors += len(chunk) - len(good)
            store.put_many(source_id, good, now=now_seconds(), max_entries=policy.max_entries,
                           keep_seconds=policy.keep_seconds)
            loaded += len(good)
            if progress:
                progress(start + len(chunk), total)
        return {"keys": total, "loaded": loaded, "errors": errors}

    def close(self) -> None:
        for source in self.sources.values():
            if source.fetcher is not None:
                source.fetcher.close()


def hit_rate(window: Counter) -> float | None:
    lookups = sum(window[k] for k in ("hit", "miss", "stale", "error"))
    return round(window["hit"] / lookups, 4) if lookups else None


def entry_state(entry: Entry, policy: CachePolicy, now: float) -> str:
    limit = policy.ttl if entry.value is not None else policy.negative_ttl
    return "fresh" if entry.age(now) < limit else "stale"
