"""Server-drawn SVG charts for the Beta pages (no JavaScript charting library, no CDN)."""
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

WIDTH, HEIGHT, PAD = 640, 180, 28
MARKER_COLOURS = {"reject": "#b42318", "error": "#c4320a", "warn": "#b54708"}


def _frame(body: str, title: str, width: int = WIDTH, height: int = HEIGHT) -> SafeString:
    return mark_safe(
        f'<svg class="chart" role="img" aria-label="{escape(title)}" viewBox="0 0 {width} {height}" '
        f'width="100%" preserveAspectRatio="xMidYMid meet" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{escape(title)}</title>{body}</svg>"
    )


def histogram(buckets: list[dict], thresholds: dict[str, float], *, title: str = "Quality score distribution") -> SafeString:
    """Bars of counts over [0, 1] with a vertical marker per threshold (the manual's 'bar chart with
    threshold markers')."""
    plot_w, plot_h = WIDTH - 2 * PAD, HEIGHT - 2 * PAD
    peak = max([b["count"] for b in buckets] + [1])
    slot = plot_w / max(1, len(buckets))
    parts = [f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}" y2="{HEIGHT - PAD}" stroke="#98a2b3"/>']
    for i, b in enumerate(buckets):
        h = plot_h * b["count"] / peak
        x = PAD + i * slot
        parts.append(
            f'<rect class="bar" data-from="{b["from"]}" data-count="{b["count"]}" x="{x + 2:.1f}" '
            f'y="{HEIGHT - PAD - h:.1f}" width="{slot - 4:.1f}" height="{h:.1f}" fill="#2e90fa">'
            f'<title>{b["from"]:.2f}–{b["to"]:.2f}: {b["count"]}</title></rect>'
        )
        if b["count"]:
            parts.append(f'<text x="{x + slot / 2:.1f}" y="{HEIGHT - PAD - h - 4:.1f}" font-size="10" '
                         f'text-anchor="middle">{b["count"]}</text>')
    for i in range(0, 11, 2):
        x = PAD + plot_w * i / 10
        parts.append(f'<text x="{x:.1f}" y="{HEIGHT - PAD + 14}" font-size="10" text-anchor="middle">{i / 10:.1f}</text>')
    for name, value in sorted(thresholds.items(), key=lambda kv: kv[1]):
        x = PAD + plot_w * value
        colour = MARKER_COLOURS.get(name, "#475467")
        parts.append(
            f'<line class="threshold" data-name="{escape(name)}" data-value="{value}" x1="{x:.1f}" y1="{PAD - 10}" '
            f'x2="{x:.1f}" y2="{HEIGHT - PAD}" stroke="{colour}" stroke-width="2" stroke-dasharray="4 3"/>'
            f'<text x="{x + 3:.1f}" y="{PAD - 12}" font-size="10" fill="{colour}">{escape(name)} {value:g}</text>'
        )
    return _frame("".join(parts), title)


def series(values: list[float], labels: list[str], *, baseline: float | None = None,
           title: str = "Records transformed") -> SafeString:
    """Bars per time slot with an optional dashed baseline (the manual's 'time series with baseline')."""
    plot_w, plot_h = WIDTH - 2 * PAD, HEIGHT - 2 * PAD
    peak = max([*values, baseline or 0, 1])
    slot = plot_w / max(1, len(values))
    parts = [f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}" y2="{HEIGHT - PAD}" stroke="#98a2b3"/>']
    for i, v in enumerate(values):
        h = plot_h * v / peak
        x = PAD + i * slot
        parts.append(f'<rect class="bar" data-value="{v}" x="{x + 2:.1f}" y="{HEIGHT - PAD - h:.1f}" '
                     f'width="{slot - 4:.1f}" height="{h:.1f}" fill="#12b76a"><title>{escape(labels[i])}: {v:g}</title></rect>')
        if i % max(1, len(values) // 6) == 0:
            parts.append(f'<text x="{x + slot / 2:.1f}" y="{HEIGHT - PAD + 14}" font-size="10" '
                         f'text-anchor="middle">{escape(labels[i])}</text>')
    if baseline is not None:
        y = HEIGHT - PAD - plot_h * baseline / peak
        parts.append(f'<line class="baseline" x1="{PAD}" y1="{y:.1f}" x2="{WIDTH - PAD}" y2="{y:.1f}" stroke="#475467" '
                     f'stroke-dasharray="6 4"/><text x="{WIDTH - PAD}" y="{y - 4:.1f}" font-size="10" '
                     f'text-anchor="end">baseline {baseline:g}</text>')
    parts.append(f'<text x="{PAD}" y="{PAD - 12}" font-size="10">max {peak:g}</text>')
    return _frame("".join(parts), title)


def stacked(pairs: list[tuple[int, int]], labels: list[str], *, title: str) -> SafeString:
    """Success (green) over failure (red) per slot, scaled to 100% (the manual's 'stacked area')."""
    height = 80
    plot_w, plot_h = WIDTH - 2 * PAD, height - 2 * 10
    slot = plot_w / max(1, len(pairs))
    parts = []
    for i, (ok, bad) in enumerate(pairs):
        total = ok + bad
        x = PAD + i * slot
        if not total:
            parts.append(f'<rect x="{x + 1:.1f}" y="10" width="{slot - 2:.1f}" height="{plot_h}" fill="#f2f4f7"/>')
            continue
        h_ok = plot_h * ok / total
        parts.append(f'<rect x="{x + 1:.1f}" y="{10 + plot_h - h_ok:.1f}" width="{slot - 2:.1f}" height="{h_ok:.1f}" '
                     f'fill="#12b76a"><title>{escape(labels[i])}: {ok} ok</title></rect>')
        if bad:
            parts.append(f'<rect x="{x + 1:.1f}" y="10" width="{slot - 2:.1f}" height="{plot_h - h_ok:.1f}" '
                         f'fill="#f04438"><title>{escape(labels[i])}: {bad} failed</title></rect>')
    return _frame("".join(parts), title, height=height)


def heat_colour(value: float | None, peak: float) -> str:
    """Background for a heat map cell: white (fast) to red (slowest of the map)."""
    if value is None:
        return "#f9fafb"
    share = min(1.0, value / peak) if peak else 0.0
    green_blue = int(255 - share * 190)
    return f"rgb(255,{green_blue},{green_blue})"
