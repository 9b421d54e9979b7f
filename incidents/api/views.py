"""Incident API: viewsets over the selectors, @action POSTs over the services (the same ones the console
calls). Readers (Viewer, CAB member, operators) read; operators act."""
from datetime import timedelta

from django.db.models import Prefetch
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import BasePermission
from rest_framework.response import Response
from rest_framework.views import APIView

from opsconsole.errors import ApplicationError
from opsconsole.roles import IsOperator, IsViewerOrOperator, is_operator, is_reader

from .. import services
from ..choices import CommunicationKind
from ..communications import communication_render
from ..filtersets import IncidentFilterSet
from ..models import (
    ActionItem,
    Incident,
    Notification,
    OnCallOverride,
    PostIncidentReview,
    Responder,
)
from ..notifications import notification_mark_read
from ..oncall import (
    active_rota,
    on_call_schedule,
    on_call_shift,
    oncall_override_create,
    oncall_override_delete,
)
from ..selectors import (
    action_item_list,
    incident_list,
    incident_timeline,
    notification_list,
    overdue_action_items_q,
)
from . import serializers as s


def _data(request, serializer_class, **kwargs):
    serializer = serializer_class(data=request.data if hasattr(request.data, "get") else {}, **kwargs)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


class IncidentViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet):
    """Incidents, active first by severity. POST declares one; the actions move it through its workflow."""

    lookup_field = "incident_id"
    lookup_value_regex = r"INC-\d{8}-\d{4,}"
    permission_classes = [IsViewerOrOperator]
    filterset_class = IncidentFilterSet

    def get_queryset(self):
        queryset = incident_list()
        if self.action != "list":
            queryset = queryset.prefetch_related(
                "components", "escalations", "timers",
                Prefetch("responders", queryset=Responder.objects.select_related("user")))
        return queryset

    def get_serializer_class(self):
        return s.IncidentListSerializer if self.action == "list" else s.IncidentDetailSerializer

    def get_serializer_context(self):
        return {**super().get_serializer_context(), "now": timezone.now()}

    def _answer(self, incident: Incident, code=status.HTTP_200_OK) -> Response:
        incident = self.get_queryset().get(pk=incident.pk)
        return Response(s.IncidentDetailSerializer(incident, context=self.get_serializer_context()).data, status=code)

    @extend_schema(request=s.DeclareSerializer, responses={201: s.IncidentDetailSerializer})
    def create(self, request, *args, **kwargs):
        data = _data(request, s.DeclareSerializer)
        incident = services.incident_declare(
            actor=request.user, severity=data["severity"], summary=data["summary"], impact=data["impact"],
            description=data["description"], detection_source=data["detection_source"], began_at=data["began_at"],
            recent_changes=data["recent_changes"], current_actions=data["current_actions"],
            components=[(c["kind"], c["identifier"]) for c in data["components"]], channel_links=data["channel_links"])
        return self._answer(incident, status.HTTP_201_CREATED)

    def _transition(self, request, serializer_class, call):
        incident = self.get_object()
        data = _data(request, serializer_class)
        return self._answer(call(incident, data))

    @extend_schema(request=s.InvestigateSerializer, responses={200: s.IncidentDetailSerializer})
    @action(detail=True, methods=["post"], permission_classes=[IsOperator])
    def investigate(self, request, incident_id=None):
        """Open → Investigating (the initial response)."""
        return self._transition(request, s.InvestigateSerializer, lambda i, d: services.incident_investigate(
            actor=request.user, incident=i, note=d["note"]))

    @extend_schema(request=s.MitigateSerializer, responses={200: s.IncidentDetailSerializer})
    @action(detail=True, methods=["post"], permission_classes=[IsOperator])
    def mitigate(self, request, incident_id=None):
        """Investigating → Mitigating."""
        return self._transition(request, s.MitigateSerializer, lambda i, d: services.incident_mitigate(
            actor=request.user, incident=i, actions=d["actions"]))

    @extend_schema(request=s.ResolveSerializer, responses={
        200: s.IncidentDetailSerializer, 409: OpenApiResponse(description="{error, unconfirmed: [criteria]}")})
    @action(detail=True, methods=["post"], permission_classes=[IsOperator])
    def resolve(self, request, incident_id=None):
        """→ Resolved, only with all four resolution criteria confirmed (true)."""
        return self._transition(request, s.ResolveSerializer, lambda i, d: services.incident_resolve(
            actor=request.user, incident=i, **d))

    @extend_schema(request=s.ReasonSerializer, responses={200: s.IncidentDetailSerializer})
    @action(detail=True, methods=["post"], permission_classes=[IsOperator])
    def reopen(self, request, incident_id=None):
        """Resolved → Investigating."""
        return self._transition(request, s.ReasonSerializer, lambda i, d: services.incident_reopen(
            actor=request.user, incident=i, reason=d["reason"]))

    @extend_schema(request=s.CloseSerializer, responses={200: s.IncidentDetailSerializer})
    @action(detail=True, methods=["post"], permission_classes=[IsOperator])
    def close(self, request, incident_id=None):
        """Resolved → Closed, once the follow-up is done."""
        return self._transition(request, s.CloseSerializer, lambda i, d: services.incident_close(
            actor=request.user, incident=i, note=d["note"]))

    @extend_schema(request=s.ReclassifySerializer, responses={200: s.IncidentDetailSerializer})
    @action(detail=True, methods=["post"], permission_classes=[IsOperator])
    def reclassify(self, request, incident_id=None):
        """Change the severity, with a reason."""
        return self._transition(request, s.ReclassifySerializer, lambda i, d: services.incident_reclassify(
            actor=request.user, incident=i, severity=d["severity"], reason=d["reason"]))

    @extend_schema(request=s.EscalateSerializer, responses={200: s.IncidentDetailSerializer})
    @action(detail=True, methods=["post"], permission_classes=[IsOperator])
    def escalate(self, request, incident_id=None):
        """Manual escalation with a reason: the next matrix level, or a role / named people."""
        def call(incident, d):
            services.incident_escalate(actor=request.user, incident=incident, reason_kind=d["reason_kind"],
                                       reason=d["reason"], role=d["role"], users=d["users"])
            return incident
        return self._transition(request, s.EscalateSerializer, call)

    @extend_schema(request=s.ImpactSerializer, responses={200: s.IncidentDetailSerializer})
    @action(detail=True, methods=["post"], url_path="impact-expanded", permission_classes=[IsOperator])
    def impact_expanded(self, request, incident_id=None):
        """Customer impact expanded (automatic escalation trigger)."""
        def call(incident, d):
            services.incident_impact_expand(actor=request.user, incident=incident, impact=d["impact"],
                                            components=[(c["kind"], c["identifier"]) for c in d["components"]])
            return incident
        return self._transition(request, s.ImpactSerializer, call)

    @extend_schema(request=s.DataLossSerializer, responses={200: s.IncidentDetailSerializer})
    @action(detail=True, methods=["post"], url_path="data-loss", permission_classes=[IsOperator])
    def data_loss(self, request, incident_id=None):
        """Data loss confirmed (automatic escalation trigger)."""
        def call(incident, d):
            services.incident_data_loss_confirm(actor=request.user, incident=incident, details=d["details"])
            return incident
        return self._transition(request, s.DataLossSerializer, call)

    @extend_schema(request=s.EditSerializer, responses={200: s.IncidentDetailSerializer})
    @action(detail=True, methods=["post"], permission_classes=[IsOperator])
    def edit(self, request, incident_id=None):
        """Edit the ticket's descriptive fields (only those given)."""
        return self._transition(request, s.EditSerializer, lambda i, d: services.incident_update(
            actor=request.user, incident=i, **d))

    @extend_schema(request=s.NoteSerializer, responses={201: s.TimelineEntrySerializer})
    @action(detail=True, methods=["post"], permission_classes=[IsOperator])
    def notes(self, request, incident_id=None):
        """Add a note to the timeline."""
        incident = self.get_object()
        entry = services.incident_note_add(actor=request.user, incident=incident, text=_data(request, s.NoteSerializer)["text"])
        return Response(s.TimelineEntrySerializer(entry).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=s.ResponderInputSerializer, responses={200: s.IncidentDetailSerializer})
    @action(detail=True, methods=["post"], permission_classes=[IsOperator])
    def responders(self, request, incident_id=None):
        """Add a responder (notified in the console and by email)."""
        def call(incident, d):
            services.incident_responder_add(actor=request.user, incident=incident, user=d["user"], role=d["role"])
            return incident
        return self._transition(request, s.ResponderInputSerializer, call)

    @extend_schema(request=s.ComponentsInputSerializer, responses={200: s.IncidentDetailSerializer})
    @action(detail=True, methods=["post"], permission_classes=[IsOperator])
    def components(self, request, incident_id=None):
        """Link affected pipeline components (module, source, rule, destination)."""
        def call(incident, d):
            services.incident_components_add(actor=request.user, incident=incident,
                                             components=[(c["kind"], c["identifier"]) for c in d["components"]])
            return incident
        return self._transition(request, s.ComponentsInputSerializer, call)

    @extend_schema(responses={200: s.TimelineEntrySerializer(many=True)})
    @action(detail=True, methods=["get"])
    def timeline(self, request, incident_id=None):
        return Response(s.TimelineEntrySerializer(incident_timeline(self.get_object()), many=True).data)

    @extend_schema(request=s.CommunicationInputSerializer, responses={
        200: OpenApiResponse(description="{templates: {initial|update|resolution: {subject, body}}, sent: [...]}"),
        201: s.CommunicationSerializer})
    @action(detail=True, methods=["get", "post"])
    def communications(self, request, incident_id=None):
        """GET: the three templates rendered from the live incident, and what was sent. POST: send one
        (body empty: as rendered; otherwise as edited)."""
        incident = self.get_object()
        if request.method == "GET":
            templates = {kind: communication_render(incident=incident, kind=kind) for kind in CommunicationKind.values}
            sent = s.CommunicationSerializer(incident.communications.select_related("sent_by"), many=True).data
            return Response({"templates": templates, "sent": sent})
        data = _data(request, s.CommunicationInputSerializer)
        communication = services.communication_send(actor=request.user, incident=incident, **data)
        return Response(s.CommunicationSerializer(communication).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=s.ReviewInputSerializer, responses={200: s.ReviewSerializer})
    @action(detail=True, methods=["get", "post"])
    def review(self, request, incident_id=None):
        """GET: the post-incident review. POST: start it (optional for P3) and/or update the draft."""
        incident = self.get_object()
        review = PostIncidentReview.objects.filter(incident=incident).first()
        if request.method == "GET":
            if review is None:
                raise ApplicationError("This incident has no post-incident review.", status_code=404)
            return Response(s.ReviewSerializer(review).data)
        data = _data(request, s.ReviewInputSerializer)
        if review is None:
            review = services.review_start(actor=request.user, incident=incident)
        if data:
            review = services.review_update(actor=request.user, review=review, **data)
        return Response(s.ReviewSerializer(PostIncidentReview.objects.get(pk=review.pk)).data)

    @extend_schema(request=None, responses={200: s.ReviewSerializer})
    @action(detail=True, methods=["post"], url_path="review/publish", permission_classes=[IsOperator])
    def review_publish(self, request, incident_id=None):
        review = get_object_or_404(PostIncidentReview, incident=self.get_object())
        review = services.review_publish(actor=request.user, review=review)
        return Response(s.ReviewSerializer(review).data)

    @extend_schema(request=s.ActionItemInputSerializer, responses={201: s.ActionItemSerializer})
    @action(detail=True, methods=["post"], url_path="review/action-items", permission_classes=[IsOperator])
    def review_action_items(self, request, incident_id=None):
        review = get_object_or_404(PostIncidentReview, incident=self.get_object())
        item = services.action_item_add(actor=request.user, review=review, **_data(request, s.ActionItemInputSerializer))
        return Response(s.ActionItemSerializer(item).data, status=status.HTTP_201_CREATED)


