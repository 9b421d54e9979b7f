"""Push realistic demo records to an http_push source over HTTP, like a real upstream system.

`make run` starts it against its own web server so the console shows data moving:

    OPSCONSOLE_API_TOKEN=<key> manage.py demo_feed --url http://127.0.0.1:8000 --source api_source_1

A small share of the records is deliberately bad (a missing field, a wrong type, a stale timestamp)
so rejection and quality scoring show up too. Back-pressure answers (429/503) and a web server that
is not up yet are waited out; SIGTERM or Ctrl-C stops it between pushes.
"""
import logging
import os
import random
import signal
import threading
import uuid
from datetime import datetime, timedelta, timezone

import httpx
from django.core.management.base import BaseCommand, CommandError

MERCHANTS = [
    ("Northwind Grocers", "groceries"), ("Blue Harbor Fuel", "fuel"), ("Cedar & Pine Books", "books"),
    ("Metro Transit", "transport"), ("Lumen Electronics", "electronics"), ("Atlas Pharmacy", "health"),
    ("Copperleaf Cafe", "restaurants"), ("Summit Outdoor", "sports"),
]
CHANNELS = ["pos", "web", "mobile", "recurring"]
CURRENCIES = ["USD", "USD", "USD", "EUR", "GBP"]
PHONE_STYLES = ["({a}) {b}-{c}", "{a}-{b}-{c}", "+1 {a} {b} {c}", "1.{a}.{b}.{c}", "{a}{b}{c}"]


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def demo_record(rng: random.Random, now: datetime) -> dict:
    """One card transaction as an upstream payments API would send it."""
    merchant, category = rng.choice(MERCHANTS)
    happened = now - timedelta(seconds=rng.randint(0, 90))
    phone = rng.choice(PHONE_STYLES).format(a=rng.randint(201, 989), b=rng.randint(200, 999), c=f"{rng.randint(0, 9999):04d}")
    return {
        "id": f"txn-{uuid.UUID(int=rng.getrandbits(128), version=4)}",
        "timestamp": _iso(happened),
        "customer_id": f"CUST-{rng.randint(10000, 99999)}",
        "transaction_date": happened.date().isoformat(),
        "amount": round(rng.lognormvariate(3.2, 1.0), 2),
        "currency": rng.choice(CURRENCIES),
        "phone_number": phone,
        "payload": {
            "merchant": merchant,
            "category": category,
            "channel": rng.choice(CHANNELS),
            "card_last4": f"{rng.randint(0, 9999):04d}",
            "status": rng.choices(["approved", "declined"], weights=[19, 1])[0],
        },
    }


def spoil(record: dict, rng: random.Random, now: datetime) -> dict:
    """Make a record bad in one of the ways real feeds are bad: some are rejected at validation,
    some only lose quality score."""
    kind = rng.choice(["missing_id", "bad_timestamp", "payload_not_object", "stale", "no_customer"])
    if kind == "missing_id":
        record.pop("id")
    elif kind == "bad_timestamp":
        record["timestamp"] = now.strftime("%d/%m/%Y %H:%M")
    elif kind == "payload_not_object":
        record["payload"] = "n/a"
    elif kind == "stale":
        old = now - timedelta(days=rng.randint(2, 9))
        record["timestamp"] = _iso(old)
        record["transaction_date"] = old.date().isoformat()
    else:
        record.pop("customer_id")
    return record


class Command(BaseCommand):
    help = "Push a few realistic records every couple of seconds to an http_push source (demo data)."

    def add_arguments(self, parser):
        parser.add_argument("--url", default="http://127.0.0.1:8000", help="Base URL of the web server.")
        parser.add_argument("--source", default="api_source_1", help="The http_push source_id.")
        parser.add_argument("--token", default=os.environ.get("OPSCONSOLE_API_TOKEN", ""),
                            help="API token (default: $OPSCONSOLE_API_TOKEN).")
        parser.add_argument("--interval", type=float, default=2.0, help="Seconds between pushes.")
        parser.add_argument("--min-records", type=int, default=3)
        parser.add_argument("--max-records", type=int, default=8)
        parser.add_argument("--bad-share", type=float, default=0.05, help="Share of deliberately bad records.")
        parser.add_argument("--pushes", type=int, default=0, help="Stop after this many pushes (0: run until stopped).")
        parser.add_argument("--seed", type=int, default=None)

    def handle(self, *args, url, source, token, interval, min_records, max_records, bad_share, pushes, seed, **options):
        if not token:
            raise CommandError("an API token is needed: --token or OPSCONSOLE_API_TOKEN (manage.py drf_create_token <user>)")
        if not 1 <= min_records <= max_records:
            raise CommandError("need 1 <= --min-records <= --max-records")
        logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per push is our own summary
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        rng = random.Random(seed)
        endpoint = f"{url.rstrip('/')}/api/sources/{source}/records"
        headers = {"Authorization": f"Token {token}"}
        sent = accepted = rejected = done = 0
        waiting_reported = False
        self.stdout.write(f"feeding {endpoint} every {interval:g}s with {min_records}-{max_records} records")
        with httpx.Client(timeout=30.0, headers=headers) as client:
            while not stop.is_set() and (pushes == 0 or done < pushes):
                now = datetime.now(timezone.utc)
                records = [demo_record(rng, now) for _ in range(rng.randint(min_records, max_records))]
                records = [spoil(r, rng, now) if rng.random() < bad_share else r for r in records]
                pause = interval
                try:
                    response = client.post(endpoint, json=records)
                except httpx.TransportError as exc:
                    if not waiting_reported:
                        self.stdout.write(f"web server not answering yet ({type(exc).__name__}); retrying")
                        waiting_reported = True
                    stop.wait(1.0)
                    continue
                waiting_reported = False
                if response.status_code == 202:
                    body = response.json()
                    done += 1
                    sent += len(records)
                    accepted += body.get("accepted", 0)
                    rejected += body.get("rejected", 0)
                    if done == 1 or done % 15 == 0:
                        self.stdout.write(f"pushed {sent} records in {done} requests "
                                          f"({accepted} accepted, {rejected} rejected)")
                elif response.status_code in (429, 503):
                    pause = max(interval, float(response.headers.get("Retry-After") or 5))
                    self.stdout.write(f"ingestion is pushing back ({response.status_code}): waiting {pause:g}s")
                else:
                    self.stdout.write(f"push refused: {response.status_code} {response.text[:300]}")
                    pause = max(interval, 10.0)
                stop.wait(pause)
        self.stdout.write(f"stopped after {sent} records in {done} requests ({accepted} accepted, {rejected} rejected)")
