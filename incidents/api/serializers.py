"""What the incident API reads and answers. Input serializers only parse; the services decide."""
from django.contrib.auth import get_user_model
from django.utils import timezone
from rest_framework import serializers

from opsconsole import roles

from ..choices import (
    Audience,
    CommunicationKind,
    ComponentKind,
    DetectionSource,
    ManualEscalationReason,
    Severity,
)
from ..escalation import escalation_state
from ..models import (
    ActionItem,
    AffectedComponent,
    Communication,
    Escalation,
    Incident,
    Notification,
    OnCallOverride,
    PostIncidentReview,
    Responder,
    TimelineEntry,
)
from ..notifications import incident_url
from ..policy import SEVERITY_DEFINITIONS
from ..selectors import incident_due_items

User = get_user_model()


def _username(user) -> str | None:
    return user.get_username() if user else None


class UsernameField(serializers.SlugRelatedField):
    def __init__(self, **kwargs):
        kwargs.setdefault("slug_field", "username")
        kwargs.setdefault("queryset", User.objects.filter(is_active=True))
        super().__init__(**kwargs)


class ComponentSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=ComponentKind.choices)
    identifier = serializers.CharField(max_length=100)


class LinkSerializer(serializers.Serializer):
    label = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    url = serializers.CharField(max_length=500)


class AffectedComponentSerializer(serializers.ModelSerializer):
    class Meta:
        model = AffectedComponent
        fields = ["kind", "identifier", "added_at"]


class ResponderSerializer(serializers.ModelSerializer):
    user = serializers.CharField(source="user.username")

    class Meta:
        model = Responder
        fields = ["user", "role", "level", "engaged_at"]


class EscalationSerializer(serializers.ModelSerializer):
    class Meta:
        model = Escalation
        fields = ["at", "severity", "level", "role", "trigger", "reason", "users"]


class IncidentListSerializer(serializers.ModelSerializer):
    declared_by = serializers.SerializerMethodField()
    overdue = serializers.SerializerMethodField()
    url = serializers.SerializerMethodField()

    class Meta:
        model = Incident
        fields = ["incident_id", "severity", "status", "summary", "impact", "declared_at", "declared_by",
                  "acknowledged_at", "resolved_at", "closed_at", "escalation_level", "overdue", "url"]

    def get_declared_by(self, incident) -> str | None:
        return _username(incident.declared_by)

    def get_overdue(self, incident) -> list[str]:
        return [item.key for item in incident_due_items(incident, now=self.context.get("now")) if item.overdue]

    def get_url(self, incident) -> str:
        return incident_url(incident)


class IncidentDetailSerializer(IncidentListSerializer):
    severity_definition = serializers.SerializerMethodField()
    acknowledged_by = serializers.SerializerMethodField()
    components = AffectedComponentSerializer(many=True, read_only=True)
    responders = ResponderSerializer(many=True, read_only=True)
    escalations = EscalationSerializer(many=True, read_only=True)
    requirements = serializers.SerializerMethodField()
    escalation_matrix = serializers.SerializerMethodField()
    resolution_criteria = serializers.SerializerMethodField()
    review = serializers.SerializerMethodField()

    class Meta(IncidentListSerializer.Meta):
        fields = [*IncidentListSerializer.Meta.fields, "severity_definition", "description", "detection_source",
                  "began_at", "recent_changes", "current_actions", "next_steps", "eta", "channel_links",
                  "acknowledged_by", "mitigating_at", "data_loss_confirmed_at", "impact_expansions", "root_cause",
                  "resolution", "resolution_criteria", "signal_key", "components", "responders", "requirements",
                  "escalation_matrix", "escalations", "review"]

    def get_severity_definition(self, incident) -> dict:
        return SEVERITY_DEFINITIONS[incident.severity]

    def get_acknowledged_by(self, incident) -> str | None:
        return _username(incident.acknowledged_by)

    def get_requirements(self, incident) -> list[dict]:
        return [{"key": i.key, "label": i.label, "due_at": i.due_at, "met_at": i.met_at, "state": i.state}
                for i in incident_due_items(incident, now=self.context.get("now"))]

    def get_escalation_matrix(self, incident) -> list[dict]:
        return escalation_state(incident)

    def get_resolution_criteria(self, incident) -> dict:
        return {"root_cause_addressed": incident.root_cause_addressed, "processing_resumed": incident.processing_resumed,
                "metrics_normal": incident.metrics_normal, "no_customer_impact": incident.no_customer_impact}

    def get_review(self, incident) -> dict | None:
        review = PostIncidentReview.objects.filter(incident=incident).first()
        return {"status": review.status, "required": review.required, "due_at": review.due_at} if review else None


