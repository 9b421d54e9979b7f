"""Shared fixtures: users with roles, API clients, a pipeline configuration written as YAML and
applied by the real reload service, a real Celery worker process, a scratch PostgreSQL database,
headless Chromium for browser tests."""
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
import yaml
from django.contrib.auth.models import Group, User
from django.db import connection
from playwright.sync_api import expect, sync_playwright
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from opsconsole import roles

ROOT = Path(__file__).resolve().parent.parent

# Playwright's sync API runs an event loop in the test thread; the ORM calls of browser tests stay synchronous.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


@pytest.fixture(autouse=True)
def _output_dir(tmp_path, settings):
    settings.PIPELINE_OUTPUT_DIR = str(tmp_path / "output")
    from configuration.runtime import runtime_reset

    runtime_reset()
    yield
    runtime_reset()


def make_user(username: str, *groups: str) -> User:
    user = User.objects.create_user(username=username, password="pw-" + username)
    for name in groups:
        # get_or_create: transactional tests flush the groups the migration created.
        user.groups.add(Group.objects.get_or_create(name=name)[0])
    return user


@pytest.fixture
def operator(db):
    return make_user("oper", roles.OPERATIONS_TEAM)


@pytest.fixture
def viewer(db):
    return make_user("viewer", roles.VIEWER)


def client_for(user) -> APIClient:
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def operator_client(operator):
    return client_for(operator)


@pytest.fixture
def viewer_client(viewer):
    return client_for(viewer)


def write_config(root: Path, *, sources=(), rules=(), scoring=None, destinations=(), routes=(), schemas=None) -> Path:
    """Write a pipeline configuration tree (DESIGN.md §4) and return its root."""
    schemas = {"api_source_1.json": SCHEMA} if schemas is None else schemas
    layout = {
        "alpha/sources": (sources, "source_id"),
        "beta/transforms/rules": (rules, "rule_id"),
        "gamma/destinations": (destinations, "destination_id"),
        "gamma/routing/rules": (routes, "rule_id"),
    }
    for folder, (items, key) in layout.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        for item in items:
            (root / folder / f"{item[key]}.yaml").write_text(yaml.safe_dump(item, sort_keys=False))
    (root / "beta/quality").mkdir(parents=True, exist_ok=True)
    (root / "beta/quality/scoring.yaml").write_text(yaml.safe_dump(scoring or DEFAULT_SCORING, sort_keys=False))
    for name, schema in schemas.items():
        (root / "alpha/schemas").mkdir(parents=True, exist_ok=True)
        (root / "alpha/schemas" / name).write_text(json.dumps(schema))
    return root


DEFAULT_SCORING = {
    "quality_scoring": {
        "weights": {"completeness": 0.30, "consistency": 0.25, "conformance": 0.25, "timeliness": 0.20},
        "thresholds": {"warn": 0.7, "error": 0.5, "reject": 0.3},
        "rules": {
            "completeness": {"required_fields": ["customer_id", "transaction_date", "amount"], "penalty_per_missing": 0.2},
            "timeliness": {"max_age_hours": 24, "penalty_per_hour": 0.01},
        },
    }
}

PUSH_SOURCE = {
    "source_id": "api_source_1",
    "source_type": "http_push",
    "enabled": True,
    "parsing": {"format": "json", "timestamp_field": "timestamp"},
    "validation": {"required_fields": ["id", "timestamp", "payload"], "schema_ref": "schemas/api_source_1.json"},
}

SCHEMA = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "required": ["id", "timestamp", "payload"],
    "properties": {"id": {"type": "string"}, "timestamp": {"type": "string"}, "payload": {"type": "object"}},
}

PHONE_RULE = {
    "rule_id": "TRX_042_NORMALIZE_PHONE",
    "name": "Normalize Phone Numbers",
    "description": "Standardize phone numbers to E.164 format",
    "enabled": True,
    "priority": 500,
    "match": {"field": "phone_number", "condition": "exists"},
    "transform": {
        "type": "regex_replace",
        "config": {
            "pattern": "^\\+?1?[\\s.-]?\\(?([0-9]{3})\\)?[\\s.-]?([0-9]{3})[\\s.-]?([0-9]{4})$",
            "replacement": "+1$1$2$3",
        },
    },
    "on_failure": "skip",
}

FILE_DESTINATION = {
    "destination_id": "local_archive",
    "destination_type": "file",
    "enabled": True,
    "connection": {"type": "file", "path": "local_archive"},
    "delivery": {"batch_size": 1000, "timeout_ms": 5000, "retry_count": 3, "retry_delay_ms": 200},
    "format": {"type": "jsonl"},
    "authorization": {"data_classification": "internal", "allowed_sources": ["api_source_1"]},
}

ROUTE_ALL_TO_ARCHIVE = {
    "rule_id": "ROUTE_TO_ARCHIVE", "enabled": True, "priority": 200,
    "match": {"quality_score": {"gte": 0.0}}, "destination": "local_archive",
}


