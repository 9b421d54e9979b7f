"""Module Beta console pages, included from opsconsole.console_urls under beta/ (namespace console:beta)."""
from django.urls import path

from . import views

app_name = "beta"

urlpatterns = [
    path("", views.DashboardView.as_view(), name="dashboard"),
    path("partials/queue/", views.DashboardPanelView.as_view(), name="queue-panel"),
    path("drain/", views.DrainView.as_view(), name="drain"),
    path("quality/", views.QualityView.as_view(), name="quality"),
    path("tester/", views.RuleTesterView.as_view(), name="tester"),
    path("cache/", views.CacheView.as_view(), name="cache"),
    path("cache/action/", views.CacheActionView.as_view(), name="cache-action"),
    path("partials/refresh/", views.CacheRefreshPanelView.as_view(), name="refresh-panel"),
]
