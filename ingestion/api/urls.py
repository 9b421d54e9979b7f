from django.urls import path

from .views import SourceRecordsPush

urlpatterns = [
    path("sources/<slug:source_id>/records", SourceRecordsPush.as_view(), name="source-records-push"),
]
