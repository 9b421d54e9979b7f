"""Console pages of Module Alpha (included from opsconsole.console_urls, namespace `console:`)."""
from django.urls import path

from . import views

urlpatterns = [
    path("alpha/", views.AlphaDashboardView.as_view(), name="alpha"),
    path("alpha/partials/panels/", views.AlphaDashboardPanelsView.as_view(), name="alpha-panels"),
    path("alpha/pause/", views.IngestionPauseView.as_view(), name="alpha-pause"),
    path("alpha/resume/", views.IngestionResumeView.as_view(), name="alpha-resume"),
    path("alpha/buffer/resize/", views.BufferResizeView.as_view(), name="alpha-buffer-resize"),
    path("sources/<slug:source_id>/test/", views.SourceTestView.as_view(), name="alpha-source-test"),
    path("sources/<slug:source_id>/poll/", views.SourcePollView.as_view(), name="alpha-source-poll"),
    path("sources/<slug:source_id>/pause/", views.SourcePauseView.as_view(), name="alpha-source-pause"),
    path("sources/<slug:source_id>/resume/", views.SourceResumeView.as_view(), name="alpha-source-resume"),
    path("sources/<slug:source_id>/drain/", views.SourceDrainView.as_view(), name="alpha-source-drain"),
]
