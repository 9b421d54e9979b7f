"""What the change API reads and answers. Inputs are validated here; the rules live in changes.services."""
from django.contrib.auth import get_user_model
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from ..actions import change_actions_for
from ..approvals import approval_status
from ..choices import Impact, Likelihood, Priority, RollbackTrigger
from ..models import CABApproval, ChangeEvent, ChangeRequest, StandardChangeKind
from ..selectors import change_checklist, change_conflicts


def _name(user) -> str | None:
    return user.get_username() if user else None


class StandardChangeKindSerializer(serializers.ModelSerializer):
    class Meta:
        model = StandardChangeKind
        fields = ["key", "name", "description", "active"]


class ChangeRequestListSerializer(serializers.ModelSerializer):
    requester = serializers.SerializerMethodField()
    standard_kind = serializers.SlugRelatedField(slug_field="key", read_only=True)
    risk_class = serializers.CharField(source="risk_class_name", read_only=True)
    incident = serializers.SlugRelatedField(slug_field="incident_id", read_only=True)
    formal_request_due_at = serializers.DateTimeField(read_only=True)
    formal_request_overdue = serializers.SerializerMethodField()
    post_review_due_at = serializers.DateTimeField(read_only=True)
    post_review_overdue = serializers.SerializerMethodField()

    class Meta:
        model = ChangeRequest
        fields = ["change_id", "title", "change_type", "standard_kind", "status", "priority", "requester", "created_at",
                  "impact", "likelihood", "risk_level", "risk_class", "affected_systems", "scheduled_start",
                  "scheduled_end", "incident", "formal_request_due_at", "formal_request_overdue", "post_review_due_at",
                  "post_review_overdue"]

    def get_requester(self, change) -> str | None:
        return _name(change.requester)

    def get_formal_request_overdue(self, change) -> bool:
        return change.formal_request_overdue()

    def get_post_review_overdue(self, change) -> bool:
        return change.post_review_overdue()


class CABApprovalSerializer(serializers.ModelSerializer):
    voter = serializers.CharField(source="voter_name")

    class Meta:
        model = CABApproval
        fields = ["round", "voter", "voter_groups", "capacities", "decision", "comment", "at", "via"]


