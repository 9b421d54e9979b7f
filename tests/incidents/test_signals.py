"""Incidents opened from the pipeline's own signals: circuit breakers (one, several, all destinations)
and dead letter queue growth; one incident per condition, worsening recorded as impact expanded."""
import pytest
from django.utils import timezone

from delivery.breakers import breaker_get, breaker_record, breaker_reset
from incidents.choices import EscalationTrigger
from incidents.models import Incident
from incidents.pipeline_signals import DESTINATIONS_KEY, pipeline_signals_check
from incidents.services import signal_key_for_destination
from incidents.tasks import incidents_check_pipeline_signals
from tests.conftest import FILE_DESTINATION, PUSH_SOURCE

pytestmark = pytest.mark.django_db

ARCHIVE_2 = {**FILE_DESTINATION, "destination_id": "archive_two", "connection": {"type": "file", "path": "archive_two"}}
ARCHIVE_3 = {**FILE_DESTINATION, "destination_id": "archive_three", "connection": {"type": "file", "path": "archive_three"}}


@pytest.fixture
def destinations(apply_config, people):
    apply_config(sources=[PUSH_SOURCE], destinations=[FILE_DESTINATION, ARCHIVE_2, ARCHIVE_3])


def trip(destination_id: str) -> None:
    breaker_get(destination_id)
    for _ in range(5):  # the default failure_threshold: five consecutive failures open the breaker
        breaker_record(destination_id=destination_id, spec={}, ok=False, counted_failure=True,
                       error="connection refused", now=timezone.now())


def test_breakers_open_incidents_by_the_manuals_severity(destinations, people):
    assert pipeline_signals_check() == []
    trip("local_archive")
    [(single, created)] = pipeline_signals_check()
    assert created and single.severity == "P3" and single.signal_key == signal_key_for_destination("local_archive")
    assert single.summary == "Destination local_archive unavailable (circuit breaker OPEN)"
    assert set(single.components.values_list("kind", "identifier")) == {("module", "gamma"), ("destination", "local_archive")}
    assert "5 consecutive failures" in single.description and single.detection_source == "pipeline_signal"
    [(same, created)] = pipeline_signals_check()
    assert not created and same.pk == single.pk  # the condition persists: no second incident

    trip("archive_two")
    [(multiple, created)] = pipeline_signals_check()
    assert created and multiple.severity == "P2" and multiple.signal_key == DESTINATIONS_KEY
    trip("archive_three")
    [(everything, created)] = pipeline_signals_check()
    assert not created and everything.pk == multiple.pk and everything.severity == "P2"
    # All destinations down is a P1 condition: recorded on the open incident as impact expanded (once).
    assert everything.escalations.filter(trigger=EscalationTrigger.IMPACT_EXPANDED).count() == 1
    assert "now indicates P1" in everything.timeline.filter(kind="trigger").get().message
    pipeline_signals_check()
    assert everything.escalations.filter(trigger=EscalationTrigger.IMPACT_EXPANDED).count() == 1
    assert Incident.objects.count() == 2

    for destination_id in ("local_archive", "archive_two", "archive_three"):
        breaker_reset(actor=people.ops1, destination_id=destination_id, reason="recovered")
    assert pipeline_signals_check() == []  # recovery does not resolve: operators confirm the criteria


def test_all_destinations_down_at_once_is_p1(destinations):
    for destination_id in ("local_archive", "archive_two", "archive_three"):
        trip(destination_id)
    assert incidents_check_pipeline_signals() == [f"{Incident.objects.get().incident_id} (new)"]
    incident = Incident.objects.get()
    assert incident.severity == "P1" and incident.summary.startswith("All delivery destinations unavailable")


def test_dead_letter_queue_growth_opens_a_p3(apply_config, people):
    from ingestion.services import records_ingest
    from tests.conftest import PHONE_RULE, ROUTE_ALL_TO_ARCHIVE
    from tests.pipeline.test_services import good_record
    from transform.services import batch_transform

    # A phone number that is not a string fails the rule; on_failure: fail dead-letters the record.
    apply_config(sources=[PUSH_SOURCE], rules=[{**PHONE_RULE, "on_failure": "fail"}], destinations=[FILE_DESTINATION],
                 routes=[ROUTE_ALL_TO_ARCHIVE])
    batches = records_ingest(source_id="api_source_1", origin="signal-test",
                             records=[good_record(i, phone_number=5550000000 + i) for i in range(101)])
    for batch in batches:
        batch_transform(batch_id=str(batch.id))
    [(incident, created)] = pipeline_signals_check()
    assert created and incident.severity == "P3" and incident.signal_key == "gamma.dlq.growing"
    assert incident.summary == "Dead letter queue growing (101 entries in the last hour)"
    assert "(transform) 101" in incident.impact