class ActionItemViewSet(viewsets.ReadOnlyModelViewSet):
    """Post-incident review action items; ?overdue=true lists the overdue ones."""

    permission_classes = [IsViewerOrOperator]
    serializer_class = s.ActionItemSerializer

    def get_queryset(self):
        queryset = action_item_list()
        overdue = self.request.query_params.get("overdue")
        if overdue in ("true", "1"):
            queryset = queryset.filter(overdue_action_items_q(timezone.now()))
        owner = self.request.query_params.get("owner")
        return queryset.filter(owner__username=owner) if owner else queryset

    @extend_schema(request=None, responses={200: s.ActionItemSerializer})
    @action(detail=True, methods=["post"], permission_classes=[IsOperator])
    def complete(self, request, pk=None):
        item = services.action_item_complete(actor=request.user, item=self.get_object())
        return Response(s.ActionItemSerializer(ActionItem.objects.get(pk=item.pk)).data)


class IsReader(BasePermission):
    """Any reader role; for acting on one's own notifications."""

    message = "Your role does not allow this action."

    def has_permission(self, request, view) -> bool:
        return is_reader(request.user)


class NotificationViewSet(viewsets.ReadOnlyModelViewSet):
    """Recorded notifications. Operators see all (filter ?incident=, ?channel=, ?status=); others their own."""

    permission_classes = [IsViewerOrOperator]
    serializer_class = s.NotificationSerializer

    queryset = Notification.objects.none()  # for the schema; get_queryset answers requests

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Notification.objects.none()
        queryset = notification_list()
        params = self.request.query_params
        if not is_operator(self.request.user) or params.get("mine") in ("true", "1"):
            queryset = queryset.filter(recipient=self.request.user)
        for name, field in (("incident", "incident__incident_id"), ("channel", "channel"), ("status", "status")):
            if params.get(name):
                queryset = queryset.filter(**{field: params[name]})
        return queryset

    @extend_schema(request=None, responses={200: s.NotificationSerializer})
    @action(detail=True, methods=["post"], permission_classes=[IsReader])
    def read(self, request, pk=None):
        """Mark one of your in-console notifications read (any reader may, for their own)."""
        notification = get_object_or_404(Notification, pk=pk)
        return Response(s.NotificationSerializer(notification_mark_read(user=request.user, notification=notification)).data)


