"""Filters of delivery lists, shared by the console and the API."""
import django_filters

from ingestion.filtersets import source_choices

from .choices import DeadLetterState, FailureCategory
from .models import DeadLetter, Destination


def destination_choices() -> list[tuple[str, str]]:
    return [(did, did) for did in Destination.objects.values_list("destination_id", flat=True)]


class DeadLetterFilterSet(django_filters.FilterSet):
    source_id = django_filters.ChoiceFilter(label="Source", choices=source_choices)
    destination_id = django_filters.ChoiceFilter(label="Destination", choices=destination_choices)
    category = django_filters.ChoiceFilter(choices=FailureCategory.choices)
    state = django_filters.ChoiceFilter(choices=DeadLetterState.choices)
    retry_eligible = django_filters.BooleanFilter()

    class Meta:
        model = DeadLetter
        fields = ["source_id", "destination_id", "category", "state", "retry_eligible"]
