"""Durable counters: add inside the transaction that does the counted work."""
from collections.abc import Mapping

from django.db import connection

from .models import MetricCounter


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
