"""Configuration API paths, including the manual's runbook paths (DESIGN.md §5)."""
from django.urls import path
from rest_framework.routers import SimpleRouter

from . import views

router = SimpleRouter(trailing_slash=False)
router.register("config/versions", views.ConfigVersionViewSet, basename="config-version")

_list = {"get": "list"}

urlpatterns = [
    path("alpha/admin/config/reload", views.ConfigReload.as_view(), name="alpha-config-reload"),
    path("beta/admin/config/reload", views.ConfigReload.as_view(), name="beta-config-reload"),
    path("gamma/admin/config/reload", views.ConfigReload.as_view(), name="gamma-config-reload"),
    path("config/reload", views.ConfigReload.as_view(), name="config-reload"),
    path("config/drift", views.ConfigDrift.as_view(), name="config-drift"),
    path("alpha/admin/sources", views.SourceViewSet.as_view(_list), name="alpha-sources"),
    path("beta/admin/rules", views.TransformRuleViewSet.as_view(_list), name="beta-rules"),
    path("gamma/admin/destinations", views.DestinationViewSet.as_view(_list), name="gamma-destinations"),
    path("gamma/admin/routing/rules", views.RoutingRuleViewSet.as_view(_list), name="gamma-routing-rules"),
    *router.urls,
]
