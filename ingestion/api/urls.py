"""Ingestion API paths. /api/ingestion/... are the resources; /api/alpha/admin/... are the manual's
runbook paths (Runbook A, DESIGN.md §5), aliases of the same views."""
from django.urls import path
from rest_framework.routers import SimpleRouter

from . import views

router = SimpleRouter(trailing_slash=False)
router.register("ingestion/sources", views.SourceOperationsViewSet, basename="ingestion-source")
router.register("ingestion/validation-failures", views.ValidationFailureViewSet, basename="ingestion-validation-failure")

_source = views.SourceOperationsViewSet.as_view
_failures = views.ValidationFailureViewSet.as_view

urlpatterns = [
    path("sources/<slug:source_id>/records", views.SourceRecordsPush.as_view(), name="source-records-push"),
    path("ingestion/pause", views.IngestionPause.as_view(), name="ingestion-pause"),
    path("ingestion/resume", views.IngestionResume.as_view(), name="ingestion-resume"),
    path("ingestion/buffer", views.BufferStatus.as_view(), name="ingestion-buffer"),
    path("ingestion/buffer/resize", views.BufferResize.as_view(), name="ingestion-buffer-resize"),
    # Runbook paths: http://alpha:8080/<path> of the manual is /api/alpha/<path> here.
    path("alpha/admin/pause", views.IngestionPause.as_view(), name="alpha-pause"),
    path("alpha/admin/resume", views.IngestionResume.as_view(), name="alpha-resume"),
    path("alpha/admin/buffer", views.BufferStatus.as_view(), name="alpha-buffer"),
    path("alpha/admin/buffer/status", views.BufferStatus.as_view(), name="alpha-buffer-status"),
    path("alpha/admin/buffer/resize", views.BufferResize.as_view(), name="alpha-buffer-resize"),
    path("alpha/admin/sources/status", _source({"get": "list"}), name="alpha-sources-status"),
    path("alpha/admin/sources/<slug:source_id>/status", _source({"get": "status"}), name="alpha-source-status"),
    path("alpha/admin/sources/<slug:source_id>/test", _source({"get": "test", "post": "test"}), name="alpha-source-test"),
    path("alpha/admin/sources/<slug:source_id>/drain", _source({"get": "drain", "post": "drain"}),
         name="alpha-source-drain"),
    path("alpha/admin/sources/<slug:source_id>/pause", _source({"post": "pause"}), name="alpha-source-pause"),
    path("alpha/admin/sources/<slug:source_id>/resume", _source({"post": "resume"}), name="alpha-source-resume"),
    path("alpha/admin/sources/<slug:source_id>/poll", _source({"post": "poll"}), name="alpha-source-poll"),
    path("alpha/admin/sources/<slug:source_id>/errors", _source({"get": "errors"}), name="alpha-source-errors"),
    path("alpha/admin/validation-failures", _failures({"get": "list"}), name="alpha-validation-failures"),
    path("alpha/admin/validation-failures/summary", _failures({"get": "summary"}),
         name="alpha-validation-failures-summary"),
    path("alpha/metrics", views.AlphaMetrics.as_view(), name="alpha-metrics"),
    *router.urls,
]