class ChangeEventSerializer(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor_name")

    class Meta:
        model = ChangeEvent
        fields = ["at", "actor", "kind", "from_state", "to_state", "message", "details"]


class ChangeRequestDetailSerializer(ChangeRequestListSerializer):
    technical_reviewer = serializers.SerializerMethodField()
    reviewed_by = serializers.SerializerMethodField()
    verbal_approver = serializers.SerializerMethodField()
    approval = serializers.SerializerMethodField()
    checklist = serializers.SerializerMethodField()
    conflicts = serializers.SerializerMethodField()
    votes = serializers.SerializerMethodField()
    timeline = ChangeEventSerializer(many=True, read_only=True)
    allowed_actions = serializers.SerializerMethodField()

    class Meta(ChangeRequestListSerializer.Meta):
        fields = [*ChangeRequestListSerializer.Meta.fields,
                  "description", "business_justification", "technical_details", "risk_assessment", "testing_performed",
                  "implementation_plan", "rollback_plan", "submitted_at", "technical_reviewer", "technical_review",
                  "technical_review_notes", "technical_reviewed_at", "approval", "votes", "approved_at", "decided_at",
                  "decision_reason", "checklist", "started_at", "implemented_at", "implementation_notes", "validation",
                  "validation_notes", "finished_at", "rollback_trigger", "rollback_details", "post_review",
                  "lessons_learned", "review_results", "reviewed_by", "reviewed_at", "declared_at", "verbal_approver",
                  "verbal_approved_at", "verbal_approval_notes", "on_call_engineer", "formal_request_at", "conflicts",
                  "timeline", "allowed_actions"]

    def get_technical_reviewer(self, change) -> str | None:
        return _name(change.technical_reviewer)

    def get_reviewed_by(self, change) -> str | None:
        return _name(change.reviewed_by)

    def get_verbal_approver(self, change) -> str | None:
        return _name(change.verbal_approver)

    def get_approval(self, change) -> dict:
        status = approval_status(change)
        return {"required": status.requirement.label, "approver_group": status.requirement.approver_group,
                "cab_rule": status.requirement.cab, "cab_members": status.cab_members, "cab_needed": status.cab_needed,
                "approver_approved_by": status.approver_approved_by, "approver_rejected_by": status.approver_rejected_by,
                "cab_approved_by": status.cab_approved_by, "cab_rejected_by": status.cab_rejected_by,
                "granted": status.granted, "refused": status.refused, "waiting_for": status.waiting_for}

    def get_votes(self, change) -> list[dict]:
        return CABApprovalSerializer(change.approvals.all(), many=True).data

    def get_checklist(self, change) -> list[dict]:
        return change_checklist(change)

    def get_conflicts(self, change) -> list[dict]:
        return [{"change_id": c.other_id, "title": c.other.title, "status": c.other.status, "shared": c.shared,
                 "scheduled_start": c.other.scheduled_start, "scheduled_end": c.other.scheduled_end}
                for c in change_conflicts(change)]

    def get_allowed_actions(self, change) -> list[str]:
        request = self.context.get("request")
        return [a.name for a in change_actions_for(change, request.user)] if request else []


@extend_schema_field({"oneOf": [{"type": "array", "items": {"type": "string"}}, {"type": "string"}]})
class SystemsField(serializers.Field):
    """Affected systems as a list of "kind:name" strings, or one comma/newline-separated string."""

    def to_internal_value(self, data):
        if isinstance(data, str | list):
            return data
        raise serializers.ValidationError("Expected a list of strings or a comma-separated string.")

    def to_representation(self, value):
        return value


class ChangeRequestInputSerializer(serializers.Serializer):
    """The manual's change request form (create; PATCH accepts any subset)."""

    title = serializers.CharField(max_length=200)
    change_type = serializers.ChoiceField(choices=["standard", "normal"], default="normal")
    standard_kind = serializers.CharField(required=False, allow_blank=True, allow_null=True,
                                          help_text="Key of a pre-approved kind (standard changes).")
    priority = serializers.ChoiceField(choices=Priority.choices, default=Priority.MEDIUM)
    description = serializers.CharField(required=False, allow_blank=True)
    business_justification = serializers.CharField(required=False, allow_blank=True)
    technical_details = serializers.CharField(required=False, allow_blank=True)
    affected_systems = SystemsField(required=False)
    impact = serializers.ChoiceField(choices=Impact.choices, default=Impact.LOW)
    likelihood = serializers.ChoiceField(choices=Likelihood.choices, default=Likelihood.LOW)
    risk_assessment = serializers.CharField(required=False, allow_blank=True)
    testing_performed = serializers.CharField(required=False, allow_blank=True)
    implementation_plan = serializers.CharField(required=False, allow_blank=True)
    rollback_plan = serializers.CharField(required=False, allow_blank=True)
    scheduled_start = serializers.DateTimeField(required=False, allow_null=True)
    scheduled_end = serializers.DateTimeField(required=False, allow_null=True)
    incident = serializers.CharField(required=False, allow_blank=True, allow_null=True,
                                     help_text="INC-YYYYMMDD-NNNN of the incident this change remediates.")


class ChangeReasonInput(serializers.Serializer):
    reason = serializers.CharField(max_length=4000)


class ChangeCommentInput(serializers.Serializer):
    comment = serializers.CharField(max_length=4000, required=False, allow_blank=True, default="")


@extend_schema_field({"oneOf": [{"type": "array", "items": {"type": "string"}}, {"type": "object", "additionalProperties": {"type": "boolean"}}]})
class PointsField(serializers.Field):
    """Checklist points as a list of confirmed keys or a {key: true/false} object."""

    def to_internal_value(self, data):
        if isinstance(data, list) and all(isinstance(x, str) for x in data):
            return data
        if isinstance(data, dict) and all(isinstance(v, bool) for v in data.values()):
            return data
        raise serializers.ValidationError("Expected a list of point keys or an object of key: true/false.")

    def to_representation(self, value):
        return value


class ChangeReviewPassInput(serializers.Serializer):
    points = PointsField(help_text="The five technical review points confirmed.")
    notes = serializers.CharField(required=False, allow_blank=True, default="")


class ChangeScheduleInput(serializers.Serializer):
    start = serializers.DateTimeField(required=False, allow_null=True, default=None)
    end = serializers.DateTimeField(required=False, allow_null=True, default=None)


class ChangeChecklistInput(serializers.Serializer):
    items = serializers.DictField(child=serializers.BooleanField())


class ChangeNotesInput(serializers.Serializer):
    notes = serializers.CharField(required=False, allow_blank=True, default="")


class ChangeCompleteInput(serializers.Serializer):
    points = PointsField(help_text="Validation points confirmed.")
    notes = serializers.CharField(required=False, allow_blank=True, default="")


class ChangeRollBackInput(serializers.Serializer):
    trigger = serializers.ChoiceField(choices=RollbackTrigger.choices)
    details = serializers.CharField(required=False, allow_blank=True, default="")


class ChangeCloseInput(serializers.Serializer):
    points = PointsField(help_text="Stability, issues, monitoring confirmed.")
    lessons_learned = serializers.CharField()
    results = serializers.CharField()


class ChangeNoteInput(serializers.Serializer):
    text = serializers.CharField(max_length=4000)


class ChangeEmergencyInput(serializers.Serializer):
    title = serializers.CharField(max_length=200)
    description = serializers.CharField()
    affected_systems = SystemsField()
    impact = serializers.ChoiceField(choices=Impact.choices)
    likelihood = serializers.ChoiceField(choices=Likelihood.choices)
    verbal_approver = serializers.SlugRelatedField(slug_field="username", queryset=get_user_model().objects.all(),
                                                   help_text="Username of the on-call manager who approved verbally.")
    verbal_approval_notes = serializers.CharField(required=False, allow_blank=True, default="")
    expected_end = serializers.DateTimeField(required=False, allow_null=True, default=None)
    incident = serializers.CharField(required=False, allow_blank=True, allow_null=True, default=None,
                                     help_text="INC-YYYYMMDD-NNNN of the incident this change remediates.")
