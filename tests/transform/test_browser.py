"""Module Beta in headless Chromium: log in, test a rule in the console tester, read the quality histogram."""
import re

import pytest
from django.db import connection
from playwright.sync_api import expect

from opsconsole import roles
from tests.conftest import (
    FILE_DESTINATION,
    PHONE_RULE,
    PUSH_SOURCE,
    ROUTE_ALL_TO_ARCHIVE,
    log_in,
    make_user,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def beta_operator(apply_beta):
    """The phone rule applied and an operator, made before the browser starts; this thread's connection is
    closed before Playwright's event loop runs."""
    apply_beta(sources=[PUSH_SOURCE], rules=[PHONE_RULE], destinations=[FILE_DESTINATION], routes=[ROUTE_ALL_TO_ARCHIVE])
    make_user("beta-operator", roles.OPERATIONS_TEAM)
    connection.close()


def test_operator_tests_the_manual_phone_rule_in_the_console(live_server, beta_operator, browser):
    page = browser.new_page()
    log_in(page, live_server.url, "beta-operator", "/beta/tester/")
    expect(page.locator("h1")).to_have_text("Rule tester (Beta)")
    page.select_option("select[name=applied_rule]", "TRX_042_NORMALIZE_PHONE")
    page.fill("#samples_text", '[{"phone_number": "(555) 123-4567"}, {"phone_number": 42}, {"name": "x"}]')
    page.click("#run-test")
    expect(page.locator("#summary-records")).to_have_text("3")
    expect(page.locator("#summary-changed")).to_have_text("1")
    expect(page.locator("#summary-failed")).to_have_text("1")
    rows = page.locator("#tester-results tbody tr")
    expect(rows).to_have_count(3)
    expect(rows.nth(0)).to_contain_text("+15551234567")
    expect(rows.nth(1)).to_contain_text("is a number, not a string")

    page.click("text=Quality scores")
    expect(page.locator("h1")).to_have_text("Quality scores (Beta)")
    markers = page.locator("#quality-histogram svg line.threshold")
    expect(markers).to_have_count(3)
    assert sorted(markers.evaluate_all("els => els.map(e => e.dataset.name)")) == ["error", "reject", "warn"]
    page.click("text=Module Beta")
    expect(page.locator("#beta-intake")).to_have_text(re.compile("accepting"))
