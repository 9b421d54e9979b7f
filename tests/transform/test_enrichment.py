"""Enrichment against real sources (PostgreSQL table and query, a local HTTP server, a CSV file) through
the real cache (Redis; the in-process store for embedded mode): TTL, capacity, stale fallback."""
import time

import pytest

from transform.cache import LocalStore, cache_store
from transform.engine import RuleSet
from transform.enrichment import EnrichmentRegistry, enrichment_source_check

from .conftest import csv_source, enrich_rule, http_source, postgres_source, reference_execute

pytestmark = pytest.mark.django_db


def lookup_all(registry, source, keys):
    batch = registry.lookup(source, keys)
    return {k: (r.row, r.error, r.stale) for k, r in batch.results.items()}, batch.stats


def test_postgresql_table_enrichment_merges_selected_fields(reference_db):
    registry = EnrichmentRegistry([postgres_source(reference_db)])
    rules = RuleSet([enrich_rule("customer_db", "customer_id", ["segment", "tier", "since"], target="customer")],
                    enrichment=registry)
    result = rules.apply_batch([{"customer_id": "C1"}, {"customer_id": "C2"}, {"customer_id": "C9"}, {"other": 1},
                                {"customer_id": "C1"}])
    data = [o.data for o in result.outcomes]
    assert data[0] == {"customer_id": "C1", "customer": {"segment": "retail", "tier": 1, "since": "2020-02-03"}}
    assert data[1]["customer"]["segment"] == "wholesale"
    assert data[2] == {"customer_id": "C9"}  # not in the table, on_missing: ignore
    assert data[3] == {"other": 1}
    stats = result.enrichment["customer_db"]
    assert (stats.lookups, stats.miss, stats.hit) == (4, 4, 0)  # one query for the batch, C1 fetched once
    again = rules.apply_batch([{"customer_id": "C1"}, {"customer_id": "C9"}])
    assert again.enrichment["customer_db"].hit == 2  # found and not-found answers are both cached
    assert cache_store().count("customer_db") == 3
    # The same table through a query, with integer keys.
    spec = postgres_source(reference_db, enrichment_id="tiers", lookup={
        "query": "SELECT tier, region FROM customers WHERE tier = ANY(%(keys)s)", "key_column": "tier",
        "key_type": "int"})
    answers, _ = lookup_all(EnrichmentRegistry([spec]), "tiers", ["2", "7", "x"])
    assert answers["2"] == ({"tier": 2, "region": "US"}, None, False)
    assert answers["7"] == (None, None, False) and answers["x"] == (None, None, False)


def test_postgresql_source_down_uses_stale_entries_then_recovers(reference_db):
    spec = postgres_source(reference_db, cache={"ttl_seconds": 1, "stale_fallback": True, "max_entries": 100})
    registry = EnrichmentRegistry([spec])
    store = cache_store()
    answers, _ = lookup_all(registry, "customer_db", ["C1"])
    assert answers["C1"][0]["segment"] == "retail"
    store.put_many("customer_db", {"C1": {"segment": "retail-old"}}, now=1.0, max_entries=100, keep_seconds=10**10,
                   times={"C1": time.time() - 10})  # past its 1 s TTL
    reference_execute(reference_db, "ALTER TABLE customers RENAME TO customers_gone")  # the source now fails
    registry.sources["customer_db"].fetcher.close()
    answers, stats = lookup_all(registry, "customer_db", ["C1", "C2"])
    assert answers["C1"] == ({"segment": "retail-old"}, None, True)  # stale fallback observed
    assert answers["C2"][0] is None and "query failed" in answers["C2"][1]
    assert (stats.stale, stats.error) == (1, 1)
    reference_execute(reference_db, "ALTER TABLE customers_gone RENAME TO customers")
    answers, stats = lookup_all(registry, "customer_db", ["C2"])
    assert answers["C2"][0]["segment"] == "wholesale" and stats.miss == 1


