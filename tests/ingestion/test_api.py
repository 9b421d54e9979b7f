"""POST /api/sources/<id>/records: formats, limits, roles, bad input."""
import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from ingestion.models import Batch, Record
from opsconsole import roles
from tests.conftest import FILE_DESTINATION, PUSH_SOURCE, ROUTE_ALL_TO_ARCHIVE, client_for, make_user
from tests.pipeline.test_services import good_record

pytestmark = pytest.mark.django_db
URL = "/api/sources/api_source_1/records"


@pytest.fixture(autouse=True)
def config(apply_config):
    apply_config(sources=[PUSH_SOURCE, {**PUSH_SOURCE, "source_id": "csv_src", "parsing": {"format": "csv"},
                                        "validation": {"required_fields": ["id"]}}],
                 destinations=[FILE_DESTINATION], routes=[ROUTE_ALL_TO_ARCHIVE])


@pytest.fixture
def client(db):
    return client_for(make_user("pusher", roles.INGEST_CLIENT))


def test_push_json_array_answers_202_with_batch(client):
    response = client.post(URL, [good_record(1), good_record(2), {"id": 3}], format="json")
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["received"] == 3 and body["accepted"] == 2 and body["rejected"] == 1
    assert Batch.objects.get().id.hex == body["batch_id"].replace("-", "")


def test_push_json_lines(client):
    import orjson

    body = b"\n".join(orjson.dumps(good_record(i)) for i in range(3)) + b"\n"
    response = client.generic("POST", URL, body, content_type="application/x-ndjson")
    assert response.status_code == 202, response.content
    assert response.json()["accepted"] == 3


def test_push_csv(client):
    response = client.generic("POST", "/api/sources/csv_src/records", b"id,amount\n1,2\n3,4\n", content_type="text/csv")
    assert response.status_code == 202, response.content
    assert Record.objects.count() == 2


@pytest.mark.parametrize(
    "body, content_type, fragment",
    [
        (b"[{\"id\": 1,", "application/json", "malformed JSON"),
        (b"{\"id\": 1}\n{oops\n", "application/x-ndjson", "line 2"),
        (b"", "application/json", "Empty body"),
        (b"42", "application/json", "expected a JSON array or object"),
        (b"id,amount\n1,2,3\n", "text/csv", "has 3 fields, header has 2"),
    ],
)
def test_bad_bodies_get_a_clear_400_and_nothing_is_stored(client, body, content_type, fragment):
    url = "/api/sources/csv_src/records" if content_type == "text/csv" else URL
    response = client.generic("POST", url, body, content_type=content_type)
    assert response.status_code == 400
    assert fragment in response.json()["error"]
    assert Record.objects.count() == 0 and Batch.objects.count() == 0


def test_body_over_the_limit_is_413(client, settings):
    settings.INGEST_MAX_BODY_BYTES = 100
    response = client.post(URL, [good_record(i) for i in range(10)], format="json")
    assert response.status_code == 413
    assert "over the limit" in response.json()["error"]
    assert Record.objects.count() == 0


def test_unknown_source_is_404(client):
    response = client.post("/api/sources/nope/records", [good_record(1)], format="json")
    assert response.status_code == 404 and "Unknown source" in response.json()["error"]


def test_roles(viewer_client, operator_client):
    assert APIClient().post(URL, [good_record(1)], format="json").status_code in (401, 403)
    assert viewer_client.post(URL, [good_record(1)], format="json").status_code == 403
    assert operator_client.post(URL, [good_record(1)], format="json").status_code == 202
    bad_token = APIClient()
    bad_token.credentials(HTTP_AUTHORIZATION="Token not-a-token")
    assert bad_token.post(URL, [good_record(1)], format="json").status_code == 401


def test_bearer_token_and_reconciliation(client, viewer):
    from rest_framework.authtoken.models import Token

    client.post(URL, [good_record(1)], format="json")
    token = Token.objects.create(user=viewer)
    reader = APIClient()
    reader.credentials(HTTP_AUTHORIZATION=f"Bearer {token.key}")
    response = reader.get("/api/pipeline/reconciliation")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["sources"]["api_source_1"]["ingested"] == 1
    assert body["sources"]["api_source_1"]["in_flight"] == 1
    assert body["total"]["balanced"] is True
    assert User.objects.filter(username="pusher").exists()


def test_every_push_is_audited(client):
    from opsconsole.models import AuditEntry

    body = client.post(URL, [good_record(1), {"id": 2}], format="json").json()
    entry = AuditEntry.objects.get(action="records.push")
    assert entry.actor_name == "pusher" and entry.target == "source:api_source_1"
    assert entry.details == {"batch_ids": body["batch_ids"], "received": 2, "rejected": 1}
    with pytest.raises(RuntimeError):
        entry.save()  # append-only
    with pytest.raises(RuntimeError):
        entry.delete()
