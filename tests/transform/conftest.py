"""Beta fixtures: a clean enrichment cache in the real Redis, a scratch PostgreSQL reference table, a
real HTTP lookup server on 127.0.0.1 that can turn slow, garbled or down, and a CSV file."""
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg
import pytest
from hypothesis import settings as hypothesis_settings

from transform.cache import PREFIX, cache_store

# No example database on disk (nothing to clean up in the work tree), no wall-clock deadline on a busy CI.
hypothesis_settings.register_profile("opsconsole", database=None, deadline=None)
hypothesis_settings.load_profile("opsconsole")

CUSTOMERS = {
    "C1": {"customer_id": "C1", "segment": "retail", "region": "EU", "tier": 1},
    "C2": {"customer_id": "C2", "segment": "wholesale", "region": "US", "tier": 2},
    "C3": {"customer_id": "C3", "segment": "retail", "region": "APAC", "tier": 3},
}


@pytest.fixture(autouse=True)
def clean_cache(settings):
    """Every test starts with an empty enrichment cache (only the Beta keys of the test's Redis db)."""
    store = cache_store()
    if store.backend == "redis":
        keys = list(store.client.scan_iter(match=f"{PREFIX}:*", count=1000))
        if keys:
            store.client.delete(*keys)
    else:
        store.clear()
    yield store


@pytest.fixture
def reference_db(db):
    """A scratch database with a customers table, named after the test database (parallel runs differ)."""
    import os

    from django.db import connection

    os.environ.setdefault("TEST_REF_USER", "postgres")
    name = f"{connection.settings_dict['NAME']}_reference"
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    with psycopg.connect(f"postgresql://postgres@127.0.0.1:5432/{name}", autocommit=True) as conn:
        conn.execute("CREATE TABLE customers (customer_id text PRIMARY KEY, segment text, region text, tier int, "
                     "since date)")
        for row in CUSTOMERS.values():
            conn.execute("INSERT INTO customers VALUES (%s, %s, %s, %s, '2020-02-03')",
                         [row["customer_id"], row["segment"], row["region"], row["tier"]])
    yield name
    from configuration.runtime import runtime_reset

    runtime_reset()


def reference_execute(name: str, sql: str, params=None) -> None:
    with psycopg.connect(f"postgresql://postgres@127.0.0.1:5432/{name}", autocommit=True) as conn:
        conn.execute(sql, params)


def postgres_source(database: str, **overrides) -> dict:
    spec = {
        "enrichment_id": "customer_db",
        "type": "postgresql",
        "enabled": True,
        "connection": {"host": "127.0.0.1", "port": 5432, "database": database, "username_ref": "env:TEST_REF_USER",
                       "ssl_mode": "disable", "timeout_ms": 2000},
        "lookup": {"table": "customers", "key_column": "customer_id", "fields": ["segment", "region", "tier", "since"]},
        "cache": {"ttl_seconds": 3600, "max_entries": 1000, "stale_fallback": True},
    }
    spec.update(overrides)
    return spec


class LookupServer:
    """GET /customers/<key> answers JSON from CUSTOMERS (404 when unknown). `mode` switches behaviour:
    ok, slow (sleeps past the client's timeout), garbage (not JSON), error (HTTP 500)."""

    def __init__(self):
        self.mode = "ok"
        self.requests = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests += 1
                key = self.path.rsplit("/", 1)[-1]
                if server.mode == "slow":
                    time.sleep(1.5)
                if server.mode == "garbage":
                    body, status = b"<html>oops</html>", 200
                elif server.mode == "error":
                    body, status = b'{"error": "boom"}', 500
                elif key in CUSTOMERS:
                    body, status = json.dumps({"data": CUSTOMERS[key]}).encode(), 200
                else:
                    body, status = b'{"error": "not found"}', 404
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.up = True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/customers/{{key}}"

    def stop(self) -> None:
        if self.up:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.up = False


@pytest.fixture
def lookup_server():
    server = LookupServer()
    yield server
    server.stop()


def http_source(url: str, **overrides) -> dict:
    spec = {
        "enrichment_id": "customer_api",
        "type": "http",
        "enabled": True,
        "connection": {"url": url, "timeout_ms": 500},
        "lookup": {"record_path": "data", "fields": ["segment", "region"]},
        "cache": {"ttl_seconds": 60, "max_entries": 100, "stale_fallback": True},
    }
    spec.update(overrides)
    return spec


@pytest.fixture
def countries_csv(tmp_path):
    path = tmp_path / "countries.csv"
    path.write_text("code,name,region\nDE,Germany,EU\nUS,United States,NA\nJP,Japan,APAC\n", encoding="utf-8")
    return path


def csv_source(path, **overrides) -> dict:
    spec = {
        "enrichment_id": "countries",
        "type": "csv",
        "enabled": True,
        "connection": {"path": str(path)},
        "lookup": {"key_column": "code", "fields": ["name", "region"]},
        "cache": {"ttl_seconds": 600, "max_entries": 100},
    }
    spec.update(overrides)
    return spec


def enrich_rule(source: str, key_field: str, fields, *, rule_id: str = "ENRICH", target: str | None = None,
                on_failure: str = "skip", **config) -> dict:
    cfg = {"source": source, "key_field": key_field, "fields": fields, **config}
    if target:
        cfg["target"] = target
    return {"rule_id": rule_id, "enabled": True, "priority": 100,
            "match": {"field": key_field, "condition": "exists"},
            "transform": {"type": "enrich", "config": cfg}, "on_failure": on_failure}


@pytest.fixture
def apply_beta(tmp_path):
    """Write a configuration tree with enrichment sources too, and apply it with the real reload service."""
    import yaml

    from configuration.services import config_reload
    from tests.conftest import write_config

    counter = {"n": 0}

    def apply(*, enrichment=(), **parts):
        counter["n"] += 1
        root = write_config(tmp_path / f"beta-config{counter['n']}", **parts)
        (root / "beta/enrichment").mkdir(parents=True, exist_ok=True)
        for spec in enrichment:
            (root / "beta/enrichment" / f"{spec['enrichment_id']}.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
        return config_reload(actor=None, config_dir=str(root))

    return apply
