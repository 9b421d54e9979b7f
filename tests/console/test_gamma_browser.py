"""The DLQ review page in headless Chromium against a real server: tick entries, click Replay, see the
outcome and the list refresh itself in place (htmx)."""
import pytest
from playwright.sync_api import expect

from delivery.models import DeadLetter
from tests.conftest import PUSH_SOURCE, log_in
from tests.delivery.conftest import ROUTE_TO_PARTNER, http_destination
from tests.delivery.http_sink import HttpSink
from tests.delivery.test_delivery_services import deliver, ingest

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def dead_entries(apply_config):
    """Three records dead-lettered by a 400 from a real HTTP destination (made before the browser starts)."""
    sink = HttpSink()
    apply_config(sources=[PUSH_SOURCE], destinations=[http_destination(sink.url)], routes=[ROUTE_TO_PARTNER])
    sink.fail(1, status=400)
    assert deliver(ingest(3)) == "dlq"
    yield sorted(DeadLetter.objects.values_list("id", flat=True))
    sink.close()


def test_operator_selects_entries_and_replays_them(live_server, dead_entries, operator_user, browser):
    first, second, third = dead_entries
    page = browser.new_page()
    log_in(page, live_server.url, "console-operator", "/dlq/")  # /dlq/ -> /login/?next=/dlq/ -> back on /dlq/
    expect(page.locator("#dlq-stat-size")).to_have_text("3")
    expect(page.locator("#dlq-table tbody tr")).to_have_count(3)

    page.check(f"input[name=entry_ids][value='{first}']")
    page.check(f"input[name=entry_ids][value='{second}']")
    page.fill("#bulk-reason", "partner fixed the schema")
    page.evaluate("window.notReloaded = true")
    page.click("#dlq-bulk button[value=replay]")

    expect(page.locator("#outcome-message")).to_have_text("Replayed 2.")
    # The list and the summary refresh themselves (dlq-changed), the page stays.
    expect(page.locator(f"#entry-{first} [data-state]")).to_have_text("Replayed")
    expect(page.locator(f"#entry-{second} [data-state]")).to_have_text("Replayed")
    expect(page.locator(f"#entry-{third} [data-state]")).to_have_text("New")
    expect(page.locator("#dlq-stat-size")).to_have_text("1")
    assert page.evaluate("window.notReloaded") is True

    # Replaying the same entries again is refused entry by entry, with the reason.
    page.check(f"input[name=entry_ids][value='{first}']")
    page.click("#dlq-bulk button[value=replay]")
    expect(page.locator("#outcome-refused")).to_contain_text(f"Entry {first}: entry is Replayed")
    assert list(DeadLetter.objects.order_by("id").values_list("state", flat=True)) == ["replayed", "replayed", "new"]
