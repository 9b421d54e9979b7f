"""Server-drawn SVG charts for every console page: no JavaScript charting library, no CDN, no invented data.

The one drawing module of the console (the Alpha, Beta and Gamma pages all draw with it; templates use
`{% bar_chart %}` / `{% line_chart %}` from `opsconsole.templatetags.charts`, which wrap the functions here):

- `line_chart(times, series)`: one line (or filled area) per series over time points, x placed by time;
  None leaves a gap; optional dashed horizontal thresholds.
- `bar_chart(categories, series)`: grouped bars (one bar per series in each category), or stacked
  (`stacked=True`, scaled to 100% per category with `percent=True`); optional dashed horizontal
  thresholds (a baseline, a limit).
- `histogram(buckets, thresholds=...)`: counts over a numeric range with a dashed vertical marker per
  threshold (the manual's "bar chart with threshold markers").
- `heatmap(rows, columns, values)`: a grid whose cells redden with their value; `heat_colour()` is the same
  scale for an HTML table cell.

`series` is a list of {"name": str, "values": [number | None, ...], "color": optional}, one value per
category or time point. None is "no data" (no bar, a gap in the line). With no series, or only None values,
a chart is replaced by its `empty` sentence (a series of zeros is data, and is drawn). Every chart is safe
markup: an <svg class="chart"> with a <title> per bar, point or cell (hover shows the value), then its
legend. Presentation is in SVG attributes, so a chart looks the same on any page; console.css lays out
the legend, the empty sentence and the <figure> of the template tags. Times are shown in the operator's
time zone.
"""
import math
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import NamedTuple

from django.utils import timezone
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

PALETTE = ("#2357c6", "#17803d", "#b42318", "#946200", "#7c3aed", "#0e7490", "#be185d", "#4b5563")
GOOD, BAD, MUTED = "#17803d", "#b42318", "#6b7280"
GRID, BASE, INK, NO_DATA = "#dde1e7", "#6b7280", "#1d2330", "#f2f4f7"
# Colours of named thresholds (quality levels); any other name is drawn in BAD.
THRESHOLD_COLOURS = {"reject": "#b42318", "error": "#c4320a", "warn": "#b54708", "baseline": "#475467"}

WIDTH, HEIGHT = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 52, 12, 18, 34  # plot margins of a chart with axes
FONT = 'font-size="10"'


class Threshold(NamedTuple):
    """A dashed marker at `value` (on the y axis of line and bar charts, on the x axis of a histogram).
    `name` becomes data-name (tests and scripts find markers by it); a plain (value, label) tuple is fine."""

    value: float
    label: str
    name: str = ""
    colour: str = BAD


def named_thresholds(values: Mapping[str, float]) -> list[Threshold]:
    """{"warn": 0.7, ...} -> markers labelled "warn 0.7", in their level's colour, lowest first."""
    return [Threshold(value, f"{name} {value:g}", name, THRESHOLD_COLOURS.get(name, BAD))
            for name, value in sorted(values.items(), key=lambda kv: kv[1])]


