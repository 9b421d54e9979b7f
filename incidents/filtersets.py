"""Filters of the incident list, shared by the console and the API."""
import django_filters
from django import forms
from django.db.models import Q
from django.utils import timezone

from .choices import ACTIVE_STATUSES, ComponentKind, IncidentStatus, Severity
from .models import Incident
from .selectors import overdue_q

ANY_YES_NO = [("", "Any"), ("true", "Yes"), ("false", "No")]


class IncidentFilterSet(django_filters.FilterSet):
    q = django_filters.CharFilter(method="filter_q", label="Search")
    severity = django_filters.MultipleChoiceFilter(choices=Severity.choices)
    status = django_filters.MultipleChoiceFilter(choices=IncidentStatus.choices)
    active = django_filters.BooleanFilter(method="filter_active", label="Active", widget=forms.Select(choices=ANY_YES_NO))
    overdue = django_filters.BooleanFilter(method="filter_overdue", label="Overdue", widget=forms.Select(choices=ANY_YES_NO))
    component = django_filters.CharFilter(method="filter_component", label="Component",
                                          help_text="kind:identifier, e.g. destination:local_archive")
    declared_after = django_filters.IsoDateTimeFilter(field_name="declared_at", lookup_expr="gte", label="Declared from")
    declared_before = django_filters.IsoDateTimeFilter(field_name="declared_at", lookup_expr="lt", label="Declared before")

    class Meta:
        model = Incident
        fields = ["q", "severity", "status", "active", "overdue", "component"]

    def filter_q(self, queryset, name, value):
        return queryset.filter(Q(incident_id__icontains=value) | Q(summary__icontains=value)) if value else queryset

    def filter_active(self, queryset, name, value):
        if value is None:
            return queryset
        return queryset.filter(status__in=ACTIVE_STATUSES) if value else queryset.exclude(status__in=ACTIVE_STATUSES)

    def filter_overdue(self, queryset, name, value):
        if value is None:
            return queryset
        condition = overdue_q(timezone.now())
        return queryset.filter(condition).distinct() if value else queryset.exclude(condition).distinct()

    def filter_component(self, queryset, name, value):
        kind, _, identifier = (value or "").partition(":")
        if not identifier:
            return queryset.filter(components__identifier=kind).distinct() if kind else queryset
        if kind not in ComponentKind.values:
            return queryset.none()
        return queryset.filter(components__kind=kind, components__identifier=identifier).distinct()
