"""Incident API paths under /api/ (trailing slash optional)."""
from django.urls import path
from rest_framework.routers import SimpleRouter

from . import views

router = SimpleRouter()
router.trailing_slash = "/?"  # /api/incidents and /api/incidents/ both work (DRF coerces the argument to "/")
router.register("incidents", views.IncidentViewSet, basename="incident")
router.register("incident-action-items", views.ActionItemViewSet, basename="incident-action-item")
router.register("incident-notifications", views.NotificationViewSet, basename="incident-notification")
router.register("oncall/overrides", views.OnCallOverrideViewSet, basename="oncall-override")

urlpatterns = [
    path("oncall/now", views.OnCallNow.as_view(), name="oncall-now"),
    *router.urls,
]