def test_http_source_enriches_and_falls_back_to_stale_when_the_server_goes_down(lookup_server):
    spec = http_source(lookup_server.url, cache={"ttl_seconds": 60, "stale_fallback": True, "max_entries": 100})
    registry = EnrichmentRegistry([spec])
    rules = RuleSet([enrich_rule("customer_api", "cid", {"segment": "segment", "region": "geo.region"},
                                 on_failure="skip")], enrichment=registry)
    first = rules.apply_batch([{"cid": "C1"}, {"cid": "C3"}, {"cid": "C404"}])
    assert first.outcomes[0].data == {"cid": "C1", "segment": "retail", "geo": {"region": "EU"}}
    assert first.outcomes[2].data == {"cid": "C404"}
    assert lookup_server.requests == 3
    # Entries age past their TTL (as if an hour went by), then the server goes down.
    store = cache_store()
    entries = dict(store.items("customer_api"))
    store.put_many("customer_api", {k: e.value for k, e in entries.items()}, now=1.0, max_entries=100,
                   keep_seconds=10**10, times={k: e.fetched_at - 3600 for k, e in entries.items()})
    lookup_server.stop()
    down = rules.apply_batch([{"cid": "C1"}, {"cid": "C2"}])
    assert down.outcomes[0].data["segment"] == "retail"  # served stale
    assert down.outcomes[1].data == {"cid": "C2"}  # skip: kept as it was, the failure counted
    stats = down.enrichment["customer_api"]
    assert (stats.stale, stats.error) == (1, 1)
    assert "enrichment source 'customer_api' failed for key 'C2'" in down.outcomes[1].failures[0].reason


@pytest.mark.parametrize("mode,reason", [("slow", "timed out after 0.5 s"), ("garbage", "answer is not JSON"),
                                         ("error", "answered HTTP 500")])
def test_http_source_slow_or_garbage_is_an_error_per_key_not_a_crash(lookup_server, mode, reason):
    lookup_server.mode = mode
    registry = EnrichmentRegistry([http_source(lookup_server.url)])
    rules = RuleSet([enrich_rule("customer_api", "cid", ["segment"], on_failure="fail")], enrichment=registry)
    result = rules.apply_batch([{"cid": "C1"}, {"cid": "C2"}])
    assert [o.failed_rule for o in result.outcomes] == ["ENRICH", "ENRICH"]
    assert reason in result.outcomes[0].reason
    assert result.rules["ENRICH"].failures == 2
    # The first connection failure stops the batch's requests: a slow source costs one timeout per batch.
    assert lookup_server.requests <= (1 if mode in ("slow", "error") else 2)


def test_csv_source_enrichment_and_reload_on_change(countries_csv):
    registry = EnrichmentRegistry([csv_source(countries_csv)])
    rules = RuleSet([enrich_rule("countries", "country", {"name": "country_name"})], enrichment=registry)
    out = rules.apply_batch([{"country": "DE"}, {"country": "XX"}])
    assert out.outcomes[0].data == {"country": "DE", "country_name": "Germany"}
    assert out.outcomes[1].data == {"country": "XX"}
    countries_csv.write_text("code,name,region\nXX,Atlantis,Sea\n", encoding="utf-8")
    cache_store().clear("countries")
    assert rules.apply_batch([{"country": "XX"}]).outcomes[0].data["country_name"] == "Atlantis"


def test_csv_refresh_loads_the_whole_file(countries_csv):
    registry = EnrichmentRegistry([csv_source(countries_csv)])
    seen = []
    assert registry.refresh("countries", progress=lambda done, total: seen.append((done, total))) == \
        {"keys": 3, "loaded": 3, "errors": 0}
    assert seen[-1] == (3, 3) and cache_store().count("countries") == 3


def test_redis_cache_ttl_negative_ttl_and_capacity(countries_csv):
    store = cache_store()
    assert store.backend == "redis"
    spec = csv_source(countries_csv, cache={"ttl_seconds": 100, "max_entries": 2, "negative_ttl_seconds": 5})
    registry = EnrichmentRegistry([spec])
    lookup_all(registry, "countries", ["DE", "US", "JP"])
    assert store.count("countries") == 2  # capacity: the oldest fetched went first
    entries = dict(store.items("countries"))
    assert set(entries) <= {"DE", "US", "JP"} and len(entries) == 2
    # TTL: an entry older than ttl_seconds is fetched again (a miss), a fresh one is a hit.
    store.put_many("countries", {"DE": {"name": "Old"}}, now=1.0, max_entries=2, keep_seconds=10**10,
                   times={"DE": entries.get("US").fetched_at - 101})
    answers, stats = lookup_all(registry, "countries", ["DE"])
    assert answers["DE"][0] == {"name": "Germany", "region": "EU"} and stats.miss == 1
    answers, stats = lookup_all(registry, "countries", ["DE"])
    assert stats.hit == 1


