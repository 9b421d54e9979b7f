"""/metrics, /healthz, /readyz."""
from django.db import connection
from django.http import HttpResponse, JsonResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, inline_serializer
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from rest_framework import serializers
from rest_framework.decorators import api_view, permission_classes
from rest_framework.permissions import IsAuthenticated

from .metrics import PipelineCollector

_collector = PipelineCollector()
REGISTRY.register(_collector)


_HEALTH = inline_serializer("Health", {"status": serializers.CharField()})
_READINESS = inline_serializer("Readiness", {"status": serializers.CharField(),
                                             "problems": serializers.ListField(child=serializers.CharField())})


@extend_schema(responses={(200, CONTENT_TYPE_LATEST.split(";")[0]): OpenApiTypes.STR})
@api_view(["GET"])
@permission_classes([IsAuthenticated])
def metrics(request):
    """Prometheus text format; scrape with `Authorization: Bearer <token>`."""
    return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)


@extend_schema(responses={200: _HEALTH})
@api_view(["GET"])
@permission_classes([IsAuthenticated])
def healthz(request):
    return JsonResponse({"status": "ok"})


def _check_database() -> str | None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:
        return f"database: {type(exc).__name__}: {exc}"
    return None


def _check_broker() -> str | None:
    from opsconsole.celery import app

    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
    except Exception as exc:
        return f"broker: {type(exc).__name__}: {exc}"
    return None


@extend_schema(responses={200: _READINESS, 503: _READINESS})
@api_view(["GET"])
@permission_classes([IsAuthenticated])
def readyz(request):
    problems = [p for p in (_check_database(), _check_broker()) if p]
    return JsonResponse({"status": "ready" if not problems else "not ready", "problems": problems},
                        status=200 if not problems else 503)
