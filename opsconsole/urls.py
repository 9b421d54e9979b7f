from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from monitoring import views as monitoring_views

api_patterns = [
    path("", include("ingestion.api.urls")),
    path("", include("monitoring.api.urls")),
    path("", include("configuration.api.urls")),
    path("", include("transform.api.urls")),
    path("", include("delivery.api.urls")),
    path("", include("changes.api.urls")),
    path("", include("incidents.api.urls")),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
]

urlpatterns = [
    path("api/", include(api_patterns)),
    path("metrics", monitoring_views.metrics, name="metrics"),
    path("healthz", monitoring_views.healthz, name="healthz"),
    path("readyz", monitoring_views.readyz, name="readyz"),
    path("admin/", admin.site.urls),
    path("", include("opsconsole.console_urls")),
]