class OnCallNow(APIView):
    """GET: who is on call now (the matrix's "On-call Engineer") and the next four weeks of shifts."""

    permission_classes = [IsViewerOrOperator]

    @extend_schema(responses={200: OpenApiResponse(description="{rota, now: {user, starts_at, ends_at, override}, schedule: [...]}")})
    def get(self, request):
        now = timezone.now()
        rota = active_rota()

        def shift(x):
            return x and {"user": x.user.get_username() if x.user else None, "starts_at": x.starts_at,
                          "ends_at": x.ends_at, "override": x.is_override}
        return Response({"rota": rota.name if rota else None, "now": shift(on_call_shift(now)),
                         "schedule": [shift(x) for x in on_call_schedule(now, now + timedelta(days=28))]})


class OnCallOverrideViewSet(mixins.ListModelMixin, mixins.CreateModelMixin, mixins.DestroyModelMixin,
                            viewsets.GenericViewSet):
    """Overrides of the active rota (current and future). Operators add and remove them."""

    permission_classes = [IsViewerOrOperator]
    serializer_class = s.OverrideSerializer

    def get_queryset(self):
        return OnCallOverride.objects.filter(ends_at__gt=timezone.now()).select_related("user", "created_by").order_by("starts_at")

    def perform_create(self, serializer):
        data = serializer.validated_data
        serializer.instance = oncall_override_create(actor=self.request.user, user=data["user"], starts_at=data["starts_at"],
                                                     ends_at=data["ends_at"], reason=data.get("reason", ""))

    def perform_destroy(self, instance):
        oncall_override_delete(actor=self.request.user, override=instance,
                               reason=self.request.query_params.get("reason", ""))

