"""The console in headless Chromium against a real server: log in, read the overview, watch htmx refresh it."""
import os
import re

import pytest
from django.db import connection
from playwright.sync_api import expect, sync_playwright

from ingestion.services import records_ingest
from tests.pipeline.test_services import good_record

# Playwright's sync API runs an event loop in this thread; the ORM calls of the test are still synchronous.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


@pytest.fixture
def browser():
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


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
    page.goto(live_server.url + "/")
    expect(page).to_have_url(re.compile(r"/login/\?next=/$"))

    page.fill("#id_username", "console-viewer")
    page.fill("#id_password", "pw-console-viewer")
    page.click("button[type=submit]")

    expect(page).to_have_url(live_server.url + "/")
    expect(page.locator("h1")).to_have_text("Overview")
    expect(page.locator("#count-validated")).to_have_text("3")
    expect(page.locator("#pipeline-status")).to_have_text(re.compile("HEALTHY|DEGRADED|UNHEALTHY"))
    assert page.evaluate("typeof htmx") == "object"  # served by the app itself, no CDN
    page.evaluate("window.notReloaded = true")

    ingest(range(3, 5))
    expect(page.locator("#count-validated")).to_have_text("5", timeout=15_000)
    assert page.evaluate("window.notReloaded") is True  # the panel was swapped in place, the page stayed

