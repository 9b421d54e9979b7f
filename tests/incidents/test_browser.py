"""Headless Chromium against a real server: an operator declares an incident and starts investigating it."""
import re

import pytest
from playwright.sync_api import expect

from incidents.models import Incident
from opsconsole import roles
from tests.conftest import log_in, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_operator_declares_an_incident_and_starts_investigating(live_server, browser):
    make_user("inc-operator", roles.OPERATIONS_TEAM)
    page = browser.new_page()
    log_in(page, live_server.url, "inc-operator", "/incidents/")
    expect(page.locator("h1")).to_have_text("Incidents")

    page.click("text=Declare an incident")
    expect(page.locator("h1")).to_have_text("Declare an incident")
    expect(page.locator("#declare-form")).to_contain_text("Complete cessation of pipeline processing")
    page.check("input[name=severity][value=P2]")
    page.fill("#id_summary", "Beta transformation backlog")
    page.fill("#id_impact", "End-to-end latency above SLA")
    page.select_option("#id_detection_source", "monitoring_alert")
    page.select_option("#id_components", ["module:beta"])
    page.click("#declare-form button[type=submit]")

    expect(page).to_have_url(re.compile(r"/incidents/INC-\d{8}-\d{4}/$"))
    expect(page.locator("#incident-status")).to_have_text("Open")
    expect(page.locator("#incident-severity")).to_have_text("P2")
    expect(page.locator("#timeline")).to_contain_text("Declared P2 - High: Beta transformation backlog")
    expect(page.locator("#action-resolve")).to_have_count(0)  # only the allowed transitions are offered

    page.fill("#id_note", "Looking at the Beta queue")
    page.click("#action-investigate")
    expect(page.locator("#incident-status")).to_have_text("Investigating")
    expect(page.locator(".messages")).to_contain_text("Investigation started")
    expect(page.locator("#timeline")).to_contain_text("Status Open → Investigating: Looking at the Beta queue")
    expect(page.locator("#due-response")).to_contain_text("met")
    expect(page.locator("#action-mitigate")).to_have_count(1)
    incident = Incident.objects.get()
    assert incident.status == "investigating" and incident.acknowledged_at is not None