def colour(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


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


def time_label(value) -> str:
    return timezone.localtime(value).strftime("%H:%M") if isinstance(value, datetime) else str(value)


def empty_chart(text: str) -> SafeString:
    return mark_safe(f'<p class="chart-empty muted">{escape(text)}</p>')


def _has_data(series: Sequence[dict]) -> bool:
    return any(v is not None for s in series for v in s.get("values", ()))


def _series_colour(series: Sequence[dict], index: int) -> str:
    return series[index].get("color") or colour(index)


def _svg(width: int, height: int, title: str, body: str, css: str = "chart") -> str:
    return (f'<svg class="{css}" viewBox="0 0 {width} {height}" width="100%" role="img" aria-label="{escape(title)}" '
            f'preserveAspectRatio="xMidYMid meet" xmlns="http://www.w3.org/2000/svg" font-size="11">'
            f'<title>{escape(title)}</title>{body}</svg>')


def _legend(series: Sequence[dict]) -> str:
    items = "".join(f'<li><i class="swatch" style="background:{_series_colour(series, i)}"></i>{escape(s["name"])}</li>'
                    for i, s in enumerate(series))
    return f'<ul class="chart-legend">{items}</ul>'


def _thresholds(thresholds: Sequence) -> list[Threshold]:
    return [t if isinstance(t, Threshold) else Threshold(*t) for t in thresholds]


def _data_attrs(marker: Threshold) -> str:
    name = f' data-name="{escape(marker.name)}"' if marker.name else ""
    return f'{name} data-value="{marker.value}"'


def _y_axis(top: float, width: int, height: int, y_format: Callable) -> str:
    """Grid lines with their values at 0, 1/4 ... 4/4 of `top`, and the base line."""
    plot_h = height - TOP - BOTTOM
    parts = []
    for step in range(5):
        y = TOP + plot_h - plot_h * step / 4
        parts.append(f'<line class="grid" x1="{LEFT}" x2="{width - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="{GRID}"/>'
                     f'<text class="axis" x="{LEFT - 6}" y="{y:.1f}" dy="4" text-anchor="end" fill="{MUTED}">'
                     f'{escape(y_format(top * step / 4))}</text>')
    parts.append(f'<line class="base" x1="{LEFT}" x2="{width - RIGHT}" y1="{height - BOTTOM}" y2="{height - BOTTOM}" '
                 f'stroke="{BASE}"/>')
    return "".join(parts)


def _h_thresholds(markers: Sequence[Threshold], y, width: int) -> str:
    parts = []
    for marker in markers:
        at = y(marker.value)
        parts.append(f'<line class="threshold"{_data_attrs(marker)} x1="{LEFT}" x2="{width - RIGHT}" y1="{at:.1f}" '
                     f'y2="{at:.1f}" stroke="{marker.colour}" stroke-width="1.5" stroke-dasharray="4 3"/>'
                     f'<text class="threshold-label" x="{width - RIGHT - 2}" y="{at - 3:.1f}" text-anchor="end" {FONT} '
                     f'fill="{marker.colour}">{escape(marker.label)}</text>')
    return "".join(parts)


def _top(values: Sequence[float], markers: Sequence[Threshold], y_max: float | None) -> float:
    if y_max is not None:
        return y_max
    return nice_ceiling(max([*values, *(m.value for m in markers), 0]))


def _label_step(n: int) -> int:
    """Every category is labelled up to 12; beyond, about 8 labels."""
    return 1 if n <= 12 else math.ceil(n / 8)


def line_chart(times: Sequence, series: Sequence[dict], *, title: str = "", unit: str = "", y_max: float | None = None,
               y_format: Callable = number, thresholds: Sequence = (), area: bool = False, empty: str = "No data.",
               width: int = WIDTH, height: int = HEIGHT) -> SafeString:
    """One line per series over `times` (datetimes placed by time, anything else evenly); None leaves a gap.
    `area` fills under each line; `thresholds` are dashed horizontal lines; `y_max` fixes the axis top."""
    series = list(series or [])
    if not times or not _has_data(series):
        return empty_chart(empty)
    markers = _thresholds(thresholds)
    top = _top([v for s in series for v in s["values"] if v is not None], markers, y_max)
    plot_w, plot_h = width - LEFT - RIGHT, height - TOP - BOTTOM
    n = len(times)
    if n > 1 and all(isinstance(t, datetime) for t in times) and times[-1] != times[0]:
        span = (times[-1] - times[0]).total_seconds()
        xs = [LEFT + plot_w * (t - times[0]).total_seconds() / span for t in times]
    else:
        xs = [LEFT + (plot_w * i / (n - 1) if n > 1 else plot_w / 2) for i in range(n)]

    def y(value: float) -> float:
        return TOP + plot_h - plot_h * min(value, top) / top

    body = [_y_axis(top, width, height, y_format), _h_thresholds(markers, y, width)]
    for index, item in enumerate(series):
        line_colour = _series_colour(series, index)
        segments, current = [], []
        for i, value in enumerate(item["values"]):
            if value is None:
                if current:
                    segments.append(current)
                current = []
                continue
            current.append((xs[i], y(value), times[i], value))
        if current:
            segments.append(current)
        for segment in segments:
            path = " ".join(f"{px:.1f},{py:.1f}" for px, py, _, _ in segment)
            if area:
                base = TOP + plot_h
                body.append(f'<polygon class="area" fill="{line_colour}" fill-opacity="0.18" stroke="none" '
                            f'points="{segment[0][0]:.1f},{base} {path} {segment[-1][0]:.1f},{base}"/>')
            body.append(f'<polyline class="line" points="{path}" fill="none" stroke="{line_colour}" stroke-width="2"/>')
            for px, py, moment, value in segment:
                tip = f"{item['name']} {time_label(moment)}: {y_format(value)} {unit}".strip()
                body.append(f'<circle class="point" cx="{px:.1f}" cy="{py:.1f}" r="2.5" fill="{line_colour}">'
                            f'<title>{escape(tip)}</title></circle>')
    step = max(1, (n - 1) // 6) if n > 1 else 1
    shown = list(range(0, n, step))
    if n > 1 and shown[-1] != n - 1:
        shown.append(n - 1)
    for i in shown:
        anchor = "middle" if n == 1 else "start" if i == 0 else "end" if i == n - 1 else "middle"
        body.append(f'<text class="axis" x="{xs[i]:.1f}" y="{height - BOTTOM + 14}" text-anchor="{anchor}" '
                    f'fill="{MUTED}">{escape(time_label(times[i]))}</text>')
    return mark_safe(_svg(width, height, title, "".join(body)) + _legend(series))


def bar_chart(categories: Sequence, series: Sequence[dict], *, title: str = "", unit: str = "", stacked: bool = False,
              percent: bool = False, y_max: float | None = None, y_format: Callable = number,
              thresholds: Sequence = (), legend: bool | None = None, axes: bool = True, empty: str = "No data.",
              width: int = WIDTH, height: int = HEIGHT) -> SafeString:
    """Bars per category: grouped (one bar per series) or `stacked`; `percent` scales each stack to 100%
    (a category without data is drawn grey). `thresholds` are dashed horizontal lines (e.g. a baseline).
    `axes=False` draws the bars alone (a compact chart in a table cell). The legend shows by default when
    there is more than one series, or the bars are stacked."""
    series = list(series or [])
    if not categories or not _has_data(series):
        return empty_chart(empty)
    markers = _thresholds(thresholds)
    left, right, top_margin, bottom = (LEFT, RIGHT, TOP, BOTTOM) if axes else (2, 2, 4, 4)
    plot_w, plot_h = width - left - right, height - top_margin - bottom
    base = top_margin + plot_h
    count = len(categories)

    def values_at(c: int) -> list[tuple[int, float]]:
        return [(s, item["values"][c]) for s, item in enumerate(series) if item["values"][c] is not None]

    if percent:
        top = 1.0
    elif stacked:
        top = _top([sum(v for _, v in values_at(c)) for c in range(count)], markers, y_max)
    else:
        top = _top([v for c in range(count) for _, v in values_at(c)], markers, y_max)

    def y(value: float) -> float:
        return top_margin + plot_h - plot_h * min(value, top) / top

    body = []
    if axes:
        body.append(_y_axis(top, width, height, (lambda v: f"{v:.0%}") if percent else y_format))
    group_w = plot_w / count
    label_step = _label_step(count)
    show_values = not stacked and count * len(series) <= 24
    for c, category in enumerate(categories):
        present = values_at(c)
        if stacked:
            bar_w = max(2.0, group_w * 0.7)
            x = left + c * group_w + (group_w - bar_w) / 2
            total = sum(v for _, v in present)
            if percent and not total:
                body.append(f'<rect class="bar-empty" x="{x:.1f}" y="{top_margin}" width="{bar_w:.1f}" '
                            f'height="{plot_h:.1f}" fill="{NO_DATA}"><title>{escape(str(category))}: no data</title></rect>')
            level = base
            for s, value in present:
                if not value:
                    continue
                h = plot_h * (value / total if percent else min(value, top) / top)
                level -= h
                tip = (f"{category} {series[s]['name']}: {number(value)} {unit}".strip()
                       + (f" ({value / total:.0%})" if percent else ""))
                body.append(f'<rect class="bar" x="{x:.1f}" y="{level:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                            f'fill="{_series_colour(series, s)}"><title>{escape(tip)}</title></rect>')
        else:
            bar_w = min(group_w * 0.8 / len(series), 56.0)  # a lone bar stays a bar, not a wall
            x0 = left + c * group_w + (group_w - bar_w * len(series)) / 2
            for s, value in present:
                h = plot_h * min(value, top) / top
                bx = x0 + s * bar_w
                name = f" {series[s]['name']}" if len(series) > 1 else ""
                tip = f"{category}{name}: {y_format(value)} {unit}".strip()
                body.append(f'<rect class="bar" x="{bx:.1f}" y="{base - h:.1f}" width="{max(bar_w - 1, 1):.1f}" '
                            f'height="{h:.1f}" fill="{_series_colour(series, s)}"><title>{escape(tip)}</title></rect>')
                if show_values:
                    body.append(f'<text x="{bx:.1f}" y="{base - h:.1f}" dy="-3" fill="{INK}" {FONT}>'
                                f'{escape(y_format(value))}</text>')
        if axes and c % label_step == 0:
            text = str(category)
            body.append(f'<text class="axis" x="{left + (c + 0.5) * group_w:.1f}" y="{height - BOTTOM + 14}" '
                        f'text-anchor="middle" fill="{INK}"><title>{escape(text)}</title>{escape(text[:18])}</text>')
    if axes:
        body.append(_h_thresholds(markers, y, width))
    show_legend = (len(series) > 1 or stacked) if legend is None else legend
    return mark_safe(_svg(width, height, title, "".join(body)) + (_legend(series) if show_legend else ""))


def histogram(buckets: Sequence[dict], *, thresholds: Sequence = (), title: str = "", unit: str = "",
              empty: str = "No data.", width: int = WIDTH, height: int = HEIGHT) -> SafeString:
    """Counts over a numeric range as adjacent bars (`buckets`: [{"from", "to", "count"}], ascending, equal
    widths), with a dashed vertical marker per threshold at its value on that range. Zero counts are drawn
    (an empty histogram still shows where the thresholds are)."""
    if not buckets:
        return empty_chart(empty)
    markers = _thresholds(thresholds)
    low, high = buckets[0]["from"], buckets[-1]["to"]
    span = (high - low) or 1.0
    top = nice_ceiling(max(b["count"] for b in buckets))
    plot_w, plot_h = width - LEFT - RIGHT, height - TOP - BOTTOM
    base = TOP + plot_h
    slot = plot_w / len(buckets)
    body = [_y_axis(top, width, height, number)]
    for i, b in enumerate(buckets):
        h = plot_h * b["count"] / top
        x = LEFT + i * slot
        tip = f'{number(b["from"])}–{number(b["to"])}: {b["count"]} {unit}'.strip()
        body.append(f'<rect class="bar" data-from="{b["from"]}" data-count="{b["count"]}" x="{x + 1:.1f}" '
                    f'y="{base - h:.1f}" width="{max(slot - 2, 1):.1f}" height="{h:.1f}" fill="{PALETTE[0]}">'
                    f'<title>{escape(tip)}</title></rect>')
        if b["count"]:
            body.append(f'<text x="{x + slot / 2:.1f}" y="{base - h - 4:.1f}" {FONT} text-anchor="middle" '
                        f'fill="{INK}">{b["count"]}</text>')
    for i in range(6):
        value = low + span * i / 5
        body.append(f'<text class="axis" x="{LEFT + plot_w * i / 5:.1f}" y="{height - BOTTOM + 14}" '
                    f'text-anchor="middle" fill="{MUTED}">{escape(number(value))}</text>')
    for marker in markers:
        x = LEFT + plot_w * (marker.value - low) / span
        body.append(f'<line class="threshold"{_data_attrs(marker)} x1="{x:.1f}" y1="{TOP - 6}" x2="{x:.1f}" '
                    f'y2="{base}" stroke="{marker.colour}" stroke-width="2" stroke-dasharray="4 3"/>'
                    f'<text class="threshold-label" x="{x + 3:.1f}" y="{TOP - 8}" {FONT} fill="{marker.colour}">'
                    f'{escape(marker.label)}</text>')
    return mark_safe(_svg(width, height, title, "".join(body)))


def heat_colour(value: float | None, peak: float) -> str:
    """Background for a heat map cell: white (none or fast) to red (the largest of the map); None is grey."""
    if value is None:
        return "#f9fafb"
    share = min(1.0, value / peak) if peak else 0.0
    green_blue = int(255 - share * 190)
    return f"rgb(255,{green_blue},{green_blue})"


def heatmap(rows: Sequence[str], columns: Sequence[str], values: Mapping[tuple[str, str], float], *,
            title: str = "", empty: str = "No data.", width: int = WIDTH) -> SafeString:
    """A grid of rows x columns; the redder a cell, the larger its value (e.g. errors by source and type)."""
    if not rows or not columns:
        return empty_chart(empty)
    label_w, cell_h, header_h = 150, 26, 90
    cell_w = max(40.0, (width - label_w - RIGHT) / len(columns))
    width = int(label_w + cell_w * len(columns) + RIGHT)
    height = header_h + cell_h * len(rows) + 4
    peak = max(values.values(), default=0)
    body = []
    for j, column in enumerate(columns):
        cx = label_w + cell_w * j + cell_w / 2
        body.append(f'<text class="axis" transform="translate({cx:.1f},{header_h - 6}) rotate(-40)" fill="{MUTED}">'
                    f'{escape(column)}</text>')
    for i, row in enumerate(rows):
        y = header_h + cell_h * i
        body.append(f'<text class="axis" x="{label_w - 6}" y="{y + cell_h / 2 + 4:.1f}" text-anchor="end" '
                    f'fill="{MUTED}">{escape(row)}</text>')
        for j, column in enumerate(columns):
            value = values.get((row, column), 0)
            body.append(f'<rect class="cell" x="{label_w + cell_w * j:.1f}" y="{y}" width="{cell_w - 2:.1f}" '
                        f'height="{cell_h - 2}" fill="{heat_colour(value or None, peak)}" stroke="{GRID}">'
                        f'<title>{escape(row)} / {escape(column)}: {value:g}</title></rect>')
            if value:
                body.append(f'<text class="cell-value" x="{label_w + cell_w * j + cell_w / 2 - 1:.1f}" '
                            f'y="{y + cell_h / 2 + 4:.1f}" text-anchor="middle" {FONT} fill="{INK}">{value:g}</text>')
    return mark_safe(_svg(width, height, title, "".join(body), css="chart heatmap"))
