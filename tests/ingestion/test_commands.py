import pytest
from django.core.management import call_command

from ingestion.models import Batch
from ingestion.services import records_ingest
from tests.conftest import FILE_DESTINATION, PUSH_SOURCE, ROUTE_ALL_TO_ARCHIVE
from tests.pipeline.test_services import good_record

pytestmark = pytest.mark.django_db


def test_reconcile_prints_balance_and_fails_when_records_are_missing(apply_config, capsys):
    apply_config(sources=[PUSH_SOURCE], destinations=[FILE_DESTINATION], routes=[ROUTE_ALL_TO_ARCHIVE])
    records_ingest(source_id="api_source_1", records=[good_record(1), {"id": 1}], origin="t")
    call_command("reconcile")
    out = capsys.readouterr().out
    assert "api_source_1" in out and "True" in out
    Batch.objects.update(received=3)  # a record the books say arrived but that is nowhere
    with pytest.raises(SystemExit) as exit_info:
        call_command("reconcile", "--json")
    assert exit_info.value.code == 1
    assert '"balanced": false' in capsys.readouterr().out
