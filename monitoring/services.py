"""Durable metrics: counters and histograms written inside the transaction that does the counted work,
so /metrics on any web process reports exact, restart-proof values whichever worker did the work."""
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable, Mapping

from django.db import connection

from .models import MetricCounter

# Histogram sums are stored as integer microseconds (MetricCounter.value is an integer).
SUM_SCALE = 1_000_000


def labels_key(labels: Mapping[str, str]) -> str:
    return ",".join(f"{k}={labels[k]}" for k in sorted(labels))


def counters_add(increments: Mapping[tuple[str, str], int]) -> None:
    """Add to counters; keys are (metric name, labels_key(...)). Zero increments are skipped."""
    rows = [(name, labels, n) for (name, labels), n in sorted(increments.items()) if n]
    if not rows:
        return
    table = MetricCounter._meta.db_table
    sql = (
        f'INSERT INTO "{table}" (name, labels, value) VALUES (%s, %s, %s) '
        f'ON CONFLICT (name, labels) DO UPDATE SET value = "{table}".value + excluded.value'
    )
    with connection.cursor() as cursor:
        cursor.executemany(sql, rows)


def histogram_increments(
    name: str, labels: Mapping[str, str], buckets: tuple[float, ...], values: Iterable[float], *, times: int = 1
) -> Counter:
    """Counter increments for observing `values` (each `times` times, e.g. one latency for every record
    of a batch) in histogram `name`: non-cumulative bucket counts under `<name>_bucket` with an `le`
    label, plus `<name>_count` and `<name>_sum`."""
    increments: Counter = Counter()
    base = labels_key(labels)
    total = 0.0
    n = 0
    for value in values:
        index = bisect_left(buckets, value)
        le = "+Inf" if index == len(buckets) else repr(float(buckets[index]))
        increments[(f"{name}_bucket", labels_key({**labels, "le": le}))] += times
        total += value * times
        n += times
    if n:
        increments[(f"{name}_count", base)] += n
        increments[(f"{name}_sum", base)] += int(round(total * SUM_SCALE))
    return increments


def histogram_observe(name: str, labels: Mapping[str, str], buckets: tuple[float, ...], values: Iterable[float]) -> None:
    counters_add(histogram_increments(name, labels, buckets, values))
