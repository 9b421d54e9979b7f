"""Every URL refuses anonymous callers; every task has a queue; migrations are in step."""
import io

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

# The login page must be reachable to log in; static files are served by whitenoise, not the URL conf.
PUBLIC = {"login/", "logout/", "admin/login/", "admin/logout/"}


def walk(patterns, prefix=""):
    for entry in patterns:
        if isinstance(entry, URLResolver):
            yield from walk(entry.url_patterns, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern)


def concrete(route: str) -> str:
    """Fill converters and regex groups with plausible values."""
    import re

    route = re.sub(r"<uuid:[^>]+>", "00000000-0000-0000-0000-000000000000", route)
    route = re.sub(r"<int:[^>]+>", "1", route)
    route = re.sub(r"<[^>]+>", "x", route)
    route = route.replace("^", "").replace("$", "").replace("\\Z", "").replace("\\", "")
    route = re.sub(r"\(\?P<[^>]+>[^)]*\)", "1", route)
    route = re.sub(r"\([^)]*\)", "", route).replace("?", "")
    return "/" + route


@pytest.mark.django_db
def test_every_url_refuses_anonymous():
    routes = sorted(set(walk(get_resolver().url_patterns)))
    assert len(routes) > 10
    client = Client()
    open_doors = []
    for route in routes:
        if route in PUBLIC:
            continue
        url = concrete(route)
        for method in ("get", "post"):
            response = getattr(client, method)(url)
            if response.status_code in (401, 403, 404, 405):
                continue
            if response.status_code == 302 and ("/login/" in response["Location"] or "login" in response["Location"]):
                continue
            open_doors.append((method.upper(), url, response.status_code))
    assert open_doors == [], "\n".join(map(str, open_doors))


def test_every_task_has_a_queue_route(settings):
    """An unrouted task would silently land on the default queue: the explicit map must name it."""
    from celery.app.routes import MapRoute

    from opsconsole.celery import app

    app.loader.import_default_modules()
    routes = MapRoute(settings.CELERY_TASK_ROUTES)
    names = sorted(n for n in app.tasks if not n.startswith("celery."))
    assert "delivery.deliver_batch" in names and "ops.sweep_stuck_batches" in names
    unrouted = [n for n in names if (routes(n) or {}).get("queue") not in ("alpha", "beta", "gamma", "ops")]
    assert unrouted == []


@pytest.mark.django_db
def test_migrations_are_in_step_with_models():
    out = io.StringIO()
    call_command("makemigrations", "--check", "--dry-run", stdout=out)