def test_stale_fallback_disabled_means_errors(lookup_server):
    spec = http_source(lookup_server.url, cache={"ttl_seconds": 1, "stale_fallback": False, "max_entries": 10})
    registry = EnrichmentRegistry([spec])
    lookup_all(registry, "customer_api", ["C1"])
    store = cache_store()
    store.put_many("customer_api", {"C1": {"segment": "x"}}, now=1.0, max_entries=10, keep_seconds=10**10,
                   times={"C1": 1.0})
    lookup_server.stop()
    answers, stats = lookup_all(registry, "customer_api", ["C1"])
    assert answers["C1"][0] is None and answers["C1"][1] and stats.error == 1


def test_disabled_source_answers_from_the_cache_only(lookup_server):
    registry = EnrichmentRegistry([http_source(lookup_server.url)])
    lookup_all(registry, "customer_api", ["C1"])
    disabled = EnrichmentRegistry([http_source(lookup_server.url, enabled=False)])
    answers, stats = lookup_all(disabled, "customer_api", ["C1", "C2"])
    assert answers["C1"][0]["segment"] == "retail" and stats.hit == 1
    assert "disabled" in answers["C2"][1] and lookup_server.requests == 1


def test_in_process_store_for_embedded_mode(countries_csv, settings):
    settings.CELERY_BROKER_URL = "filesystem://"
    store = cache_store()
    assert isinstance(store, LocalStore) and store.backend == "local"
    registry = EnrichmentRegistry([csv_source(countries_csv, cache={"ttl_seconds": 100, "max_entries": 2})])
    lookup_all(registry, "countries", ["DE", "US", "JP"])
    assert store.count("countries") == 2
    _, stats = lookup_all(registry, "countries", ["JP"])
    assert stats.hit == 1
    window, totals = store.stats("countries", window_seconds=900, now=time.time())
    assert window["hit"] == 1 and window["miss"] == 3 and totals["evicted"] == 1
    store.clear()


@pytest.mark.parametrize("spec,field,reason", [
    ({"enrichment_id": "x", "type": "ldap"}, "type", "unknown enrichment type"),
    ({"enrichment_id": "x"}, "type", "is required"),
    ({"enrichment_id": "x", "type": "http", "connection": {"url": "ftp://h/{key}"}}, "connection.url", "{key}"),
    ({"enrichment_id": "x", "type": "postgresql", "connection": {"host": "h"}}, "connection.database", "is required"),
    ({"enrichment_id": "x", "type": "postgresql", "connection": {"host": "h", "database": "d"},
      "lookup": {"key_column": "k", "query": "DELETE FROM t WHERE k = ANY(%(keys)s)"}}, "lookup.query", "SELECT"),
    ({"enrichment_id": "x", "type": "postgresql", "connection": {"host": "h", "database": "d"},
      "lookup": {"key_column": "k"}}, "lookup.table", "either table or query"),
    ({"enrichment_id": "x", "type": "csv", "connection": {"path": "/nonexistent/x.csv"}, "lookup": {"key_column": "k"}},
     "connection.path", "file not found"),
    ({"enrichment_id": "x", "type": "csv", "connection": {"path": "a.csv"}}, "lookup.key_column", "is required"),
    ({"enrichment_id": "x", "type": "http", "connection": {"url": "http://h/{key}", "timeout_ms": 0}},
     "connection.timeout_ms", "positive"),
    ({"enrichment_id": "x", "type": "http", "connection": {"url": "http://h/{key}"}, "cache": {"ttl_seconds": -1}},
     "cache.ttl_seconds", "positive"),
])
def test_enrichment_source_validation_names_field_and_reason(spec, field, reason):
    [(got_field, got_reason)] = enrichment_source_check(spec)
    assert got_field == field and reason in got_reason
