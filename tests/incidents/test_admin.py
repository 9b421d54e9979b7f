"""Django admin: incidents are read-only there (services move them); rota edits are audited."""
import pytest
from django.contrib.auth.models import User
from django.test import Client

from incidents import services as s
from incidents.models import OnCallRota
from opsconsole.models import AuditEntry

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client_(db) -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    return client


def test_incidents_are_listed_and_read_only(admin_client_, people):
    incident = s.incident_declare(actor=people.ops1, severity="P2", summary="Seen in admin")
    listing = admin_client_.get("/admin/incidents/incident/")
    assert listing.status_code == 200 and incident.incident_id in listing.content.decode()
    assert "Add incident" not in listing.content.decode()
    page = admin_client_.get(f"/admin/incidents/incident/{incident.pk}/change/").content.decode()
    assert "Seen in admin" in page and 'name="summary"' not in page  # shown, not editable
    assert "Engaged On-call Engineer" in page  # the timeline inline
    assert admin_client_.get("/admin/incidents/incident/add/").status_code == 403
    for path in ("notification", "escalationtimer", "postincidentreview", "oncallrota", "oncalloverride"):
        assert admin_client_.get(f"/admin/incidents/{path}/").status_code == 200, path


def test_rota_edits_in_admin_are_audited(admin_client_, people):
    response = admin_client_.post("/admin/incidents/oncallrota/add/", {
        "name": "primary", "active": "on", "anchor_0": "2025-01-06", "anchor_1": "09:00:00", "shift_days": 7,
        "time_zone": "", "members-TOTAL_FORMS": 2, "members-INITIAL_FORMS": 0,
        "members-0-user": people.oncall1.pk, "members-0-position": 0,
        "members-1-user": people.oncall2.pk, "members-1-position": 1,
    })
    assert response.status_code == 302, response.content.decode()[:2000]
    rota = OnCallRota.objects.get()
    assert [m.user.username for m in rota.members.order_by("position")] == ["oncall1", "oncall2"]
    assert AuditEntry.objects.filter(action="oncall.rota_admin_members", details__members=["oncall1", "oncall2"]).exists()
