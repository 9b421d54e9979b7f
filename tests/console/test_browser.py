"""The console in headless Chromium against a real server: log in, read the overview, watch htmx refresh it."""
import re

import pytest
from django.db import connection
from playwright.sync_api import expect

from ingestion.services import records_ingest
from tests.conftest import log_in
from tests.pipeline.test_services import good_record

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def ingest(numbers: range) -> None:
    """Ingest records from the test. Under Playwright's running event loop Django treats this thread as
    async and gives it its own connection: close it, or the test database cannot be dropped afterwards."""
    try:
        records_ingest(source_id="api_source_1", origin="browser-test", records=[good_record(i) for i in numbers])
    finally:
        connection.close()


def test_login_then_overview_refreshes_itself(live_server, console_config, viewer_user, browser):
    ingest(range(3))
    page = browser.new_page()
    log_in(page, live_server.url, "console-viewer")  # "/" -> /login/?next=/ -> back on "/"

    expect(page.locator("h1")).to_have_text("Overview")
    expect(page.locator("#count-validated")).to_have_text("3")
    expect(page.locator("#pipeline-status")).to_have_text(re.compile("HEALTHY|DEGRADED|UNHEALTHY"))
    assert page.evaluate("typeof htmx") == "object"  # served by the app itself, no CDN
    page.evaluate("window.notReloaded = true")

    ingest(range(3, 5))
    expect(page.locator("#count-validated")).to_have_text("5", timeout=15_000)
    assert page.evaluate("window.notReloaded") is True  # the panel was swapped in place, the page stayed
