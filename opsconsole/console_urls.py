"""The operators' web console (login required everywhere but the login page)."""
from django.contrib.auth import views as auth_views
from django.urls import include, path

from . import console_views as views

app_name = "console"

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", views.OverviewView.as_view(), name="overview"),
    path("partials/overview/", views.OverviewPanelView.as_view(), name="overview-panel"),
    path("partials/status/", views.StatusBadgeView.as_view(), name="status-badge"),
    path("sources/", views.SourceListView.as_view(), name="sources"),
    path("sources/<slug:source_id>/", views.SourceDetailView.as_view(), name="source-detail"),
    path("validation-failures/", views.ValidationFailureListView.as_view(), name="validation-failures"),
    path("batches/", views.BatchListView.as_view(), name="batches"),
    path("batches/<uuid:batch_id>/", views.BatchDetailView.as_view(), name="batch-detail"),
    path("rules/", views.TransformRuleListView.as_view(), name="rules"),
    path("destinations/", views.DestinationListView.as_view(), name="destinations"),
    path("", include("delivery.urls")),  # Gamma: DLQ review, circuit breakers, destination pages, dashboard
    path("reconciliation/", views.ReconciliationView.as_view(), name="reconciliation"),
    path("config/versions/", views.ConfigVersionListView.as_view(), name="config-versions"),
    path("config/reload/", views.ConfigReloadView.as_view(), name="config-reload"),
    path("audit/", views.AuditLogView.as_view(), name="audit"),
    path("", include("ingestion.urls")),
    path("incidents/", include("incidents.urls")),
    path("changes/", include("changes.urls")),
    path("beta/", include("transform.urls")),
]
