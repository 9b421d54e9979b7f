from celery import shared_task

from .files import file_source_scan
from .models import Source
from .polling import source_poll
from .services import buffer_sample


@shared_task(name="ingestion.scan_file_sources")
def scan_file_sources() -> dict:
    results = {}
    for source_id in Source.objects.filter(source_type="file", enabled=True).values_list("source_id", flat=True):
        results[source_id] = file_source_scan(source_id=source_id)
    return results


@shared_task(name="ingestion.poll_source")
def poll_source(source_id: str) -> dict:
    """One poll of a rest_api source (beat sends one per source every polling.interval_seconds)."""
    return source_poll(source_id=source_id).as_dict()


@shared_task(name="ingestion.sample_buffer")
def sample_buffer() -> dict:
    """The buffer's fill for the Alpha dashboard; also notes back-pressure level changes as Beta drains."""
    status = buffer_sample()
    return {"buffered": status["buffered"], "capacity": status["capacity"], "level": status["level"]}
