"""Module Beta runbook paths (http://beta:8080/<path> of the manual is /api/beta/<path>)."""
from django.urls import path

from . import views

urlpatterns = [
    path("beta/admin/cache/status", views.CacheStatus.as_view(), name="beta-cache-status"),
    path("beta/admin/cache/stats", views.CacheStats.as_view(), name="beta-cache-stats"),
    path("beta/admin/cache/refresh/<str:target>", views.CacheRefresh.as_view(), name="beta-cache-refresh"),
    path("beta/admin/cache/export", views.CacheExport.as_view(), name="beta-cache-export"),
    path("beta/admin/cache/import", views.CacheImport.as_view(), name="beta-cache-import"),
    path("<str:module>/admin/cache/clear", views.CacheClear.as_view(), name="module-cache-clear"),
    path("beta/admin/quality/stats", views.QualityStats.as_view(), name="beta-quality-stats"),
    path("beta/admin/quality/distribution", views.QualityDistribution.as_view(), name="beta-quality-distribution"),
    path("beta/admin/quality/low-scores", views.QualityLowScores.as_view(), name="beta-quality-low-scores"),
    path("beta/admin/quality/dimensions", views.QualityDimensions.as_view(), name="beta-quality-dimensions"),
    path("beta/admin/drain", views.Drain.as_view(), name="beta-drain"),
    path("beta/admin/resume", views.Resume.as_view(), name="beta-resume"),
    path("beta/admin/queues/depth", views.QueueDepth.as_view(), name="beta-queue-depth"),
    path("beta/admin/rules/test", views.RuleTest.as_view(), name="beta-rule-test"),
    path("beta/metrics", views.BetaMetrics.as_view(), name="beta-metrics"),
]
