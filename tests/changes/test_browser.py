"""Headless Chromium against a real server: an operator fills in the change request form and submits it."""
import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from changes.models import ChangeRequest
from opsconsole import roles
from tests.conftest import log_in, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_operator_submits_a_change_request(live_server, browser):
    make_user("chg-operator", roles.OPERATIONS_TEAM)
    start = timezone.localtime(timezone.now() + timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
    fmt = "%Y-%m-%dT%H:%M"
    page = browser.new_page()
    log_in(page, live_server.url, "chg-operator", "/changes/")
    expect(page.locator("h1")).to_have_text("Change requests")

    page.click("#new-change")
    expect(page.locator("h1")).to_have_text("New change request")
    page.fill("#id_title", "Raise Beta enrichment cache size")
    page.select_option("#id_change_type", "normal")
    page.select_option("#id_priority", "medium")
    page.fill("#id_description", "Enrichment cache from 50k to 100k entries.")
    page.fill("#id_business_justification", "Hit rate fell below 80%.")
    page.fill("#id_technical_details", "beta/enrichment/customers.yaml cache.max_entries")
    page.fill("#id_affected_systems", "enrichment:customers\nbeta")
    page.select_option("#id_impact", "low")
    page.select_option("#id_likelihood", "low")
    page.fill("#id_risk_assessment", "Memory +200 MB per worker; within limits.")
    page.fill("#id_testing_performed", "Staging soak for 24 h.")
    page.fill("#id_implementation_plan", "Edit YAML, reload, watch beta_enrichment_cache_hit_rate.")
    page.fill("#id_rollback_plan", "Revert YAML, reload.")
    page.fill("#id_scheduled_start", start.strftime(fmt))
    page.fill("#id_scheduled_end", (start + timedelta(hours=1)).strftime(fmt))
    page.click("#save-submit")

    expect(page).to_have_url(re.compile(r"/changes/CHG-\d{4}-\d{4}-\d{3}/$"))
    expect(page.locator("#change-status")).to_have_text("Submitted")
    expect(page.locator(".messages")).to_contain_text("submitted")
    expect(page.locator("#timeline")).to_contain_text("Draft → Submitted")
    expect(page.locator("#action-cancel")).to_be_visible()
    change = ChangeRequest.objects.get()
    assert change.status == "submitted" and change.risk_level == "low"
    assert change.affected_systems == ["enrichment:customers", "module:beta"]
    assert timezone.localtime(change.scheduled_start) == start
