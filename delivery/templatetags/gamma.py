"""Colours of Module Gamma's workflow states in the console."""
from django import template

register = template.Library()

DLQ_STATE_CLASSES = {"new": "bad", "triaged": "warn", "corrected": "warn", "replayed": "ok", "exported": "muted",
                     "purged": "muted"}
BREAKER_STATE_CLASSES = {"closed": "ok", "half_open": "warn", "open": "bad"}


@register.filter
def dlq_state_class(state) -> str:
    return DLQ_STATE_CLASSES.get(str(state), "plain")


@register.filter
def breaker_state_class(state) -> str:
    return BREAKER_STATE_CLASSES.get(str(state), "plain")


@register.filter
def percent(value) -> str:
    """0.953 -> "95.3%"; None -> "—"."""
    return "—" if value is None else f"{100 * value:.1f}%"


@register.simple_tag
def render_time(value):
    """A datetime in the operator's time zone, as console tables show it."""
    from opsconsole.templatetags.console import render_value

    return render_value(value, "time")


@register.simple_tag
def render_json(value):
    from opsconsole.templatetags.console import render_value

    return render_value(value, "json")