def postgres_destination(database: str, table: str = "pipeline_events", *, port: int = 5432, retry_count: int = 3) -> dict:
    return {
        "destination_id": "analytics_warehouse",
        "destination_type": "database",
        "enabled": True,
        "connection": {
            "type": "postgresql", "host": "127.0.0.1", "port": port, "database": database,
            "username_ref": "env:TEST_WAREHOUSE_USER", "password_ref": "env:TEST_WAREHOUSE_PASSWORD",
            "ssl_mode": "disable", "pool_size": 2,
        },
        "delivery": {"batch_size": 500, "timeout_ms": 3000, "retry_count": retry_count, "retry_delay_ms": 100},
        "format": {
            "type": "insert", "table": table,
            "column_mapping": {"record_id": "event_id", "timestamp": "event_timestamp", "payload": "event_data"},
        },
        "authorization": {"data_classification": "internal", "allowed_sources": ["api_source_1"]},
    }


ROUTE_TO_ANALYTICS = {
    "rule_id": "ROUTE_TO_ANALYTICS", "enabled": True, "priority": 100,
    "match": {"source_id": {"in": ["api_source_1"]}, "quality_score": {"gte": 0.7}},
    "destination": "analytics_warehouse",
}


@pytest.fixture
def apply_config(tmp_path):
    """Write a configuration tree and apply it with the real reload service."""
    counter = {"n": 0}

    def apply(**parts):
        from configuration.services import config_reload

        counter["n"] += 1
        root = write_config(tmp_path / f"config{counter['n']}", **parts)
        return config_reload(actor=None, config_dir=str(root))

    return apply


@pytest.fixture
def warehouse(db):
    """A scratch PostgreSQL database with the destination table of Runbook C.1 (named after the test
    database, so parallel runs on one server do not share it)."""
    from django.db import connection

    os.environ.setdefault("TEST_WAREHOUSE_USER", "postgres")
    os.environ.setdefault("TEST_WAREHOUSE_PASSWORD", "unused-with-trust-auth")
    name = f"{connection.settings_dict['NAME']}_warehouse"
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    with psycopg.connect(f"postgresql://postgres@127.0.0.1:5432/{name}", autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE pipeline_events (event_id text PRIMARY KEY, event_timestamp text, event_data jsonb NOT NULL)"
        )
    yield name
    from delivery.destinations import postgresql as pg_destination

    for conn in list(pg_destination._connections.values()):
        conn.close()
    pg_destination._connections.clear()


def warehouse_rows(name: str) -> list[tuple]:
    with psycopg.connect(f"postgresql://postgres@127.0.0.1:5432/{name}") as conn:
        return conn.execute("SELECT event_id, event_data FROM pipeline_events").fetchall()


class WorkerProcess:
    """A real `celery worker -B` process on the test database and broker."""

    def __init__(self, env: dict, log: Path):
        self.env = env
        self.log = log
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        handle = open(self.log, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "opsconsole", "worker", "-B", "-Q", "alpha,beta,gamma,ops",
             "-c", "2", "--without-gossip", "--without-mingle", "-l", "warning",
             "-s", str(self.log.parent / "celerybeat-schedule")],
            cwd=ROOT, env=self.env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True,
        )

    def kill(self) -> None:
        """SIGKILL the worker and its pool children at once (what a crashed machine does)."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""


@pytest.fixture
def celery_worker_process(transactional_db, tmp_path, settings):
    """Start workers on demand with the test's database and a flushed Redis database."""
    import redis
    from django.db import connection

    broker = settings.CELERY_BROKER_URL
    if broker.startswith("redis://"):
        redis.Redis.from_url(broker).flushdb()
    db = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "opsconsole.settings.test",
        "DATABASE_URL": f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        "PIPELINE_OUTPUT_DIR": settings.PIPELINE_OUTPUT_DIR,
        "PIPELINE_STUCK_AFTER_SECONDS": "5",
        "PIPELINE_SWEEP_INTERVAL_SECONDS": "2",
        "FILE_SOURCE_SCAN_SECONDS": "1",
        "OPSCONSOLE_VAR_DIR": str(tmp_path / "worker-var"),
    }
    workers: list[WorkerProcess] = []

    def start() -> WorkerProcess:
        worker = WorkerProcess(env, tmp_path / f"worker{len(workers)}.log")
        worker.start()
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()


def wait_for(predicate, *, timeout: float, interval: float = 0.5, message: str = "condition", on_fail=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    detail = on_fail() if on_fail else ""
    raise AssertionError(f"timed out after {timeout}s waiting for {message}\n{detail}")


@pytest.fixture
def browser():
    """Headless Chromium. Request it after the fixtures that prepare data without it: it starts when it is
    set up. Under Playwright's running event loop Django gives this thread a second connection; it is closed
    here, or the test database cannot be dropped afterwards."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
            connection.close()


def log_in(page, base_url: str, username: str, path: str = "/") -> None:
    """Open `path` logged out, check it sends the browser to the login form, log in as a `make_user` user and
    wait until the console has brought the browser back to `path`."""
    page.goto(base_url + path)
    expect(page).to_have_url(re.compile(r"/login/\?next=" + re.escape(path) + "$"))
    page.fill("#id_username", username)
    page.fill("#id_password", "pw-" + username)
    page.click("button[type=submit]")
    expect(page).to_have_url(base_url + path)