class DeclareSerializer(serializers.Serializer):
    severity = serializers.ChoiceField(choices=Severity.choices)
    summary = serializers.CharField(max_length=200)
    impact = serializers.CharField(required=False, allow_blank=True, default="")
    description = serializers.CharField(required=False, allow_blank=True, default="")
    detection_source = serializers.ChoiceField(choices=DetectionSource.choices, default=DetectionSource.OPERATIONS)
    began_at = serializers.DateTimeField(required=False, allow_null=True, default=None)
    recent_changes = serializers.CharField(required=False, allow_blank=True, default="")
    current_actions = serializers.CharField(required=False, allow_blank=True, default="")
    components = ComponentSerializer(many=True, required=False, default=list)
    channel_links = LinkSerializer(many=True, required=False, default=list)


class NoteSerializer(serializers.Serializer):
    text = serializers.CharField()


class InvestigateSerializer(serializers.Serializer):
    note = serializers.CharField(required=False, allow_blank=True, default="")


class MitigateSerializer(serializers.Serializer):
    actions = serializers.CharField()


class ResolveSerializer(serializers.Serializer):
    resolution = serializers.CharField(required=False, allow_blank=True, default="")
    root_cause = serializers.CharField(required=False, allow_blank=True, default="")
    root_cause_addressed = serializers.BooleanField(default=False)
    processing_resumed = serializers.BooleanField(default=False)
    metrics_normal = serializers.BooleanField(default=False)
    no_customer_impact = serializers.BooleanField(default=False)


class ReasonSerializer(serializers.Serializer):
    reason = serializers.CharField()


class CloseSerializer(serializers.Serializer):
    note = serializers.CharField(required=False, allow_blank=True, default="")


class ReclassifySerializer(serializers.Serializer):
    severity = serializers.ChoiceField(choices=Severity.choices)
    reason = serializers.CharField()


class EscalateSerializer(serializers.Serializer):
    reason_kind = serializers.ChoiceField(choices=ManualEscalationReason.choices)
    reason = serializers.CharField()
    role = serializers.ChoiceField(choices=sorted(roles.OPERATOR_GROUPS), required=False, allow_null=True, default=None)
    users = UsernameField(many=True, required=False, default=list)


class EditSerializer(serializers.Serializer):
    summary = serializers.CharField(max_length=200, required=False)
    impact = serializers.CharField(required=False, allow_blank=True)
    description = serializers.CharField(required=False, allow_blank=True)
    detection_source = serializers.ChoiceField(choices=DetectionSource.choices, required=False)
    began_at = serializers.DateTimeField(required=False, allow_null=True)
    recent_changes = serializers.CharField(required=False, allow_blank=True)
    current_actions = serializers.CharField(required=False, allow_blank=True)
    next_steps = serializers.CharField(required=False, allow_blank=True)
    eta = serializers.CharField(max_length=200, required=False, allow_blank=True)
    channel_links = LinkSerializer(many=True, required=False)


class ImpactSerializer(serializers.Serializer):
    impact = serializers.CharField()
    components = ComponentSerializer(many=True, required=False, default=list)


class DataLossSerializer(serializers.Serializer):
    details = serializers.CharField()


