"""Configuration API: reload (the manual's /admin/config/reload of each module), versions, rollback, drift,
and the applied sources, rules and destinations. Thin over configuration.services."""
from collections import defaultdict

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from delivery.models import Destination, RoutingRule
from ingestion.models import Source
from opsconsole.roles import IsOperator, IsViewerOrOperator
from transform.models import TransformRule

from ..models import ConfigVersion
from ..services import config_drift, config_reload, config_rollback
from . import serializers as s


def _version_answer(version: ConfigVersion) -> dict:
    return {"version": version.number, "sha256": version.sha256, "changed": version.changed, "counts": version.counts}


class ConfigReload(APIView):
    """POST: validate the whole configuration and apply it (all or nothing). The same for alpha, beta and gamma."""

    permission_classes = [IsOperator]

    @extend_schema(request=s.ReloadInputSerializer, responses={
        200: OpenApiResponse(description="{version, sha256, changed, counts}"),
        400: OpenApiResponse(description="{error, errors: [{file, field, reason}]}; nothing applied"),
    })
    def post(self, request, *args, **kwargs):
        data = s.ReloadInputSerializer(data=request.data if isinstance(request.data, dict) else {})
        data.is_valid(raise_exception=True)
        version = config_reload(actor=request.user, comment=data.validated_data["comment"])
        return Response(_version_answer(version))


class ConfigVersionViewSet(viewsets.ReadOnlyModelViewSet):
    """Applied configuration versions; a version's detail includes its files."""

    queryset = ConfigVersion.objects.select_related("applied_by").order_by("-number")
    lookup_field = "number"
    lookup_value_regex = r"\d+"
    permission_classes = [IsViewerOrOperator]

    def get_serializer_class(self):
        return s.ConfigVersionDetailSerializer if self.action == "retrieve" else s.ConfigVersionSerializer

    @extend_schema(request=s.RollbackInputSerializer, responses={200: OpenApiResponse(description="{version, sha256, changed, counts}")})
    @action(detail=True, methods=["post"], permission_classes=[IsOperator])
    def rollback(self, request, number=None):
        data = s.RollbackInputSerializer(data=request.data if isinstance(request.data, dict) else {})
        data.is_valid(raise_exception=True)
        version = config_rollback(actor=request.user, number=int(number), reason=data.validated_data["reason"])
        return Response(_version_answer(version))


class ConfigDrift(APIView):
    """GET: files added, removed or changed on disk since the active version was applied."""

    permission_classes = [IsViewerOrOperator]

    @extend_schema(responses={200: OpenApiResponse(description="drift report")})
    def get(self, request):
        return Response(config_drift())


class _AppliedList(mixins.ListModelMixin, viewsets.GenericViewSet):
    permission_classes = [IsViewerOrOperator]
    pagination_class = None


class SourceViewSet(_AppliedList):
    queryset = Source.objects.all()
    serializer_class = s.SourceSerializer


class TransformRuleViewSet(_AppliedList):
    queryset = TransformRule.objects.all()
    serializer_class = s.TransformRuleSerializer


class DestinationViewSet(_AppliedList):
    queryset = Destination.objects.all()
    serializer_class = s.DestinationSerializer

    def get_serializer_context(self):
        routes = defaultdict(list)
        for rule_id, destination_id in RoutingRule.objects.values_list("rule_id", "destination_id"):
            routes[destination_id].append(rule_id)
        return {**super().get_serializer_context(), "routes_by_destination": routes}


class RoutingRuleViewSet(_AppliedList):
    queryset = RoutingRule.objects.all()
    serializer_class = s.RoutingRuleSerializer
