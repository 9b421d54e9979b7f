"""Filters of the change list, shared by the console and the API."""
from datetime import timedelta

import django_filters
from django.db.models import Q
from django.utils import timezone

from .choices import (
    EMERGENCY_FORMAL_REQUEST_HOURS, POST_IMPLEMENTATION_REVIEW_HOURS, ChangeState, ChangeType, Priority, RiskLevel,
)
from .models import ChangeRequest


def overdue_q(now=None) -> Q:
    """Changes whose post-implementation review or (emergency) formal request is past due."""
    now = now or timezone.now()
    return (Q(finished_at__lt=now - timedelta(hours=POST_IMPLEMENTATION_REVIEW_HOURS), reviewed_at__isnull=True)
            | Q(change_type=ChangeType.EMERGENCY, formal_request_at__isnull=True,
                declared_at__lt=now - timedelta(hours=EMERGENCY_FORMAL_REQUEST_HOURS))) & ~Q(
        status__in=[ChangeState.CANCELLED, ChangeState.REJECTED])


class ChangeRequestFilterSet(django_filters.FilterSet):
    q = django_filters.CharFilter(method="filter_q", label="Search")
    status = django_filters.MultipleChoiceFilter(choices=ChangeState.choices, label="State")
    change_type = django_filters.ChoiceFilter(choices=ChangeType.choices, label="Type")
    risk_level = django_filters.ChoiceFilter(choices=RiskLevel.choices, label="Risk")
    priority = django_filters.ChoiceFilter(choices=Priority.choices)
    system = django_filters.CharFilter(field_name="affected_systems", lookup_expr="icontains", label="Affected system")
    requester = django_filters.CharFilter(field_name="requester__username", label="Requester")
    window_from = django_filters.DateFilter(field_name="scheduled_end", lookup_expr="date__gte", label="Window from")
    window_to = django_filters.DateFilter(field_name="scheduled_start", lookup_expr="date__lte", label="Window to")
    overdue = django_filters.BooleanFilter(method="filter_overdue", label="Review or formal request overdue")

    class Meta:
        model = ChangeRequest
        fields = ["q", "status", "change_type", "risk_level", "priority", "system", "requester", "window_from",
                  "window_to", "overdue"]

    def filter_q(self, queryset, name, value):
        return queryset.filter(Q(change_id__icontains=value) | Q(title__icontains=value) | Q(description__icontains=value))

    def filter_overdue(self, queryset, name, value):
        if value is None:
            return queryset
        return queryset.filter(overdue_q()) if value else queryset.exclude(overdue_q())
