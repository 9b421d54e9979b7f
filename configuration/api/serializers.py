"""What the configuration API answers. Specs carry secrets only as references (the loader refuses others)."""
from rest_framework import serializers

from delivery.models import Destination, RoutingRule
from ingestion.models import Source
from transform.models import TransformRule

from ..models import ConfigVersion


class ConfigVersionSerializer(serializers.ModelSerializer):
    applied_by = serializers.SerializerMethodField()
    file_count = serializers.SerializerMethodField()

    class Meta:
        model = ConfigVersion
        fields = ["number", "sha256", "applied_at", "applied_by", "comment", "is_active", "file_count"]

    def get_applied_by(self, version: ConfigVersion) -> str:
        return version.applied_by.get_username() if version.applied_by else "system"

    def get_file_count(self, version: ConfigVersion) -> int:
        return len(version.files or {})


class ConfigVersionDetailSerializer(ConfigVersionSerializer):
    class Meta(ConfigVersionSerializer.Meta):
        fields = [*ConfigVersionSerializer.Meta.fields, "files"]


class RollbackInputSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=1000)


class ReloadInputSerializer(serializers.Serializer):
    comment = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")


class SourceSerializer(serializers.ModelSerializer):
    class Meta:
        model = Source
        fields = ["source_id", "source_type", "enabled", "config_version", "spec"]


class TransformRuleSerializer(serializers.ModelSerializer):
    class Meta:
        model = TransformRule
        fields = ["rule_id", "name", "description", "enabled", "priority", "config_version", "spec"]


class DestinationSerializer(serializers.ModelSerializer):
    routing_rules = serializers.SerializerMethodField()

    class Meta:
        model = Destination
        fields = ["destination_id", "destination_type", "enabled", "config_version", "routing_rules", "spec"]

    def get_routing_rules(self, destination: Destination) -> list[str]:
        routes = self.context.get("routes_by_destination", {})
        return routes.get(destination.destination_id, [])


class RoutingRuleSerializer(serializers.ModelSerializer):
    class Meta:
        model = RoutingRule
        fields = ["rule_id", "enabled", "priority", "destination_id", "config_version", "spec"]
