"""Filters of the audit log, shared by the console and the API."""
import django_filters

from .models import AuditEntry


def action_choices() -> list[tuple[str, str]]:
    actions = AuditEntry.objects.order_by("action").values_list("action", flat=True).distinct()
    return [(action, action) for action in actions]


class AuditEntryFilterSet(django_filters.FilterSet):
    action = django_filters.ChoiceFilter(choices=action_choices)
    actor = django_filters.CharFilter(field_name="actor_name", lookup_expr="icontains", label="Actor")

    class Meta:
        model = AuditEntry
        fields = ["action", "actor"]
