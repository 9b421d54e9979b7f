"""Console routes of Module Gamma, included at the console's root (namespace `console:`)."""
from django.urls import path

from . import views

urlpatterns = [
    path("gamma/", views.GammaDashboardView.as_view(), name="gamma-dashboard"),
    path("dlq/", views.DeadLetterReviewView.as_view(), name="dlq"),
    path("dlq/bulk/", views.DeadLetterBulkView.as_view(), name="dlq-bulk"),
    path("dlq/operations/<int:run_id>/", views.OperationRunView.as_view(), name="dlq-operation"),
    path("dlq/<int:entry_id>/", views.DeadLetterDetailView.as_view(), name="dlq-entry"),
    path("dlq/<int:entry_id>/correct/", views.DeadLetterCorrectView.as_view(), name="dlq-entry-correct"),
    path("dlq/<int:entry_id>/<slug:action>/", views.DeadLetterActionView.as_view(), name="dlq-entry-action"),
    path("circuit-breakers/", views.BreakerBoardView.as_view(), name="breakers"),
    path("circuit-breakers/<slug:destination_id>/reset/", views.BreakerResetView.as_view(), name="breaker-reset"),
    path("destinations/<slug:destination_id>/", views.DestinationDetailView.as_view(), name="destination-detail"),
    path("destinations/<slug:destination_id>/test/", views.DestinationTestView.as_view(), name="destination-test"),
    path("destinations/<slug:destination_id>/test-delivery/", views.DestinationTestDeliveryView.as_view(),
         name="destination-test-delivery"),
]
