"""Filters of ingestion lists, shared by the console and the API (one FilterSet drives both)."""
import django_filters

from .choices import BatchStage
from .models import Batch, Source, ValidationFailure


def source_choices() -> list[tuple[str, str]]:
    return [(sid, sid) for sid in Source.objects.values_list("source_id", flat=True)]


def error_code_choices() -> list[tuple[str, str]]:
    codes = ValidationFailure.objects.order_by("error_code").values_list("error_code", flat=True).distinct()
    return [(code, code) for code in codes]


class ValidationFailureFilterSet(django_filters.FilterSet):
    source_id = django_filters.ChoiceFilter(label="Source", choices=source_choices)
    error_code = django_filters.ChoiceFilter(label="Error code", choices=error_code_choices)
    field = django_filters.CharFilter(label="Field", lookup_expr="icontains")
    created_after = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte", label="From (ISO time)")
    created_before = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt", label="Until (ISO time)")

    class Meta:
        model = ValidationFailure
        fields = ["source_id", "error_code", "field", "created_after", "created_before"]


class BatchFilterSet(django_filters.FilterSet):
    stage = django_filters.ChoiceFilter(choices=BatchStage.choices)
    source_id = django_filters.ChoiceFilter(label="Source", choices=source_choices)

    class Meta:
        model = Batch
        fields = ["stage", "source_id"]
