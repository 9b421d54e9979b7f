"""Incident fixtures: one person per group of the escalation matrix, an on-call rota, a fixed clock."""
from datetime import UTC, datetime

import pytest

from incidents.oncall import oncall_rota_set
from opsconsole import roles
from tests.conftest import make_user

# Monday 2025-01-06 10:00 UTC: inside business hours (Mon-Fri 09:00-17:00 UTC in these tests).
MONDAY_10 = datetime(2025, 1, 6, 10, 0, tzinfo=UTC)
ROTA_ANCHOR = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _incident_settings(settings):
    settings.TIME_ZONE = "UTC"
    settings.INCIDENT_BUSINESS_HOURS = {"days": "mon-fri", "start": "09:00", "end": "17:00", "time_zone": None,
                                        "holidays": []}
    settings.INCIDENT_WEBHOOK_URL = ""
    settings.INCIDENT_STAKEHOLDER_EMAILS = ["stakeholders@example.com"]
    settings.INCIDENT_NOTIFICATION_CHANNELS = ["console", "email", "webhook"]
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.CONSOLE_BASE_URL = "http://console.test"


class People(dict):
    def __getattr__(self, name):
        return self[name]


@pytest.fixture
def people(db) -> People:
    """One or two users per group, with email addresses (except `lead`, to exercise a skipped email)."""
    spec = {
        "ops1": roles.OPERATIONS_TEAM, "ops2": roles.OPERATIONS_TEAM, "lead": roles.OPERATIONS_LEAD,
        "oncall1": roles.ON_CALL_ENGINEER, "oncall2": roles.ON_CALL_ENGINEER, "senior": roles.SENIOR_ENGINEER,
        "manager": roles.ENGINEERING_MANAGER, "director": roles.DIRECTOR, "vp": roles.VP_CTO,
        "viewer1": roles.VIEWER, "cab": roles.CAB_MEMBER,
    }
    users = People()
    for name, group in spec.items():
        user = make_user(name, group)
        if name != "lead":
            user.email = f"{name}@example.com"
            user.save(update_fields=["email"])
        users[name] = user
    return users


@pytest.fixture
def rota(people):
    """oncall1 this week (from Monday 09:00), oncall2 next week."""
    return oncall_rota_set(actor=people.lead, name="primary", anchor=ROTA_ANCHOR, members=[people.oncall1, people.oncall2])
