from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from ..models import BreakerTransition, CircuitBreaker, DeadLetter, OperationRun


class DeadLetterSerializer(serializers.ModelSerializer):
    state = serializers.CharField(read_only=True)
    record_id = serializers.CharField(read_only=True)

    class Meta:
        model = DeadLetter
        fields = [
            "id", "state", "record_id", "source_id", "destination_id", "category", "reason", "http_status", "attempts",
            "first_failed_at", "last_failed_at", "retry_eligible", "original_payload", "corrected_payload", "note",
            "decided_at",
        ]


class DeadLetterDetailSerializer(DeadLetterSerializer):
    payload = serializers.SerializerMethodField()

    class Meta(DeadLetterSerializer.Meta):
        fields = [*DeadLetterSerializer.Meta.fields, "payload"]

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_payload(self, entry: DeadLetter):
        record = entry.record
        return record.data if record.data is not None else record.payload


class SelectionSerializer(serializers.Serializer):
    """The manual's bodies: {"entry_ids": [...]} or {"filter": {"retry_eligible": true}}."""

    entry_ids = serializers.ListField(child=serializers.JSONField(), required=False, allow_empty=False)
    filter = serializers.DictField(required=False)
    reason = serializers.CharField(required=False, allow_blank=True, default="")


class CorrectSerializer(serializers.Serializer):
    payload = serializers.JSONField()
    note = serializers.CharField(required=False, allow_blank=True, default="")


class ResetSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, default="")


class ExportJobSerializer(serializers.Serializer):
    format = serializers.ChoiceField(choices=["json", "jsonl", "csv"], default="jsonl")
    filter = serializers.DictField(required=False)


class CircuitBreakerSerializer(serializers.ModelSerializer):
    state = serializers.CharField(source="get_state_display")

    class Meta:
        model = CircuitBreaker
        fields = ["destination_id", "state", "opened_at", "consecutive_failures", "window_successes",
                  "window_failures", "reason", "updated_at"]


class BreakerTransitionSerializer(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor.username", default=None)

    class Meta:
        model = BreakerTransition
        fields = ["destination_id", "source_state", "target_state", "reason", "actor", "at"]


class OperationRunSerializer(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor.username", default=None)
    progress = serializers.SerializerMethodField()

    class Meta:
        model = OperationRun
        fields = ["id", "kind", "status", "total", "done", "progress", "result", "error", "actor", "created_at",
                  "finished_at"]

    def get_progress(self, run: OperationRun) -> float:
        return round(run.done / run.total, 4) if run.total else 1.0
