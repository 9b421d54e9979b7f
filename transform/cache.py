"""The enrichment cache (Runbook B.2): Redis when the broker is Redis, in-process in embedded mode.

Entries are kept per enrichment source as {key: (value, fetched_at)}; `value` is the source's row,
or None for "the source has no such key" (a negative entry). Whether an entry is fresh or stale is
decided by the reader from its age and the source's TTL, so a stale entry is still there to fall
back on when the source fails (the manual's "increase cache TTL, enable stale fallback"). Entries
older than TTL + stale_max_age are purged on write; above max_entries the oldest fetched go first.

Hit rates are counted per source per minute (kept two hours), so the hit rate is a recent one, as
the beta_enrichment_degraded alert (hit rate below 70%) needs.
"""
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from django.conf import settings

STAT_FIELDS = ("hit", "miss", "stale", "error", "evicted")
STATS_KEEP_SECONDS = 7200
PREFIX = "opsconsole:beta:enrich"


@dataclass(frozen=True)
class Entry:
    value: Any
    fetched_at: float

    def age(self, now: float) -> float:
        return max(0.0, now - self.fetched_at)


def redis_url() -> str | None:
    """The Redis the cache lives in: BETA_CACHE_REDIS_URL, else the broker (CELERY_BROKER_URL/REDIS_URL) when
    it is Redis; None in embedded mode."""
    explicit = getattr(settings, "BETA_CACHE_REDIS_URL", "")
    if explicit:
        return explicit
    broker = getattr(settings, "CELERY_BROKER_URL", "") or ""
    return broker if broker.startswith(("redis://", "rediss://", "unix://")) else None