class ResponderInputSerializer(serializers.Serializer):
    user = UsernameField()
    role = serializers.CharField(max_length=100, required=False, allow_blank=True, default="Responder")


class ComponentsInputSerializer(serializers.Serializer):
    components = ComponentSerializer(many=True)


class CommunicationInputSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=CommunicationKind.choices)
    audiences = serializers.ListField(child=serializers.ChoiceField(choices=Audience.choices), min_length=1)
    subject = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")
    body = serializers.CharField(required=False, allow_blank=True, default="",
                                 help_text="Empty: the template as rendered from the incident now.")


class TimelineEntrySerializer(serializers.ModelSerializer):
    class Meta:
        model = TimelineEntry
        fields = ["at", "kind", "actor_name", "message", "details"]


class CommunicationSerializer(serializers.ModelSerializer):
    sent_by = serializers.SerializerMethodField()
    edited = serializers.BooleanField(read_only=True)

    class Meta:
        model = Communication
        fields = ["id", "kind", "audiences", "subject", "body", "rendered_body", "edited", "sent_at", "sent_by"]

    def get_sent_by(self, communication) -> str | None:
        return _username(communication.sent_by)


class NotificationSerializer(serializers.ModelSerializer):
    incident = serializers.CharField(source="incident.incident_id")
    recipient = serializers.SerializerMethodField()

    class Meta:
        model = Notification
        fields = ["id", "incident", "channel", "recipient", "address", "subject", "body", "status", "attempts",
                  "last_error", "created_at", "sent_at", "read_at"]

    def get_recipient(self, notification) -> str | None:
        return _username(notification.recipient)


class ActionItemSerializer(serializers.ModelSerializer):
    incident = serializers.CharField(source="review.incident.incident_id", read_only=True)
    owner = serializers.CharField(source="owner.username", read_only=True)
    overdue = serializers.SerializerMethodField()

    class Meta:
        model = ActionItem
        fields = ["id", "incident", "description", "owner", "deadline", "status", "overdue", "created_at", "completed_at"]

    def get_overdue(self, item) -> bool:
        return item.status == "open" and item.deadline < timezone.localdate()


class ReviewSerializer(serializers.ModelSerializer):
    incident = serializers.CharField(source="incident.incident_id", read_only=True)
    action_items = ActionItemSerializer(many=True, read_only=True)
    overdue = serializers.SerializerMethodField()

    class Meta:
        model = PostIncidentReview
        fields = ["incident", "required", "status", "due_at", "overdue", "scheduled_for", "timeline_reconstruction",
                  "root_cause", "contributing_factors", "went_well", "went_badly", "improvements", "published_at",
                  "action_items"]

    def get_overdue(self, review) -> bool:
        return bool(review.due_at and review.published_at is None and timezone.now() > review.due_at)


class ReviewInputSerializer(serializers.Serializer):
    scheduled_for = serializers.DateTimeField(required=False, allow_null=True)
    timeline_reconstruction = serializers.CharField(required=False, allow_blank=True)
    root_cause = serializers.CharField(required=False, allow_blank=True)
    contributing_factors = serializers.CharField(required=False, allow_blank=True)
    went_well = serializers.CharField(required=False, allow_blank=True)
    went_badly = serializers.CharField(required=False, allow_blank=True)
    improvements = serializers.CharField(required=False, allow_blank=True)


class ActionItemInputSerializer(serializers.Serializer):
    description = serializers.CharField()
    owner = UsernameField()
    deadline = serializers.DateField()


class OverrideSerializer(serializers.ModelSerializer):
    user = UsernameField()
    created_by = serializers.SerializerMethodField()

    class Meta:
        model = OnCallOverride
        fields = ["id", "user", "starts_at", "ends_at", "reason", "created_by", "created_at"]
        read_only_fields = ["id", "created_by", "created_at"]

    def get_created_by(self, override) -> str | None:
        return _username(override.created_by)
