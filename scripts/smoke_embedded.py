#!/usr/bin/env python3
"""Smoke test of `make run` in embedded mode (SQLite + file-system broker), as CI runs it.

1. start `make run` in its own process group, with no DATABASE_URL / CELERY_BROKER_URL / REDIS_URL
   and a fresh, empty OPSCONSOLE_VAR_DIR;
2. wait for http://127.0.0.1:8000/login/ and read the API token the supervisor prints;
3. push 50 records to /api/sources/api_source_1/records;
4. poll GET /api/pipeline/reconciliation until they are delivered (the total delivered has grown by
   at least 50, the books balance) and every one of the 50 is in a delivered file under
   var/output/ — or fail after the deadline;
5. SIGINT the process group and check that every process `make run` started is gone.

Any failure prints the tail of the `make run` log and exits non-zero.
"""
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import httpx

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

from ingestion.management.commands.demo_feed import demo_record  # noqa: E402

HOST, PORT = "127.0.0.1", 8000
BASE_URL = f"http://{HOST}:{PORT}"
SOURCE = "api_source_1"
RECORDS = 50
START_TIMEOUT = 240.0
DELIVERY_TIMEOUT = 90.0
STOP_TIMEOUT = 60.0


class SmokeFailure(Exception):
    pass


def proc_table() -> dict[int, tuple[int, int, str]]:
    """pid -> (ppid, start time in ticks, command line) for every live process (Linux /proc)."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        if fields[0] == "Z":
            continue
        table[int(entry.name)] = (int(fields[1]), int(fields[19]), cmdline)
    return table


def descendants(root: int) -> dict[int, tuple[int, str]]:
    """Every process below root (including root): pid -> (start time, command line)."""
    table = proc_table()
    found = {root: (table[root][1], table[root][2])} if root in table else {}
    grew = True
    while grew:
        grew = False
        for pid, (ppid, started, cmdline) in table.items():
            if ppid in found and pid not in found:
                found[pid] = (started, cmdline)
                grew = True
    return found


def still_running(snapshot: dict[int, tuple[int, str]]) -> dict[int, str]:
    table = proc_table()
    return {pid: cmd for pid, (started, cmd) in snapshot.items() if pid in table and table[pid][1] == started}


def port_in_use() -> bool:
    with socket.socket() as sock:
        return sock.connect_ex((HOST, PORT)) == 0


def log_tail(path: Path, lines: int = 80) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(text[-lines:])


def wait_until_up(make: subprocess.Popen, log: Path) -> str:
    """Wait for the login page; return the API token from the banner."""
    deadline = time.monotonic() + START_TIMEOUT
    token = None
    while time.monotonic() < deadline:
        if make.poll() is not None:
            raise SmokeFailure(f"make run exited early with status {make.returncode}")
        if token is None:
            found = re.search(r"API token:\s+([0-9a-f]{40})", log.read_text(errors="replace"))
            token = found.group(1) if found else None
        if token:
            try:
                if httpx.get(f"{BASE_URL}/login/", timeout=3).status_code == 200:
                    return token
            except httpx.TransportError:
                pass
        time.sleep(0.5)
    raise SmokeFailure(f"{BASE_URL}/login/ did not answer within {START_TIMEOUT:.0f}s (token seen: {bool(token)})")


def delivered_ids(output_root: Path, batch_ids: set[str]) -> set[str]:
    """The record ids found in the delivered files of our batches (file destinations write <batch_id>.jsonl)."""
    found = set()
    if not output_root.is_dir():
        return found
    for path in output_root.rglob("*.jsonl"):
        if path.stem not in batch_ids:
            continue
        for line in path.read_text().splitlines():
            if line.strip():
                found.add(json.loads(line)["record_id"])
    return found


def smoke(var_dir: Path, log: Path) -> None:
    if port_in_use():
        raise SmokeFailure(f"{HOST}:{PORT} is already in use; stop whatever runs there first")
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "CELERY_BROKER_URL", "REDIS_URL", "PIPELINE_OUTPUT_DIR", "PIPELINE_CONFIG_DIR")}
    env["OPSCONSOLE_VAR_DIR"] = str(var_dir)
    with open(log, "wb") as out:
        make = subprocess.Popen(
            ["make", "--no-print-directory", "run"], cwd=BASE_DIR, env=env, stdin=subprocess.DEVNULL,
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
    snapshot: dict[int, tuple[int, str]] = {}
    try:
        started = time.monotonic()
        token = wait_until_up(make, log)
        print(f"smoke: make run is up after {time.monotonic() - started:.1f}s", flush=True)
        client = httpx.Client(base_url=BASE_URL, headers={"Authorization": f"Token {token}"}, timeout=30)

        before = client.get("/api/pipeline/reconciliation")
        if before.status_code != 200:
            raise SmokeFailure(f"reconciliation answered {before.status_code}: {before.text[:300]}")
        baseline = before.json()["total"]["delivered"]

        now = datetime.now(timezone.utc)
        rng = random.Random(50)
        records = [demo_record(rng, now) for _ in range(RECORDS)]
        for i, record in enumerate(records):
            record["id"] = f"smoke-{i:03d}"
        batch_ids: set[str] = set()
        for start in range(0, RECORDS, 10):
            response = client.post(f"/api/sources/{SOURCE}/records", json=records[start:start + 10])
            if response.status_code != 202:
                raise SmokeFailure(f"push answered {response.status_code}: {response.text[:500]}")
            body = response.json()
            if body.get("accepted") != 10:
                raise SmokeFailure(f"push accepted {body.get('accepted')} of 10: {body}")
            batch_ids.update(body["batch_ids"])
        print(f"smoke: pushed {RECORDS} records in {len(batch_ids)} batches; baseline delivered {baseline}", flush=True)

        deadline = time.monotonic() + DELIVERY_TIMEOUT
        pushed_at = time.monotonic()
        total: dict = {}
        ours: set[str] = set()
        while time.monotonic() < deadline:
            if make.poll() is not None:
                raise SmokeFailure(f"make run exited with status {make.returncode} while records were in flight")
            total = client.get("/api/pipeline/reconciliation").json()["total"]
            ours = delivered_ids(var_dir / "output", batch_ids)
            if total["delivered"] >= baseline + RECORDS and total["balanced"] and len(ours) >= RECORDS:
                break
            time.sleep(1)
        else:
            raise SmokeFailure(
                f"not delivered within {DELIVERY_TIMEOUT:.0f}s: reconciliation total {total}, "
                f"{len(ours)} of our {RECORDS} records found in delivered files under {var_dir / 'output'}"
            )
        print(f"smoke: delivered after {time.monotonic() - pushed_at:.1f}s; reconciliation total {total}", flush=True)
        client.close()
    finally:
        if make.poll() is None:
            snapshot = descendants(make.pid)
            print(f"smoke: stopping make run (SIGINT to its process group, {len(snapshot)} processes)", flush=True)
            os.killpg(make.pid, signal.SIGINT)
            try:
                make.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                pass
        leftovers = still_running(snapshot)
        if leftovers or make.poll() is None:
            for pid in leftovers:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            if make.poll() is None:
                os.killpg(make.pid, signal.SIGKILL)
            shown = "\n".join(f"  {pid}: {cmd}" for pid, cmd in leftovers.items())
            raise SmokeFailure(f"processes still running {STOP_TIMEOUT:.0f}s after SIGINT (killed now):\n{shown}")
    if port_in_use():
        raise SmokeFailure(f"{HOST}:{PORT} still answers after make run stopped")
    if "all processes stopped" not in log.read_text(errors="replace"):
        raise SmokeFailure("the supervisor did not report a clean stop ('all processes stopped')")
    print(f"smoke: make run stopped cleanly (status {make.returncode}); all {len(snapshot)} processes gone", flush=True)


def main() -> int:
    var_dir = Path(tempfile.mkdtemp(prefix="opsconsole-smoke-"))
    log = var_dir / "make-run.log"
    try:
        smoke(var_dir / "var", log)
    except (SmokeFailure, httpx.HTTPError, KeyError, ValueError) as exc:
        print(f"\nsmoke: FAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
        print(f"--- last lines of {log} ---\n{log_tail(log)}\n---", file=sys.stderr)
        print(f"smoke: kept {var_dir} for inspection", file=sys.stderr)
        return 1
    shutil.rmtree(var_dir, ignore_errors=True)
    print("smoke: OK", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
