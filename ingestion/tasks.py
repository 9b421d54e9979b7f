from celery import shared_task

from .files import file_source_scan
from .models import Source


@shared_task(name="ingestion.scan_file_sources")
def scan_file_sources() -> dict:
    results = {}
    for source_id in Source.objects.filter(source_type="file", enabled=True).values_list("source_id", flat=True):
        results[source_id] = file_source_scan(source_id=source_id)
    return results
