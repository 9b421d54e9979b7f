"""Console routes of incident response, included under /incidents/ in the console namespace."""
from django.urls import path

from . import views

INCIDENT = "<str:incident_id>"

urlpatterns = [
    path("", views.IncidentListView.as_view(), name="incidents"),
    path("declare/", views.IncidentDeclareView.as_view(), name="incident-declare"),
    path("on-call/", views.OnCallView.as_view(), name="oncall"),
    path("notifications/", views.NotificationListView.as_view(), name="incident-notifications"),
    path(f"{INCIDENT}/", views.IncidentDetailView.as_view(), name="incident-detail"),
    path(f"{INCIDENT}/actions/<slug:action>/", views.IncidentActionView.as_view(), name="incident-action"),
    path(f"{INCIDENT}/communications/<slug:kind>/", views.CommunicationSendView.as_view(), name="incident-communicate"),
    path(f"{INCIDENT}/review/", views.ReviewView.as_view(), name="incident-review"),
]
