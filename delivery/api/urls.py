"""Module Gamma's runbook paths (manual C.1-C.3 at http://gamma:8080/admin/... -> /api/gamma/admin/...)."""
from django.urls import path

from . import views

dlq = views.DeadLetterViewSet
runs = views.OperationRunViewSet
PREFIX = "gamma/admin/"

urlpatterns = [
    path(PREFIX + "dlq/entries", dlq.as_view({"get": "list"}), name="gamma-dlq-entries"),
    path(PREFIX + "dlq/entries/<int:pk>", dlq.as_view({"get": "retrieve"}), name="gamma-dlq-entry"),
    path(PREFIX + "dlq/entries/<int:pk>/correct", dlq.as_view({"post": "correct"}), name="gamma-dlq-correct"),
    path(PREFIX + "dlq/stats", dlq.as_view({"get": "stats"}), name="gamma-dlq-stats"),
    path(PREFIX + "dlq/analysis", dlq.as_view({"get": "analysis"}), name="gamma-dlq-analysis"),
    path(PREFIX + "dlq/replay", dlq.as_view({"post": "replay"}), name="gamma-dlq-replay"),
    path(PREFIX + "dlq/purge", dlq.as_view({"post": "purge"}), name="gamma-dlq-purge"),
    path(PREFIX + "dlq/triage", dlq.as_view({"post": "triage"}), name="gamma-dlq-triage"),
    path(PREFIX + "dlq/mark-exported", dlq.as_view({"post": "mark_exported"}), name="gamma-dlq-mark-exported"),
    path(PREFIX + "dlq/export", dlq.as_view({"get": "export"}), name="gamma-dlq-export"),
    path(PREFIX + "dlq/export-jobs", dlq.as_view({"post": "export_job"}), name="gamma-dlq-export-jobs"),
    path(PREFIX + "operations", runs.as_view({"get": "list"}), name="gamma-operations"),
    path(PREFIX + "operations/<int:pk>", runs.as_view({"get": "retrieve"}), name="gamma-operation"),
    path(PREFIX + "operations/<int:pk>/download", runs.as_view({"get": "download"}), name="gamma-operation-download"),
    path(PREFIX + "circuit-breakers/status", views.CircuitBreakerStatus.as_view(), name="gamma-breakers-status"),
    path(PREFIX + "circuit-breakers/<slug:destination_id>/reset", views.CircuitBreakerReset.as_view(),
         name="gamma-breaker-reset"),
    path(PREFIX + "destinations/<slug:destination_id>/test", views.DestinationTest.as_view(), name="gamma-destination-test"),
    path(PREFIX + "destinations/<slug:destination_id>/test-delivery", views.DestinationTestDelivery.as_view(),
         name="gamma-destination-test-delivery"),
    path(PREFIX + "destinations/<slug:destination_id>/status", views.DestinationStatus.as_view(),
         name="gamma-destination-status"),
    path(PREFIX + "destinations/<slug:destination_id>/errors", views.DestinationErrors.as_view(),
         name="gamma-destination-errors"),
]
