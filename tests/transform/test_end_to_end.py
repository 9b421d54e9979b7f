"""Module Beta through a real Celery worker (queue beta): batches enriched from a CSV source through the
shared Redis cache, and a full cache refresh run as the background task transform.cache_refresh."""
import pytest

from ingestion.choices import RecordStatus
from ingestion.models import Record
from ingestion.services import records_ingest
from opsconsole import roles
from tests.conftest import FILE_DESTINATION, PUSH_SOURCE, ROUTE_ALL_TO_ARCHIVE, make_user, wait_for
from tests.pipeline.test_services import good_record
from transform.cache import cache_store
from transform.choices import RefreshState
from transform.models import CacheRefresh
from transform.services import cache_refresh_request

from .conftest import csv_source, enrich_rule

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_worker_enriches_batches_and_refreshes_the_cache(apply_beta, countries_csv, celery_worker_process):
    apply_beta(sources=[PUSH_SOURCE], rules=[enrich_rule("countries", "country", {"name": "country_name"})],
               enrichment=[csv_source(countries_csv)], destinations=[FILE_DESTINATION], routes=[ROUTE_ALL_TO_ARCHIVE])
    worker = celery_worker_process()
    records_ingest(source_id="api_source_1", origin="e2e",
                   records=[good_record(1, country="DE"), good_record(2, country="JP"), good_record(3)])

    def delivered():
        return Record.objects.filter(status=RecordStatus.DELIVERED).count() == 3

    wait_for(delivered, timeout=60, message="3 records delivered", on_fail=worker.log_tail)
    assert Record.objects.get(payload__id="r2").data["country_name"] == "Japan"
    store = cache_store()
    assert store.count("countries") == 2  # the worker filled the shared cache

    job = cache_refresh_request(actor=make_user("op", roles.OPERATIONS_TEAM), target="all")
    wait_for(lambda: CacheRefresh.objects.get(id=job.id).state == RefreshState.DONE, timeout=60,
             message="cache refresh done", on_fail=worker.log_tail)
    done = CacheRefresh.objects.get(id=job.id)
    assert (done.keys_done, done.keys_total, done.sources_done) == (3, 3, 1)
    assert store.count("countries") == 3
