"""Charts of the Alpha dashboard, rendered on the server as inline SVG (no JavaScript, no CDN).

Each function returns safe markup: an <svg> with a <title> per point or cell (hover shows the value)
followed by an HTML legend. Times are shown in the operator's time zone.
"""
from collections.abc import Mapping, Sequence
from datetime import datetime
from html import escape

from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe

PALETTE = ("#2563eb", "#16a34a", "#dc2626", "#9333ea", "#ea580c", "#0891b2", "#ca8a04", "#db2777", "#4b5563")
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 48, 12, 10, 24


def colour(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def _time_label(moment: datetime) -> str:
    return timezone.localtime(moment).strftime("%H:%M")


def _number(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:.1f}".rstrip("0").rstrip(".")
    return f"{value:.2g}"


def _legend(names: Sequence[str], extra: str = "") -> str:
    items = "".join(f'<li><span class="swatch" style="background:{colour(i)}"></span>{escape(name)}</li>'
                    for i, name in enumerate(names))
    return f'<ul class="chart-legend">{items}{extra}</ul>'


def _frame(width: int, height: int, title: str, body: str, y_max: float, y_format) -> str:
    plot_h = height - MARGIN_TOP - MARGIN_BOTTOM
    grid = []
    for step in range(5):
        value = y_max * step / 4
        y = MARGIN_TOP + plot_h - plot_h * step / 4
        grid.append(f'<line class="grid" x1="{MARGIN_LEFT}" x2="{width - MARGIN_RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>'
                    f'<text class="axis" x="{MARGIN_LEFT - 4}" y="{y + 3:.1f}" text-anchor="end">{escape(y_format(value))}</text>')
    return (f'<svg class="chart" viewBox="0 0 {width} {height}" width="100%" role="img" aria-label="{escape(title)}">'
            f'<title>{escape(title)}</title>{"".join(grid)}{body}</svg>')


def line_chart(series: Mapping[str, Sequence[tuple[datetime, float | None]]], *, title: str, y_max: float | None = None,
               y_format=_number, thresholds: Sequence[tuple[float, str]] = (), area: bool = False,
               width: int = 720, height: int = 220) -> SafeString:
    """Time series, one line (or filled area) per name; None values leave a gap. Thresholds are dashed lines."""
    points = [p for values in series.values() for p in values]
    if not points:
        return mark_safe(f'<p class="muted chart-empty">{escape(title)}: no data yet.</p>')
    times = [t for t, _ in points]
    start, end = min(times), max(times)
    span = max((end - start).total_seconds(), 1.0)
    values = [v for _, v in points if v is not None]
    top = y_max if y_max is not None else max([*values, *(t for t, _ in thresholds), 0.0]) * 1.1 or 1.0
    plot_w = width - MARGIN_LEFT - MARGIN_RIGHT
    plot_h = height - MARGIN_TOP - MARGIN_BOTTOM

    def x(moment: datetime) -> float:
        return MARGIN_LEFT + plot_w * (moment - start).total_seconds() / span

    def y(value: float) -> float:
        return MARGIN_TOP + plot_h - plot_h * min(value, top) / top

    body = []
    for level, label in thresholds:
        body.append(f'<line class="threshold" x1="{MARGIN_LEFT}" x2="{width - MARGIN_RIGHT}" y1="{y(level):.1f}" '
                    f'y2="{y(level):.1f}"/><text class="threshold-label" x="{width - MARGIN_RIGHT - 2}" '
                    f'y="{y(level) - 3:.1f}" text-anchor="end">{escape(label)}</text>')
    for index, (name, values_of) in enumerate(series.items()):
        segments, current = [], []
        for moment, value in values_of:
            if value is None:
                if current:
                    segments.append(current)
                current = []
                continue
            current.append((x(moment), y(value), moment, value))
        if current:
            segments.append(current)
        for segment in segments:
            path = " ".join(f"{px:.1f},{py:.1f}" for px, py, _, _ in segment)
            if area:
                base = MARGIN_TOP + plot_h
                body.append(f'<polygon class="area" fill="{colour(index)}" points="{segment[0][0]:.1f},{base} {path} '
                            f'{segment[-1][0]:.1f},{base}"/>')
            body.append(f'<polyline class="line" stroke="{colour(index)}" points="{path}"/>')
            for px, py, moment, value in segment:
                body.append(f'<circle class="point" cx="{px:.1f}" cy="{py:.1f}" r="2" fill="{colour(index)}">'
                            f'<title>{escape(name)} {_time_label(moment)}: {escape(y_format(value))}</title></circle>')
    body.append(f'<text class="axis" x="{MARGIN_LEFT}" y="{height - 6}">{_time_label(start)}</text>'
                f'<text class="axis" x="{width - MARGIN_RIGHT}" y="{height - 6}" text-anchor="end">{_time_label(end)}</text>')
    return mark_safe(_frame(width, height, title, "".join(body), top, y_format) + _legend(list(series)))


def stacked_bars(labels: Sequence[str], stacks: Mapping[str, Sequence[float]], *, title: str, y_format=_number,
                 width: int = 720, height: int = 220) -> SafeString:
    """One bar per label, stacked by name (e.g. validation failures per error code per time bucket)."""
    if not labels or not stacks or not any(any(v for v in values) for values in stacks.values()):
        return mark_safe(f'<p class="muted chart-empty">{escape(title)}: nothing in this period.</p>')
    totals = [sum(values[i] for values in stacks.values()) for i in range(len(labels))]
    top = max(totals) * 1.1 or 1.0
    plot_w = width - MARGIN_LEFT - MARGIN_RIGHT
    plot_h = height - MARGIN_TOP - MARGIN_BOTTOM
    slot = plot_w / len(labels)
    bar = max(2.0, slot * 0.7)
    body = []
    for i, label in enumerate(labels):
        base = MARGIN_TOP + plot_h
        x = MARGIN_LEFT + slot * i + (slot - bar) / 2
        for index, (name, values) in enumerate(stacks.items()):
            value = values[i]
            if not value:
                continue
            h = plot_h * value / top
            base -= h
            body.append(f'<rect class="bar" x="{x:.1f}" y="{base:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                        f'fill="{colour(index)}"><title>{escape(label)} {escape(name)}: {escape(y_format(value))}</title></rect>')
        if i % max(1, len(labels) // 6) == 0:
            body.append(f'<text class="axis" x="{x:.1f}" y="{height - 6}">{escape(label)}</text>')
    return mark_safe(_frame(width, height, title, "".join(body), top, y_format) + _legend(list(stacks)))


def heatmap(rows: Sequence[str], columns: Sequence[str], values: Mapping[tuple[str, str], float], *,
            title: str, width: int = 720) -> SafeString:
    """A grid of rows x columns; the darker a cell, the larger its value (e.g. errors by source and type)."""
    if not rows or not columns:
        return mark_safe(f'<p class="muted chart-empty">{escape(title)}: nothing in this period.</p>')
    label_w, cell_h, header_h = 150, 26, 90
    cell_w = max(40.0, (width - label_w - MARGIN_RIGHT) / len(columns))
    width = int(label_w + cell_w * len(columns) + MARGIN_RIGHT)
    height = header_h + cell_h * len(rows) + 4
    top = max(values.values(), default=0) or 1
    body = []
    for j, column in enumerate(columns):
        cx = label_w + cell_w * j + cell_w / 2
        body.append(f'<text class="axis" transform="translate({cx:.1f},{header_h - 6}) rotate(-40)">{escape(column)}</text>')
    for i, row in enumerate(rows):
        y = header_h + cell_h * i
        body.append(f'<text class="axis" x="{label_w - 6}" y="{y + cell_h / 2 + 4:.1f}" text-anchor="end">{escape(row)}</text>')
        for j, column in enumerate(columns):
            value = values.get((row, column), 0)
            opacity = 0.06 if not value else 0.2 + 0.8 * value / top
            body.append(f'<rect class="cell" x="{label_w + cell_w * j:.1f}" y="{y}" width="{cell_w - 2:.1f}" '
                        f'height="{cell_h - 2}" fill="#dc2626" fill-opacity="{opacity:.2f}">'
                        f'<title>{escape(row)} / {escape(column)}: {value:g}</title></rect>')
            if value:
                body.append(f'<text class="cell-value" x="{label_w + cell_w * j + cell_w / 2 - 1:.1f}" '
                            f'y="{y + cell_h / 2 + 4:.1f}" text-anchor="middle">{value:g}</text>')
    return mark_safe(f'<svg class="chart heatmap" viewBox="0 0 {width} {height}" width="100%" role="img" '
                     f'aria-label="{escape(title)}"><title>{escape(title)}</title>{"".join(body)}</svg>')
