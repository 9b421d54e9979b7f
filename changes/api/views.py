"""Change management API: change requests (the manual's form), their workflow as @action POSTs, CAB votes,
emergency changes, the change calendar and the weekly change review. Thin over changes.services.

Readers (Viewer, CAB member, operators) read everything. Writes need a reader role here; the services
decide the rest (who may submit, review, vote at which risk level, implement, cancel) and answer 403
with the reason when the role does not allow it.
"""
from datetime import date

from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import BasePermission
from rest_framework.response import Response

from opsconsole.errors import ApplicationError
from opsconsole.roles import is_reader

from .. import services
from ..filtersets import ChangeRequestFilterSet
from ..models import StandardChangeKind
from ..selectors import change_calendar, change_list, week_start_of, weekly_change_review
from . import serializers as s


class IsReaderThenService(BasePermission):
    """Any reader may read; writes are let through to the services, which check the role per action."""

    message = "Your role does not allow access to change management."

    def has_permission(self, request, view) -> bool:
        return is_reader(request.user)


def _input(serializer_class, request):
    data = request.data if isinstance(request.data, dict) else {}
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


DETAIL = OpenApiResponse(s.ChangeRequestDetailSerializer, description="the change request after the action")


class ChangeRequestViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Change requests. POST creates a draft from the manual's form; PATCH edits a draft; the workflow's
    steps are POST actions on /api/changes/<change_id>/<action>."""

    queryset = change_list()
    filterset_class = ChangeRequestFilterSet
    lookup_field = "change_id"
    lookup_value_regex = r"CHG-\d{4}-\d{4}-\d{3,}"
    permission_classes = [IsReaderThenService]

    def get_serializer_class(self):
        return s.ChangeRequestListSerializer if self.action == "list" else s.ChangeRequestDetailSerializer

    def get_queryset(self):
        queryset = super().get_queryset()
        if self.action != "list":
            queryset = queryset.select_related("technical_reviewer", "reviewed_by", "verbal_approver")
        return queryset

    def _answer(self, change, code=status.HTTP_200_OK):
        change = self.get_queryset().get(pk=change.pk)
        return Response(s.ChangeRequestDetailSerializer(change, context=self.get_serializer_context()).data, status=code)

    @extend_schema(request=s.ChangeRequestInputSerializer, responses={201: DETAIL})
    def create(self, request):
        data = _input(s.ChangeRequestInputSerializer, request)
        return self._answer(services.change_create(actor=request.user, data=data), status.HTTP_201_CREATED)

    @extend_schema(request=s.ChangeRequestInputSerializer, responses={200: DETAIL})
    def partial_update(self, request, change_id=None):
        serializer = s.ChangeRequestInputSerializer(data=request.data if isinstance(request.data, dict) else {},
                                                    partial=True)
        serializer.is_valid(raise_exception=True)
        # Only what the caller sent (a partial serializer still fills defaults in).
        data = {k: v for k, v in serializer.validated_data.items() if k in request.data}
        return self._answer(services.change_update(change=self.get_object(), actor=request.user, data=data))

    def _run(self, request, service, input_class=None, **mapping):
        """Validate the action's input, call the service with the change, answer the change."""
        kwargs = {}
        if input_class is not None:
            data = _input(input_class, request)
            kwargs = {mapping.get(k, k): v for k, v in data.items()}
        return self._answer(service(change=self.get_object(), actor=request.user, **kwargs))

    @extend_schema(request=None, responses={200: DETAIL})
    @action(detail=True, methods=["post"])
    def submit(self, request, change_id=None):
        """Submit the form (a standard change of a catalogued kind is pre-approved at once)."""
        return self._run(request, services.change_submit)

    @extend_schema(request=None, responses={200: DETAIL})
    @action(detail=True, methods=["post"], url_path="review-start")
    def review_start(self, request, change_id=None):
        return self._run(request, services.change_review_start)

    @extend_schema(request=s.ChangeReviewPassInput, responses={200: DETAIL})
    @action(detail=True, methods=["post"], url_path="review-pass")
    def review_pass(self, request, change_id=None):
        """Record the technical review (the five points) and send the change to CAB review."""
        return self._run(request, services.change_review_pass, s.ChangeReviewPassInput)

    @extend_schema(request=s.ChangeReasonInput, responses={200: DETAIL})
    @action(detail=True, methods=["post"], url_path="return")
    def return_to_draft(self, request, change_id=None):
        return self._run(request, services.change_return, s.ChangeReasonInput)

    @extend_schema(request=s.ChangeCommentInput, responses={200: DETAIL})
    @action(detail=True, methods=["post"])
    def approve(self, request, change_id=None):
        """A CAB vote to approve; the change is approved once the approval table's requirement is met."""
        data = _input(s.ChangeCommentInput, request)
        return self._answer(services.change_vote(change=self.get_object(), actor=request.user, decision="approve",
                                                 comment=data["comment"], via="api"))

    @extend_schema(request=s.ChangeReasonInput, responses={200: DETAIL})
    @action(detail=True, methods=["post"])
    def reject(self, request, change_id=None):
        """Reject in technical review, or vote to reject in CAB review."""
        data = _input(s.ChangeReasonInput, request)
        return self._answer(services.change_reject(change=self.get_object(), actor=request.user, reason=data["reason"],
                                                   via="api"))

    @extend_schema(request=s.ChangeScheduleInput, responses={200: DETAIL})
    @action(detail=True, methods=["post"])
    def schedule(self, request, change_id=None):
        return self._run(request, services.change_schedule, s.ChangeScheduleInput)

    @extend_schema(request=s.ChangeChecklistInput, responses={200: DETAIL})
    @action(detail=True, methods=["post"])
    def checklist(self, request, change_id=None):
        """Tick (true) or untick (false) pre-implementation checklist items."""
        return self._run(request, services.change_checklist_set, s.ChangeChecklistInput)

    @extend_schema(request=None, responses={200: DETAIL})
    @action(detail=True, methods=["post"])
    def start(self, request, change_id=None):
        return self._run(request, services.change_start)

    @extend_schema(request=s.ChangeNotesInput, responses={200: DETAIL})
    @action(detail=True, methods=["post"], url_path="implementation-done")
    def implementation_done(self, request, change_id=None):
        return self._run(request, services.change_implementation_done, s.ChangeNotesInput)

    @extend_schema(request=s.ChangeCompleteInput, responses={200: DETAIL})
    @action(detail=True, methods=["post"])
    def complete(self, request, change_id=None):
        return self._run(request, services.change_complete, s.ChangeCompleteInput)

    @extend_schema(request=s.ChangeRollBackInput, responses={200: DETAIL})
    @action(detail=True, methods=["post"], url_path="roll-back")
    def roll_back(self, request, change_id=None):
        return self._run(request, services.change_roll_back, s.ChangeRollBackInput)

    @extend_schema(request=s.ChangeCloseInput, responses={200: DETAIL})
    @action(detail=True, methods=["post"])
    def review(self, request, change_id=None):
        """The post-implementation review (within 24 hours); closes the change."""
        return self._run(request, services.change_close, s.ChangeCloseInput)

    @extend_schema(request=s.ChangeReasonInput, responses={200: DETAIL})
    @action(detail=True, methods=["post"])
    def cancel(self, request, change_id=None):
        return self._run(request, services.change_cancel, s.ChangeReasonInput)

    @extend_schema(request=s.ChangeRequestInputSerializer, responses={200: DETAIL})
    @action(detail=True, methods=["post"])
    def formalize(self, request, change_id=None):
        """Complete the formal request of an emergency change (form fields in the body are saved first)."""
        serializer = s.ChangeRequestInputSerializer(data=request.data if isinstance(request.data, dict) else {},
                                                    partial=True)
        serializer.is_valid(raise_exception=True)
        data = {k: v for k, v in serializer.validated_data.items() if k in request.data}
        return self._answer(services.change_formalize(change=self.get_object(), actor=request.user, data=data))

    @extend_schema(request=s.ChangeNoteInput, responses={201: OpenApiResponse(s.ChangeEventSerializer)})
    @action(detail=True, methods=["post"])
    def notes(self, request, change_id=None):
        data = _input(s.ChangeNoteInput, request)
        event = services.change_note_add(change=self.get_object(), actor=request.user, text=data["text"])
        return Response(s.ChangeEventSerializer(event).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=s.ChangeEmergencyInput, responses={201: DETAIL})
    @action(detail=False, methods=["post"])
    def emergency(self, request):
        """Declare an emergency change with the on-call manager's verbal approval; implementation starts now."""
        data = _input(s.ChangeEmergencyInput, request)
        change = services.emergency_change_declare(actor=request.user, **data)
        return self._answer(change, status.HTTP_201_CREATED)

    @extend_schema(parameters=[OpenApiParameter("start", str, description="YYYY-MM-DD (default: this week's Monday)"),
                               OpenApiParameter("days", int, description="1-92 (default 28)")],
                   responses={200: OpenApiResponse(description="{start, end, days: [{day, changes: [...]}], flagged}")})
    @action(detail=False, methods=["get"])
    def calendar(self, request):
        """Implementation windows day by day, with overlapping windows on shared systems flagged."""
        start, days = calendar_range(request.query_params)
        calendar = change_calendar(start=start, days=days)
        rows = [{"day": day.day.isoformat(), "changes": [
            {**s.ChangeRequestListSerializer(entry["change"]).data,
             "conflicts": [{"change_id": c.other_id, "shared": c.shared} for c in entry["conflicts"]]}
            for entry in day.entries]} for day in calendar["days"]]
        return Response({"start": calendar["start"].isoformat(), "end": calendar["end"].isoformat(), "days": rows,
                         "flagged": calendar["flagged"]})

    @extend_schema(parameters=[OpenApiParameter("week", str, description="any day of the week, YYYY-MM-DD")],
                   responses={200: OpenApiResponse(description="the weekly change review")})
    @action(detail=False, methods=["get"], url_path="weekly-review")
    def weekly_review(self, request):
        """Success rate, rollback frequency, changes by type and risk for one week."""
        day = _date(request.query_params.get("week"), "week") or timezone.localdate()
        review = weekly_change_review(week_start=week_start_of(day))
        ids = lambda rows: [c.change_id for c in rows]  # noqa: E731
        return Response({
            **{k: review[k] for k in ("implemented", "completed", "rolled_back", "success_rate", "rollback_rate",
                                      "finished_by_type", "finished_by_risk", "raised", "raised_by_type",
                                      "raised_by_risk")},
            "week_start": review["week_start"].isoformat(), "week_end": review["week_end"].isoformat(),
            "finished": ids(review["finished"]), "with_deviations": ids(review["with_deviations"]),
            "emergencies": ids(review["emergencies"]),
            "rollback_triggers": [{"trigger": t, "count": n} for t, n in review["rollback_triggers"]],
            "post_review_overdue": ids(review["post_review_overdue"]),
            "formal_request_overdue": ids(review["formal_request_overdue"]),
        })


def _date(value: str | None, name: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ApplicationError(f"{name}: expected a date YYYY-MM-DD, got '{value}'.") from None


def calendar_range(params) -> tuple[date, int]:
    start = _date(params.get("start"), "start") or week_start_of(timezone.localdate())
    try:
        days = int(params.get("days") or 28)
    except ValueError:
        raise ApplicationError("days: expected a number of days.") from None
    if not 1 <= days <= 92:
        raise ApplicationError("days: between 1 and 92.")
    return start, days


class StandardChangeKindViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """The catalogue of pre-approved (standard) change kinds."""

    queryset = StandardChangeKind.objects.filter(active=True)
    serializer_class = s.StandardChangeKindSerializer
    permission_classes = [IsReaderThenService]
    pagination_class = None
