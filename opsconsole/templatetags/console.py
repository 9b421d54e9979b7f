"""Rendering one table cell of the console (see opsconsole.console.Column)."""
import json
from datetime import datetime, timezone as dt_timezone

from django import template
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from opsconsole.console import Column, Field, resolve

register = template.Library()

# Colour of a status value: ok (green), warn (yellow), bad (red), muted (grey).
STATUS_CLASSES = {
    "delivered": "ok", "done": "ok", "healthy": "ok", "active": "ok",
    "validated": "warn", "routed": "warn", "transformed": "warn", "pending": "warn", "held": "warn",
    "degraded": "warn", "transient": "warn",
    "rejected": "bad", "dlq": "bad", "unhealthy": "bad", "permanent": "bad", "authorization": "bad",
    "transform": "bad",
    "filtered": "muted",
    # Module Alpha: source status, connection, back-pressure level
    "paused": "warn", "disabled": "muted", "unknown": "muted", "removed": "muted", "connected": "ok", "failed": "bad",
    # Change requests (changes/): states, types, risk levels.
    "draft": "muted", "submitted": "warn", "technical_review": "warn", "cab_review": "warn", "approved": "ok",
    "scheduled": "ok", "in_progress": "warn", "validating": "warn", "completed": "ok", "rolled_back": "bad",
    "closed": "muted", "cancelled": "muted", "emergency": "bad",
    "low": "ok", "medium": "warn", "high": "bad", "critical": "bad",
}

EMPTY = mark_safe('<span class="muted">—</span>')


def status_class(value) -> str:
    return STATUS_CLASSES.get(str(value).lower(), "plain")


register.filter("status_class", status_class)


def render_value(value, kind: str):
    if kind == "number":
        return "0" if value in (None, "") else f"{value:,}" if isinstance(value, int) else str(value)
    if value is None or value == "":
        return EMPTY
    if kind == "time" and isinstance(value, datetime):
        local = timezone.localtime(value)
        return format_html('<time datetime="{}" title="{} UTC">{}</time>', value.isoformat(),
                           value.astimezone(dt_timezone.utc).strftime("%Y-%m-%d %H:%M:%S"), local.strftime("%Y-%m-%d %H:%M:%S"))
    if kind == "status":
        return format_html('<span class="status status-{}">{}</span>', status_class(value), value)
    if kind in ("bool", "check"):
        no_class = "bad" if kind == "check" else "muted"
        return format_html('<span class="status status-{}">{}</span>', "ok" if value else no_class, "yes" if value else "no")
    if kind == "short":
        return format_html('<code title="{}">{}</code>', value, str(value)[:8])
    if kind == "code":
        text = str(value)
        return format_html('<code title="{}">{}</code>', text, text if len(text) <= 120 else text[:120] + "…")
    if kind == "json":
        compact = json.dumps(value, sort_keys=True, default=str)
        return format_html('<details><summary><code>{}</code></summary><pre>{}</pre></details>',
                           compact if len(compact) <= 80 else compact[:80] + "…", json.dumps(value, indent=2, default=str))
    return str(value)


@register.simple_tag
def table_cell(row, column: Column):
    value = resolve(row, column.key)
    rendered = render_value(value, column.kind)
    url = column.link(row) if column.link and value not in (None, "") else None
    return format_html('<a href="{}">{}</a>', url, rendered) if url else rendered


@register.simple_tag
def field_value(item: Field):
    rendered = render_value(item.value, item.kind)
    return format_html('<a href="{}">{}</a>', item.link, rendered) if item.link else rendered


@register.simple_tag
def row_class(table, row) -> str:
    return table.row_class(row) if table.row_class else ""
