"""Pipeline-wide reads: reconciliation."""
from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from ingestion.selectors import reconciliation


class Reconciliation(APIView):
    """GET /api/pipeline/reconciliation: ingested = rejected + filtered + delivered + held + dlq + in_flight."""

    @extend_schema(responses={200: dict})
    def get(self, request):
        return Response(reconciliation())