class LocalStore:
    """In-process cache for embedded mode: each process (web, worker) has its own."""

    backend = "local"
    shared = False

    def __init__(self):
        self._lock = threading.Lock()
        self._data: dict[str, OrderedDict[str, Entry]] = {}
        self._stats: dict[str, dict[int, Counter]] = {}
        self._totals: dict[str, Counter] = {}

    def get_many(self, source: str, keys: list[str]) -> dict[str, Entry]:
        with self._lock:
            data = self._data.get(source, {})
            return {k: data[k] for k in keys if k in data}

    def put_many(self, source: str, values: dict[str, Any], *, now: float, max_entries: int, keep_seconds: float,
                 times: dict[str, float] | None = None) -> int:
        with self._lock:
            data = self._data.setdefault(source, OrderedDict())
            for key, value in sorted(values.items(), key=lambda kv: (times or {}).get(kv[0], now)):
                data.pop(key, None)
                data[key] = Entry(value, (times or {}).get(key, now))
            evicted = 0
            for key in [k for k, e in data.items() if e.fetched_at < now - keep_seconds]:
                del data[key]
                evicted += 1
            while len(data) > max_entries:
                data.popitem(last=False)
                evicted += 1
            return evicted

    def count(self, source: str) -> int:
        with self._lock:
            return len(self._data.get(source, {}))

    def sources(self) -> list[str]:
        with self._lock:
            return sorted(set(self._data) | set(self._totals))

    def clear(self, source: str | None = None) -> int:
        with self._lock:
            names = [source] if source else list(set(self._data) | set(self._totals))
            removed = 0
            for name in names:
                removed += len(self._data.pop(name, {}))
                self._stats.pop(name, None)
                self._totals.pop(name, None)
            return removed

    def items(self, source: str) -> Iterator[tuple[str, Entry]]:
        with self._lock:
            snapshot = list(self._data.get(source, {}).items())
        yield from snapshot

    def oldest_newest(self, source: str) -> tuple[float | None, float | None]:
        with self._lock:
            data = self._data.get(source)
            if not data:
                return None, None
            times = [e.fetched_at for e in data.values()]
            return min(times), max(times)

    def stats_add(self, source: str, counts: Counter, now: float) -> None:
        if not counts:
            return
        minute = int(now // 60)
        with self._lock:
            buckets = self._stats.setdefault(source, {})
            buckets.setdefault(minute, Counter()).update(counts)
            for old in [m for m in buckets if m < minute - STATS_KEEP_SECONDS // 60]:
                del buckets[old]
            self._totals.setdefault(source, Counter()).update(counts)

    def stats(self, source: str, *, window_seconds: int, now: float) -> tuple[Counter, Counter]:
        first = int((now - window_seconds) // 60) + 1
        with self._lock:
            window = Counter()
            for minute, counts in self._stats.get(source, {}).items():
                if minute >= first:
                    window.update(counts)
            return window, Counter(self._totals.get(source, Counter()))


class RedisStore:
    """Shared cache: every web and worker process sees the same entries and hit rates.

    Per source: a hash key -> JSON [value, fetched_at], a sorted set key -> fetched_at (for purging and
    eviction by age), per-minute stat hashes and a totals hash; the set of sources names them all."""

    backend = "redis"
    shared = True

    def __init__(self, url: str):
        import redis

        self.url = url
        self.client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2)

    def _k(self, source: str, part: str) -> str:
        return f"{PREFIX}:{source}:{part}"

    def get_many(self, source: str, keys: list[str]) -> dict[str, Entry]:
        unique = list(dict.fromkeys(keys))
        if not unique:
            return {}
        found: dict[str, Entry] = {}
        for start in range(0, len(unique), 1000):
            chunk = unique[start:start + 1000]
            for key, raw in zip(chunk, self.client.hmget(self._k(source, "data"), chunk)):
                if raw is not None:
                    value, fetched_at = orjson.loads(raw)
                    found[key] = Entry(value, fetched_at)
        return found

    def put_many(self, source: str, values: dict[str, Any], *, now: float, max_entries: int, keep_seconds: float,
                 times: dict[str, float] | None = None) -> int:
        data_key, order_key = self._k(source, "data"), self._k(source, "order")
        pipe = self.client.pipeline(transaction=True)
        items = list(values.items())
        times = times or {}
        for start in range(0, len(items), 1000):
            chunk = items[start:start + 1000]
            pipe.hset(data_key, mapping={k: orjson.dumps([v, times.get(k, now)]) for k, v in chunk})
            pipe.zadd(order_key, {k: times.get(k, now) for k, _ in chunk})
        pipe.sadd(f"{PREFIX}:sources", source)
        pipe.execute()
        evicted = 0
        expired = self.client.zrangebyscore(order_key, "-inf", now - keep_seconds)
        over = self.client.zcard(order_key) - len(expired) - max_entries
        victims = list(expired)
        if over > 0:
            victims += [k for k, _ in self.client.zrange(order_key, len(expired), len(expired) + over - 1, withscores=True)]
        for start in range(0, len(victims), 1000):
            chunk = victims[start:start + 1000]
            pipe = self.client.pipeline(transaction=True)
            pipe.hdel(data_key, *chunk)
            pipe.zrem(order_key, *chunk)
            pipe.execute()
            evicted += len(chunk)
        return evicted

    def count(self, source: str) -> int:
        return int(self.client.hlen(self._k(source, "data")))

    def sources(self) -> list[str]:
        return sorted(s.decode() for s in self.client.smembers(f"{PREFIX}:sources"))

    def clear(self, source: str | None = None) -> int:
        names = [source] if source else self.sources()
        removed = 0
        for name in names:
            removed += self.count(name)
            keys = [self._k(name, "data"), self._k(name, "order"), self._k(name, "totals")]
            keys += [k for k in self.client.scan_iter(match=self._k(name, "m:*"), count=500)]
            self.client.delete(*keys)
            self.client.srem(f"{PREFIX}:sources", name)
        return removed

    def items(self, source: str) -> Iterator[tuple[str, Entry]]:
        for key, raw in self.client.hscan_iter(self._k(source, "data"), count=1000):
            value, fetched_at = orjson.loads(raw)
            yield key.decode(), Entry(value, fetched_at)

    def oldest_newest(self, source: str) -> tuple[float | None, float | None]:
        order_key = self._k(source, "order")
        first = self.client.zrange(order_key, 0, 0, withscores=True)
        last = self.client.zrange(order_key, -1, -1, withscores=True)
        return (first[0][1] if first else None), (last[0][1] if last else None)

    def stats_add(self, source: str, counts: Counter, now: float) -> None:
        if not counts:
            return
        minute_key = self._k(source, f"m:{int(now // 60)}")
        pipe = self.client.pipeline(transaction=False)
        for name, n in counts.items():
            pipe.hincrby(minute_key, name, n)
            pipe.hincrby(self._k(source, "totals"), name, n)
        pipe.expire(minute_key, STATS_KEEP_SECONDS)
        pipe.sadd(f"{PREFIX}:sources", source)
        pipe.execute()

    def stats(self, source: str, *, window_seconds: int, now: float) -> tuple[Counter, Counter]:
        last = int(now // 60)
        first = int((now - window_seconds) // 60) + 1
        pipe = self.client.pipeline(transaction=False)
        for minute in range(first, last + 1):
            pipe.hgetall(self._k(source, f"m:{minute}"))
        pipe.hgetall(self._k(source, "totals"))
        answers = pipe.execute()
        window = Counter()
        for answer in answers[:-1]:
            window.update({k.decode(): int(v) for k, v in answer.items()})
        totals = Counter({k.decode(): int(v) for k, v in answers[-1].items()})
        return window, totals


_stores: dict[str, Any] = {}
_stores_lock = threading.Lock()


def cache_store() -> LocalStore | RedisStore:
    """The process's store for the configured backend (one client per URL)."""
    url = redis_url()
    name = url or "local"
    with _stores_lock:
        store = _stores.get(name)
        if store is None:
            store = _stores[name] = RedisStore(url) if url else LocalStore()
        return store


def now_seconds() -> float:
    return time.time()
