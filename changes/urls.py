"""Console pages of change management (included from opsconsole.console_urls, namespace console:)."""
from django.urls import path

from . import views

CHANGE_ID = "<str:change_id>"

urlpatterns = [
    path("", views.ChangeListView.as_view(), name="changes"),
    path("new/", views.ChangeFormView.as_view(), name="change-new"),
    path("emergency/", views.EmergencyDeclareView.as_view(), name="change-emergency"),
    path("calendar/", views.ChangeCalendarView.as_view(), name="change-calendar"),
    path("weekly-review/", views.WeeklyReviewView.as_view(), name="change-weekly-review"),
    path(f"{CHANGE_ID}/", views.ChangeDetailView.as_view(), name="change-detail"),
    path(f"{CHANGE_ID}/edit/", views.ChangeFormView.as_view(), name="change-edit"),
    path(f"{CHANGE_ID}/<slug:action>/", views.ChangeActionView.as_view(), name="change-action"),
]
