"""Template tags of the console's charts (the drawing is `opsconsole.charts`, shared by every page):

    {% load charts %}
    {% bar_chart categories series unit="ms" title="Latency" empty="No deliveries in the last hour." %}
    {% line_chart times series unit="records/min" title="Delivery rate" empty="..." %}

`categories` are the bar groups' labels; `times` the datetimes of a line chart's points. `series` is a list
of {"name": str, "values": [number | None, ...]}, one value per category or time point; None is "no data"
(no bar, a gap in the line). With no series, or only None values, the chart is replaced by the `empty`
sentence. Each chart comes in a <figure class="chart"> captioned with its title and unit.
"""
from collections.abc import Sequence

from django import template
from django.utils.html import format_html
from django.utils.safestring import SafeString

from opsconsole import charts

register = template.Library()


def _figure(drawing: SafeString, title: str, unit: str) -> SafeString:
    caption = ""
    if title:
        caption = format_html("<figcaption>{}{}</figcaption>", title,
                              format_html(' <span class="muted">({})</span>', unit) if unit else "")
    return format_html('<figure class="chart">{}{}</figure>', caption, drawing)


@register.simple_tag
def bar_chart(categories: Sequence[str], series: Sequence[dict], unit: str = "", title: str = "", empty: str = "No data."):
    """Grouped vertical bars: one group per category, one bar per series."""
    return _figure(charts.bar_chart(categories, series, unit=unit, title=title, empty=empty), title, unit)


@register.simple_tag
def line_chart(times: Sequence, series: Sequence[dict], unit: str = "", title: str = "", empty: str = "No data."):
    """One line per series over the time points; None leaves a gap."""
    return _figure(charts.line_chart(times, series, unit=unit, title=title, empty=empty), title, unit)
