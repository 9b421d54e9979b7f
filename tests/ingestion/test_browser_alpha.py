"""The Module Alpha dashboard in headless Chromium against a real server and a real upstream API:
an operator logs in, reads the health grid and charts, pauses a source and tests it with one click."""
import re

import pytest
from django.db import connection
from playwright.sync_api import expect

from ingestion.polling import source_poll
from opsconsole import roles
from tests.conftest import (
    FILE_DESTINATION,
    PUSH_SOURCE,
    ROUTE_ALL_TO_ARCHIVE,
    log_in,
    make_user,
)

from .conftest import rest_source
from .servers import make_record

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def polled_source(apply_config, source_api):
    """rest_src polled once (3 records) and an operator, made before the browser starts; this thread's
    connection is closed before Playwright's event loop runs."""
    source_api.add([make_record(i) for i in range(3)])
    apply_config(sources=[PUSH_SOURCE, rest_source(source_api)], destinations=[FILE_DESTINATION],
                 routes=[ROUTE_ALL_TO_ARCHIVE])
    source_poll(source_id="rest_src")
    make_user("alpha-operator", roles.OPERATIONS_TEAM)
    connection.close()


def test_operator_pauses_and_tests_a_source_from_the_dashboard(live_server, polled_source, browser):
    page = browser.new_page()
    log_in(page, live_server.url, "alpha-operator", "/alpha/")
    expect(page.locator("h1")).to_have_text("Module Alpha dashboard")
    cell = page.locator("#health-rest_src")
    expect(cell.locator("[data-field=health]")).to_have_text("HEALTHY")
    expect(cell).to_contain_text("3 records last minute")
    assert page.locator("#panel-rate svg.chart").count() == 1
    assert page.locator("#panel-buffer svg.chart").count() == 1
    assert page.evaluate("typeof htmx") == "object"

    cell.locator("button[data-action=pause]").click()
    expect(page.locator(".messages")).to_contain_text("Source rest_src paused.")
    expect(page.locator("#health-rest_src [data-field=status]")).to_have_text("paused")

    page.locator("#health-rest_src button[data-action=test]").click()
    expect(page.locator(".messages")).to_contain_text(re.compile(r"Test of rest_src: OK in [\d.]+ ms"))
    page.locator("#health-rest_src button[data-action=resume]").click()
    expect(page.locator("#health-rest_src [data-field=status]")).to_have_text("active")
