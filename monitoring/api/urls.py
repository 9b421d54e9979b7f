from django.urls import path

from .views import Reconciliation

urlpatterns = [
    path("pipeline/reconciliation", Reconciliation.as_view(), name="pipeline-reconciliation"),
]
