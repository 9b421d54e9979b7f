from rest_framework import serializers

from ..models import SourceError, ValidationFailure
from ..services import MAX_BUFFER_CAPACITY


class ReasonInputSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=1000)


class BufferResizeInputSerializer(ReasonInputSerializer):
    capacity = serializers.IntegerField(min_value=1, max_value=MAX_BUFFER_CAPACITY)


class ValidationFailureSerializer(serializers.ModelSerializer):
    class Meta:
        model = ValidationFailure
        fields = ["id", "created_at", "source_id", "batch", "error_code", "field", "message", "raw"]


class SourceErrorSerializer(serializers.ModelSerializer):
    class Meta:
        model = SourceError
        fields = ["id", "created_at", "source_id", "kind", "stage", "status_code", "message"]
