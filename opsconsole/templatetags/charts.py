"""Server-rendered SVG charts for console pages: no JavaScript, no CDN, no invented data.

    {% load charts %}
    {% bar_chart categories series unit="ms" title="Latency" empty="No deliveries in the last hour." %}
    {% line_chart times series unit="records/min" title="Delivery rate" empty="..." %}

`categories` are the bar groups' labels; `times` the datetimes of a line chart's points (evenly spaced
buckets). `series` is a list of {"name": str, "values": [number | None, ...]}, one value per category or
time point; None is "no data" (no bar, a gap in the line). With no series, or only None values, the
chart is replaced by the `empty` sentence.
"""
import math
from collections.abc import Sequence
from datetime import datetime

from django import template
from django.utils import timezone

register = template.Library()

PALETTE = ["#2357c6", "#17803d", "#b42318", "#946200", "#7c3aed", "#0e7490", "#be185d", "#4b5563"]
WIDTH, HEIGHT = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 52, 12, 12, 34


def nice_ceiling(value: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten at or above `value` (the top of the y axis)."""
    if value <= 0:
        return 1.0
    exponent = math.floor(math.log10(value))
    fraction = value / 10 ** exponent
    step = next(s for s in (1, 2, 5, 10) if fraction <= s + 1e-9)
    return step * 10 ** exponent


def number(value: float | None) -> str:
    if value is None:
        return "—"
    if abs(value) >= 100 or float(value).is_integer():
        return f"{value:,.0f}"
    return f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}".rstrip("0").rstrip(".")


def _has_data(series: Sequence[dict]) -> bool:
    return any(v is not None for s in series for v in s.get("values", ()))


def _y_axis(series: Sequence[dict], unit: str) -> tuple[float, list[dict]]:
    top = nice_ceiling(max((v for s in series for v in s["values"] if v is not None), default=0))
    plot_h = HEIGHT - TOP - BOTTOM
    ticks = [{"y": TOP + plot_h - plot_h * i / 4, "label": number(top * i / 4)} for i in range(5)]
    return top, ticks


def _legend(series: Sequence[dict]) -> list[dict]:
    return [{"name": s["name"], "color": PALETTE[i % len(PALETTE)]} for i, s in enumerate(series)]


@register.inclusion_tag("console/_chart_bar.html")
def bar_chart(categories: Sequence[str], series: Sequence[dict], unit: str = "", title: str = "", empty: str = "No data."):
    """Grouped vertical bars: one group per category, one bar per series."""
    series = list(series or [])
    context = {"title": title, "unit": unit, "empty": empty, "has_data": bool(categories) and _has_data(series),
               "width": WIDTH, "height": HEIGHT, "left": LEFT, "right_x": WIDTH - RIGHT, "base_y": HEIGHT - BOTTOM}
    if not context["has_data"]:
        return context
    top, ticks = _y_axis(series, unit)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    group_w = plot_w / len(categories)
    bar_w = min(group_w * 0.8 / len(series), 56.0)  # a lone bar stays a bar, not a wall
    bars, labels = [], []
    for c, category in enumerate(categories):
        x0 = LEFT + c * group_w + (group_w - bar_w * len(series)) / 2
        labels.append({"x": LEFT + (c + 0.5) * group_w, "text": str(category)[:18], "full": str(category)})
        for s, item in enumerate(series):
            value = item["values"][c]
            if value is None:
                continue
            h = plot_h * value / top
            bars.append({"x": x0 + s * bar_w, "y": TOP + plot_h - h, "w": max(bar_w - 1, 1), "h": h,
                         "color": PALETTE[s % len(PALETTE)], "label": number(value),
                         "title": f"{category}{' ' + item['name'] if len(series) > 1 else ''}: {number(value)} {unit}".strip()})
    context.update(ticks=ticks, bars=bars, labels=labels, legend=_legend(series) if len(series) > 1 else [],
                   label_y=HEIGHT - BOTTOM + 14, show_values=len(categories) * len(series) <= 24)
    return context


def _time_label(value) -> str:
    return timezone.localtime(value).strftime("%H:%M") if isinstance(value, datetime) else str(value)


@register.inclusion_tag("console/_chart_line.html")
def line_chart(times: Sequence, series: Sequence[dict], unit: str = "", title: str = "", empty: str = "No data."):
    """One line per series over evenly spaced points (time buckets); None leaves a gap."""
    series = list(series or [])
    context = {"title": title, "unit": unit, "empty": empty, "has_data": bool(times) and _has_data(series),
               "width": WIDTH, "height": HEIGHT, "left": LEFT, "right_x": WIDTH - RIGHT, "base_y": HEIGHT - BOTTOM}
    if not context["has_data"]:
        return context
    top, ticks = _y_axis(series, unit)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    n = len(times)
    xs = [LEFT + (plot_w * i / (n - 1) if n > 1 else plot_w / 2) for i in range(n)]
    lines = []
    for s, item in enumerate(series):
        color = PALETTE[s % len(PALETTE)]
        segments, current, dots = [], [], []
        for i, value in enumerate(item["values"]):
            if value is None:
                if current:
                    segments.append(current)
                current = []
                continue
            y = TOP + plot_h - plot_h * value / top
            current.append(f"{xs[i]:.1f},{y:.1f}")
            dots.append({"x": xs[i], "y": y, "title": f"{item['name']} {_time_label(times[i])}: {number(value)} {unit}".strip()})
        if current:
            segments.append(current)
        lines.append({"color": color, "paths": [" ".join(p) for p in segments], "dots": dots})
    step = max(1, (n - 1) // 6) if n > 1 else 1
    x_labels = [{"x": xs[i], "text": _time_label(times[i]), "anchor": "start" if i == 0 else "middle"}
                for i in range(0, n, step)]
    if n > 1 and (n - 1) % step:
        x_labels.append({"x": xs[-1], "text": _time_label(times[-1]), "anchor": "end"})
    else:
        x_labels[-1]["anchor"] = "end" if n > 1 else "middle"
    context.update(ticks=ticks, lines=lines, x_labels=x_labels, legend=_legend(series), label_y=HEIGHT - BOTTOM + 14)
    return context
