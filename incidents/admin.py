"""Django admin for incident response. Incidents, their timelines, timers, notifications and reviews are
read-only here (they move only through incidents.services: the console and the API); the on-call rota
and its overrides are edited here as well as in the console, and every such edit is audited."""
from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from opsconsole.audit import audit_record

from .models import (
    ActionItem,
    AffectedComponent,
    Communication,
    Escalation,
    EscalationTimer,
    Incident,
    Notification,
    OnCallOverride,
    OnCallRota,
    OnCallRotaMember,
    PostIncidentReview,
    Responder,
    TimelineEntry,
)


class ReadOnlyAdminMixin:
    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class _ReadOnlyInline(ReadOnlyAdminMixin, admin.TabularInline):
    extra = 0
    show_change_link = False


class TimelineInline(_ReadOnlyInline):
    model = TimelineEntry
    fields = readonly_fields = ["at", "kind", "actor_name", "message"]
    verbose_name_plural = "Timeline"


class EscalationInline(_ReadOnlyInline):
    model = Escalation
    fields = readonly_fields = ["at", "severity", "level", "role", "trigger", "reason", "users"]


class ResponderInline(_ReadOnlyInline):
    model = Responder
    fields = readonly_fields = ["user", "role", "level", "engaged_at"]


class ComponentInline(_ReadOnlyInline):
    model = AffectedComponent
    fields = readonly_fields = ["kind", "identifier", "added_at"]


class TimerInline(_ReadOnlyInline):
    model = EscalationTimer
    fields = readonly_fields = ["kind", "severity", "level", "due_at", "fired_at", "cancelled_at", "outcome"]


class CommunicationInline(_ReadOnlyInline):
    model = Communication
    fields = readonly_fields = ["sent_at", "kind", "audiences", "subject", "sent_by"]


@admin.register(Incident)
class IncidentAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["incident_id", "severity", "status", "summary", "declared_at", "escalation_level", "console_link"]
    list_filter = ["status", "severity", "detection_source"]
    search_fields = ["incident_id", "summary", "impact"]
    ordering = ["-declared_at"]
    inlines = [ResponderInline, ComponentInline, EscalationInline, TimerInline, CommunicationInline, TimelineInline]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in Incident._meta.fields]

    @admin.display(description="Console")
    def console_link(self, obj: Incident):
        return format_html('<a href="{}">open →</a>', reverse("console:incident-detail", args=[obj.incident_id]))


@admin.register(Notification)
class NotificationAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["created_at", "incident", "channel", "recipient", "address", "status", "attempts", "sent_at"]
    list_filter = ["channel", "status"]
    search_fields = ["incident__incident_id", "address", "subject"]


@admin.register(EscalationTimer)
class EscalationTimerAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["incident", "kind", "severity", "level", "due_at", "fired_at", "cancelled_at", "outcome"]
    list_filter = ["kind", "severity"]


class ActionItemInline(_ReadOnlyInline):
    model = ActionItem
    fields = readonly_fields = ["description", "owner", "deadline", "status", "completed_at"]


@admin.register(PostIncidentReview)
class PostIncidentReviewAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["incident", "required", "status", "due_at", "published_at"]
    list_filter = ["status", "required"]
    inlines = [ActionItemInline]


class RotaMemberInline(admin.TabularInline):
    model = OnCallRotaMember
    extra = 1
    ordering = ["position"]


@admin.register(OnCallRota)
class OnCallRotaAdmin(admin.ModelAdmin):
    list_display = ["name", "active", "anchor", "shift_days", "time_zone"]
    inlines = [RotaMemberInline]

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        audit_record(actor=request.user, action="oncall.rota_admin_save", target=f"oncall-rota:{obj.name}",
                     details={"changed": form.changed_data, "active": obj.active, "anchor": obj.anchor.isoformat(),
                              "shift_days": obj.shift_days})

    def save_formset(self, request, form, formset, change):
        super().save_formset(request, form, formset, change)
        members = [m.user.get_username() for m in form.instance.members.select_related("user").order_by("position")]
        audit_record(actor=request.user, action="oncall.rota_admin_members", target=f"oncall-rota:{form.instance.name}",
                     details={"members": members})

    def delete_model(self, request, obj):
        audit_record(actor=request.user, action="oncall.rota_admin_delete", target=f"oncall-rota:{obj.name}")
        super().delete_model(request, obj)


@admin.register(OnCallOverride)
class OnCallOverrideAdmin(admin.ModelAdmin):
    list_display = ["rota", "user", "starts_at", "ends_at", "reason", "created_by"]
    list_filter = ["rota"]
    readonly_fields = ["created_by", "created_at"]

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)
        audit_record(actor=request.user, action="oncall.override_admin_save", target=f"oncall-rota:{obj.rota.name}",
                     reason=obj.reason, details={"override": obj.pk, "user": obj.user.get_username(),
                                                 "starts_at": obj.starts_at.isoformat(), "ends_at": obj.ends_at.isoformat()})

    def delete_model(self, request, obj):
        audit_record(actor=request.user, action="oncall.override_admin_delete", target=f"oncall-rota:{obj.rota.name}",
                     details={"override": obj.pk, "user": obj.user.get_username()})
        super().delete_model(request, obj)
