#!/usr/bin/env python3
"""End-to-end benchmark of the pipeline on PostgreSQL + Redis, through the real processes.

    make bench                                   # 100,000 records
    .venv/bin/python bench/pipeline.py --records 20000 --clients 4 --concurrency 2

What it does:
  1. creates the database `opsconsole_bench` afresh on the server of DATABASE_URL (default
     postgres://postgres@127.0.0.1:5432/...), migrates it and creates the destination table
     bench_events (event_id unique);
  2. loads the configuration tree bench/config/ (http_push source bench_source, the manual's
     regex_replace phone rule, the manual's quality scoring, a PostgreSQL destination bench_events
     and a file destination bench_archive) with `manage.py reload_config`;
  3. starts a gunicorn web server and one Celery worker (queues alpha, beta, gamma, ops; broker
     REDIS_URL, default redis://127.0.0.1:6379/0), each in its own process group;
  4. pushes N records over HTTP in requests of --batch-size records from --clients threads, waits
     until every batch is done (a cheap query on the batch table) and confirms with
     GET /api/pipeline/reconciliation that all N are delivered and nothing is in flight;
  5. prints records/s end to end, the p50/p99 ingest-to-delivery latency (finished_at - ingested_at
     of delivered records), the worker's peak memory (RSS summed over its process tree, sampled
     from /proc every 0.2 s; PSS too, which does not count shared pages twice) and the rows in
     bench_events (must equal N), and writes them to bench/results/latest.json.

Every process it starts is stopped on exit, on Ctrl-C and on failure.
"""
import argparse
import json
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

import httpx
import orjson
import psycopg
import yaml
from psycopg import sql

BENCH_DIR = Path(__file__).resolve().parent
BASE_DIR = BENCH_DIR.parent
BIN_DIR = Path(sys.executable).parent
RESULTS = BENCH_DIR / "results" / "latest.json"
BENCH_DB = "opsconsole_bench"
SOURCE = "bench_source"
TABLE = "bench_events"
FILE_DESTINATION = "bench_archive"
QUEUES = "alpha,beta,gamma,ops"


class BenchFailure(Exception):
    pass


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


# --- processes ------------------------------------------------------------------------------------

class Process:
    """A child in its own process group, output to a log file; stop() ends the whole group."""

    def __init__(self, name: str, command: list[str], env: dict, log_dir: Path):
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = open(self.log_path, "wb")
        self.popen = subprocess.Popen(command, cwd=BASE_DIR, env=env, stdin=subprocess.DEVNULL, stdout=self._log,
                                      stderr=subprocess.STDOUT, start_new_session=True)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def check_alive(self) -> None:
        if self.popen.poll() is not None:
            raise BenchFailure(f"{self.name} exited with status {self.popen.returncode}\n{self.tail()}")

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, grace: float = 20.0) -> None:
        """SIGTERM to the leader (gunicorn master, celery main process stop their own children),
        then SIGKILL to the whole group if anything of it outlives the grace period."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and group_alive(self.pid):
            self.popen.poll()
            time.sleep(0.1)
        if group_alive(self.pid):
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            self.popen.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        self._log.close()


def proc_stat(pid: int) -> list[str] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rfind(")") + 2:].split()


def group_alive(pgid: int) -> bool:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = proc_stat(int(entry.name))
            if fields and fields[0] != "Z" and int(fields[2]) == pgid:
                return True
    return False


def process_tree(root: int) -> list[int]:
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = proc_stat(int(entry.name))
            if fields and fields[0] != "Z":
                parents[int(entry.name)] = int(fields[1])
    tree, grew = {root} if root in parents else set(), True
    while grew:
        grew = False
        for pid, ppid in parents.items():
            if ppid in tree and pid not in tree:
                tree.add(pid)
                grew = True
    return sorted(tree)


def memory_kib(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of one process in KiB; zeros if it is gone."""
    rss = pss = 0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                pss = int(line.split()[1])
    except (OSError, ValueError):
        pass
    return rss, pss


def cpu_ticks(pid: int) -> int:
    """utime + stime of a process and its reaped children, in clock ticks."""
    fields = proc_stat(pid)
    return sum(int(f) for f in fields[11:15]) if fields else 0


def database_backends() -> list[int]:
    """PostgreSQL server processes serving the benchmark database (their title names it)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if cmdline.startswith(b"postgres:") and f" {BENCH_DB} ".encode() in cmdline:
                found.append(int(entry.name))
    return found


def machine_ticks() -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine since boot (/proc/stat)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


class CpuAccount:
    """CPU time used by a changing set of processes: per pid, the last reading minus the first
    (zero for a pid born after the first reading)."""

    def __init__(self) -> None:
        self.first: dict[int, int] = {}
        self.last: dict[int, int] = {}
        self.started = False

    def read(self, pids: list[int]) -> None:
        for pid in pids:
            ticks = cpu_ticks(pid)
            self.first.setdefault(pid, ticks if not self.started else 0)
            self.last[pid] = max(self.last.get(pid, 0), ticks)
        self.started = True

    @property
    def seconds(self) -> float:
        return sum(self.last[p] - self.first[p] for p in self.last) / os.sysconf("SC_CLK_TCK")


class Sampler(threading.Thread):
    """Every `interval` seconds: the worker tree's summed RSS and PSS (peaks kept), and the CPU
    time used by the worker tree, the web tree, the database backends and the whole machine."""

    def __init__(self, worker_pid: int, web_pid: int, interval: float = 0.2):
        super().__init__(name="sampler", daemon=True)
        self.worker_pid, self.web_pid, self.interval = worker_pid, web_pid, interval
        self.peak_rss_kib = self.peak_pss_kib = self.peak_processes = self.samples = 0
        self.worker_cpu, self.web_cpu, self.database_cpu = CpuAccount(), CpuAccount(), CpuAccount()
        self.machine_start = self.machine_end = machine_ticks()
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            self.sample()
            self._halt.wait(self.interval)
        self.sample()

    def sample(self) -> None:
        pids = process_tree(self.worker_pid)
        totals = [memory_kib(pid) for pid in pids]
        self.peak_rss_kib = max(self.peak_rss_kib, sum(t[0] for t in totals))
        self.peak_pss_kib = max(self.peak_pss_kib, sum(t[1] for t in totals))
        self.peak_processes = max(self.peak_processes, len(pids))
        self.worker_cpu.read(pids)
        self.web_cpu.read(process_tree(self.web_pid))
        self.database_cpu.read(database_backends())
        self.machine_end = machine_ticks()
        self.samples += 1

    @property
    def machine_busy_share(self) -> float:
        busy = self.machine_end[0] - self.machine_start[0]
        total = self.machine_end[1] - self.machine_start[1]
        return busy / total if total else 0.0

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)


def load_average() -> float:
    return os.getloadavg()[0]


# --- set-up ---------------------------------------------------------------------------------------

def database_urls(database_url: str) -> tuple[dict, str]:
    """Connection parameters of the server and the URL of the benchmark database on it."""
    parts = urlsplit(database_url)
    if parts.scheme not in ("postgres", "postgresql", "pgsql"):
        raise BenchFailure(f"DATABASE_URL must be a PostgreSQL URL, not {parts.scheme}://")
    server = {
        "host": parts.hostname or "127.0.0.1", "port": parts.port or 5432,
        "user": unquote(parts.username) if parts.username else None,
        "password": unquote(parts.password) if parts.password else None,
    }
    bench_url = urlunsplit((parts.scheme, parts.netloc, f"/{BENCH_DB}", parts.query, ""))
    return server, bench_url


def connect(server: dict, dbname: str, **kwargs) -> psycopg.Connection:
    return psycopg.connect(host=server["host"], port=server["port"], user=server["user"],
                           password=server["password"], dbname=dbname, **kwargs)


def database_recreate(server: dict) -> None:
    with connect(server, "postgres", autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(BENCH_DB)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(BENCH_DB)))


def destination_table_create(server: dict) -> None:
    with connect(server, BENCH_DB, autocommit=True) as conn:
        conn.execute(f"""
            CREATE TABLE {TABLE} (
                event_id text NOT NULL UNIQUE,
                event_timestamp timestamptz,
                event_data jsonb,
                loaded_at timestamptz NOT NULL DEFAULT now()
            )""")


def config_tree(server: dict, work: Path) -> Path:
    """bench/config as is, or a copy pointing the PostgreSQL destination at DATABASE_URL's server."""
    source = BENCH_DIR / "config"
    path = source / "gamma" / "destinations" / f"{TABLE}.yaml"
    spec = yaml.safe_load(path.read_text())
    connection = spec["connection"]
    if (connection["host"], connection["port"]) == (server["host"], server["port"]):
        return source
    copy = work / "config"
    shutil.copytree(source, copy)
    connection.update(host=server["host"], port=server["port"])
    (copy / "gamma" / "destinations" / f"{TABLE}.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return copy


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def manage(env: dict, *args: str) -> str:
    result = subprocess.run([sys.executable, str(BASE_DIR / "manage.py"), *args], cwd=BASE_DIR, env=env,
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise BenchFailure(f"manage.py {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
    return result.stdout


def wait_for(check, what: str, timeout: float, processes: list[Process]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for process in processes:
            process.check_alive()
        if check():
            return
        time.sleep(0.2)
    raise BenchFailure(f"{what} not ready after {timeout:.0f}s")


# --- load -----------------------------------------------------------------------------------------

def request_bodies(records: int, batch_size: int) -> list[bytes]:
    """Pre-serialized JSON arrays, so the clients spend their time on HTTP, not on building records."""
    rng = random.Random(2024)
    now = datetime.now(timezone.utc)
    styles = ["({a}) {b}-{c}", "{a}-{b}-{c}", "+1 {a} {b} {c}", "{a}.{b}.{c}"]
    channels = ["pos", "web", "mobile", "recurring"]
    bodies = []
    for start in range(0, records, batch_size):
        batch = []
        for i in range(start, min(start + batch_size, records)):
            happened = now - timedelta(seconds=rng.randint(0, 300))
            batch.append({
                "id": f"bench-{i:09d}",
                "timestamp": happened.isoformat().replace("+00:00", "Z"),
                "customer_id": f"CUST-{rng.randint(10000, 99999)}",
                "transaction_date": happened.date().isoformat(),
                "amount": round(rng.uniform(1, 500), 2),
                "currency": "USD",
                "phone_number": rng.choice(styles).format(a=rng.randint(201, 989), b=rng.randint(200, 999),
                                                          c=f"{rng.randint(0, 9999):04d}"),
                "payload": {"merchant": f"M-{rng.randint(1, 500)}", "channel": rng.choice(channels), "seq": i},
            })
        bodies.append(orjson.dumps(batch))
    return bodies


def push_all(base_url: str, token: str, bodies: list[bytes], clients: int) -> list[float]:
    """POST every body; the per-request latencies. Back-pressure answers are waited out and retried."""
    local = threading.local()
    latencies: list[float] = []
    lock = threading.Lock()

    def client() -> httpx.Client:
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=base_url, timeout=300.0, headers={
                "Authorization": f"Token {token}", "Content-Type": "application/json"})
        return local.client

    def push(body: bytes) -> None:
        while True:
            started = time.perf_counter()
            response = client().post(f"/api/sources/{SOURCE}/records", content=body)
            if response.status_code in (429, 503):
                time.sleep(float(response.headers.get("Retry-After") or 1))
                continue
            if response.status_code != 202:
                raise BenchFailure(f"push answered {response.status_code}: {response.text[:500]}")
            answer = response.json()
            if answer.get("rejected"):
                raise BenchFailure(f"push rejected {answer['rejected']} records: {answer}")
            with lock:
                latencies.append(time.perf_counter() - started)
            return

    with ThreadPoolExecutor(max_workers=clients) as pool:
        list(pool.map(push, bodies))
    return latencies


def wait_delivered(base_url: str, token: str, server: dict, records: int, timeout: float,
                   processes: list[Process]) -> dict:
    """Wait until every batch is done (a cheap query on the batch table, every 0.1 s), then confirm
    with GET /api/pipeline/reconciliation that all records are delivered and none is in flight.

    Reconciliation itself aggregates every record (hundreds of ms at 100,000 records), so polling it
    often would load the very database being measured."""
    deadline = time.monotonic() + timeout
    total: dict = {}
    with connect(server, BENCH_DB, autocommit=True) as conn, httpx.Client(
        base_url=base_url, timeout=30.0, headers={"Authorization": f"Token {token}"}
    ) as client:
        while time.monotonic() < deadline:
            for process in processes:
                process.check_alive()
            received, unfinished = conn.execute(
                "SELECT coalesce(sum(received), 0), count(*) FILTER (WHERE stage <> 'done') "
                "FROM ingestion_batch WHERE source_id = %s", (SOURCE,),
            ).fetchone()
            if received < records or unfinished:
                time.sleep(0.1)
                continue
            finished = time.perf_counter()
            response = client.get("/api/pipeline/reconciliation")
            if response.status_code != 200:
                raise BenchFailure(f"reconciliation answered {response.status_code}: {response.text[:300]}")
            total = response.json()["sources"].get(SOURCE) or {}
            if total.get("in_flight") == 0 and total.get("balanced"):
                if total["delivered"] != records:
                    raise BenchFailure(f"not everything was delivered: {total}")
                return {"finished": finished, "reconciliation": total}
            time.sleep(0.5)
    raise BenchFailure(f"not delivered after {timeout:.0f}s: reconciliation {total}")


def delivery_figures(server: dict, output_dir: Path) -> dict:
    with connect(server, BENCH_DB) as conn:
        p50, p99, slowest = conn.execute(
            """SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY d), percentile_cont(0.99) WITHIN GROUP (ORDER BY d),
                      max(d)
               FROM (SELECT extract(epoch FROM finished_at - ingested_at) AS d
                     FROM ingestion_record WHERE source_id = %s AND status = 'delivered') AS t""",
            (SOURCE,),
        ).fetchone()
        rows, distinct = conn.execute(f"SELECT count(*), count(DISTINCT event_id) FROM {TABLE}").fetchone()
    lines = 0
    for path in (output_dir / FILE_DESTINATION).rglob("*.jsonl"):
        with open(path, "rb") as handle:
            lines += sum(1 for _ in handle)
    return {"latency_p50_s": float(p50 or 0), "latency_p99_s": float(p99 or 0), "latency_max_s": float(slowest or 0),
            "destination_rows": rows, "destination_distinct_event_ids": distinct, "file_destination_lines": lines}


# --- main -----------------------------------------------------------------------------------------

def run(args: argparse.Namespace, processes: list[Process], work: Path) -> dict:
    database_url = os.environ.get("DATABASE_URL") or "postgres://postgres@127.0.0.1:5432/opsconsole"
    redis_url = os.environ.get("CELERY_BROKER_URL") or os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
    server, bench_url = database_urls(database_url)
    var_dir = work / "var"
    env = {k: v for k, v in os.environ.items() if k not in ("PIPELINE_OUTPUT_DIR",)}
    env.update({
        "DJANGO_SETTINGS_MODULE": "opsconsole.settings", "PYTHONUNBUFFERED": "1",
        "DATABASE_URL": bench_url, "CELERY_BROKER_URL": redis_url, "REDIS_URL": redis_url,
        "OPSCONSOLE_VAR_DIR": str(var_dir), "PIPELINE_CONFIG_DIR": str(config_tree(server, work)),
        "INGEST_BATCH_SIZE": str(args.batch_size), "LOG_LEVEL": "WARNING",
        "SECRET_KEY": env.get("SECRET_KEY") or "bench-only-secret-key",
        "BENCH_DB_USER": server["user"] or "postgres",
    })
    if server["password"]:
        env["PGPASSWORD"] = server["password"]

    log(f"database {BENCH_DB} on {server['host']}:{server['port']} (fresh), broker {urlsplit(redis_url).netloc}"
        f"{urlsplit(redis_url).path}")
    database_recreate(server)
    manage(env, "migrate", "--noinput", "-v", "0")
    destination_table_create(server)
    log(f"loading {env['PIPELINE_CONFIG_DIR']}")
    manage(env, "reload_config")
    manage(env, "ensure_operator", "--username", "bench", "--group", "Operations Team")
    token = manage(env, "drf_create_token", "bench").split()[2]

    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    web = Process("web", [str(BIN_DIR / "gunicorn"), "opsconsole.wsgi", "-b", f"127.0.0.1:{port}",
                          "-w", str(args.web_workers), "--timeout", "300", "--graceful-timeout", "10",
                          "--error-logfile", "-", "--no-control-socket"], env, work)
    processes.append(web)
    worker_command = [str(BIN_DIR / "celery"), "-A", "opsconsole", "worker", "-Q", QUEUES,
                      "--concurrency", str(args.concurrency), "-l", "info", "-n", f"bench-{port}@%h"]
    if args.beat:
        worker_command.insert(4, "-B")
    worker = Process("worker", worker_command, env, work)
    processes.append(worker)

    def web_up() -> bool:
        try:
            return httpx.get(f"{base_url}/login/", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    wait_for(web_up, "web server", 60, processes)
    wait_for(lambda: " ready." in worker.log_path.read_text(errors="replace"), "celery worker", 60, processes)
    log(f"web on {base_url} ({args.web_workers} gunicorn workers), celery worker pid {worker.pid} "
        f"(concurrency {args.concurrency}{', beat embedded' if args.beat else ''})")

    bodies = request_bodies(args.records, args.batch_size)
    load_before = load_average()
    if load_before > 1.0:
        log(f"WARNING: load average {load_before:.2f} on {os.cpu_count()} CPUs before the run: other work on this "
            "machine will slow the figures down")
    sampler = Sampler(worker.pid, web.pid)
    sampler.start()
    log(f"pushing {args.records} records in {len(bodies)} requests from {args.clients} client threads")
    started = time.perf_counter()
    request_latencies = push_all(base_url, token, bodies, args.clients)
    pushed = time.perf_counter()
    log(f"all accepted after {pushed - started:.1f}s ({args.records / (pushed - started):.0f} records/s ingested); "
        "waiting for delivery")
    timeout = max(300.0, args.records / 100)
    done = wait_delivered(base_url, token, server, args.records, timeout, processes)
    finished, total = done["finished"], done["reconciliation"]
    sampler.stop()

    figures = delivery_figures(server, var_dir / "output")
    request_latencies.sort()
    elapsed = finished - started
    result = {
        "records": args.records,
        "batch_size": args.batch_size,
        "clients": args.clients,
        "web_workers": args.web_workers,
        "worker_concurrency": args.concurrency,
        "beat": args.beat,
        "elapsed_s": round(elapsed, 3),
        "records_per_s": round(args.records / elapsed, 1),
        "ingest_s": round(pushed - started, 3),
        "ingest_records_per_s": round(args.records / (pushed - started), 1),
        "push_request_p50_s": round(request_latencies[len(request_latencies) // 2], 4),
        "push_request_max_s": round(request_latencies[-1], 4),
        "latency_p50_s": round(figures["latency_p50_s"], 4),
        "latency_p99_s": round(figures["latency_p99_s"], 4),
        "latency_max_s": round(figures["latency_max_s"], 4),
        "worker_peak_rss_mib": round(sampler.peak_rss_kib / 1024, 1),
        "worker_peak_pss_mib": round(sampler.peak_pss_kib / 1024, 1),
        "worker_processes": sampler.peak_processes,
        "worker_cpu_s": round(sampler.worker_cpu.seconds, 1),
        "web_cpu_s": round(sampler.web_cpu.seconds, 1),
        "database_cpu_s": round(sampler.database_cpu.seconds, 1),
        "machine_cpu_busy_pct": round(100 * sampler.machine_busy_share, 1),
        # What the pipeline itself cost, whatever else ran: worker + web + PostgreSQL CPU per record.
        "pipeline_cpu_ms_per_record": round(
            1000 * (sampler.worker_cpu.seconds + sampler.web_cpu.seconds + sampler.database_cpu.seconds) / args.records, 3),
        "load_average_before": round(load_before, 2),
        "load_average_after": round(load_average(), 2),
        "memory_samples": sampler.samples,
        "destination_rows": figures["destination_rows"],
        "destination_distinct_event_ids": figures["destination_distinct_event_ids"],
        "file_destination_lines": figures["file_destination_lines"],
        "reconciliation": total,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "finished_at": datetime.now(timezone.utc).isoformat(),
    }
    if figures["destination_rows"] != args.records or figures["destination_distinct_event_ids"] != args.records:
        raise BenchFailure(f"destination table has {figures['destination_rows']} rows "
                           f"({figures['destination_distinct_event_ids']} distinct), expected {args.records}")
    if figures["file_destination_lines"] != args.records:
        raise BenchFailure(f"file destination has {figures['file_destination_lines']} lines, expected {args.records}")
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description="Push N records through the real stack and measure.")
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=1000, help="Records per HTTP request (and per batch).")
    parser.add_argument("--clients", type=int, default=4, help="Concurrent pushing client threads.")
    parser.add_argument("--concurrency", "--workers", dest="concurrency", type=int, default=os.cpu_count() or 2,
                        help="Celery worker pool processes.")
    parser.add_argument("--web-workers", type=int, default=2, help="gunicorn worker processes.")
    parser.add_argument("--beat", action=argparse.BooleanOptionalAction, default=True,
                        help="Embed beat in the worker, as make run does (default: on).")
    parser.add_argument("--keep", action="store_true", help="Keep the work directory (logs, delivered files).")
    args = parser.parse_args()
    if args.records < 1 or args.batch_size < 1:
        parser.error("--records and --batch-size must be positive")

    processes: list[Process] = []
    work = Path(tempfile.mkdtemp(prefix="opsconsole-bench-"))

    def interrupted(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    status = 0
    try:
        result = run(args, processes, work)
    except BenchFailure as exc:
        log(f"FAILED: {exc}")
        for process in processes:
            log(f"--- {process.name} log tail ---\n{process.tail()}")
        status = 1
    except KeyboardInterrupt:
        log("interrupted")
        status = 130
    except Exception:
        log(f"FAILED:\n{traceback.format_exc()}")
        for process in processes:
            log(f"--- {process.name} log tail ---\n{process.tail()}")
        status = 1
    finally:
        for process in reversed(processes):
            process.stop()
        left = [p.name for p in processes if group_alive(p.pid)]
        if left:
            log(f"WARNING: still running: {left}")
        if args.keep or status:
            log(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    if status:
        return status

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print()
    print(f"  records                 {result['records']:>12,}")
    print(f"  end to end              {result['records_per_s']:>12,.0f} records/s   ({result['elapsed_s']:.1f} s)")
    print(f"  ingest (HTTP accepted)  {result['ingest_records_per_s']:>12,.0f} records/s   ({result['ingest_s']:.1f} s)")
    print(f"  latency p50 / p99       {result['latency_p50_s']:>8.2f} s / {result['latency_p99_s']:.2f} s"
          f"   (ingested_at -> finished_at, max {result['latency_max_s']:.2f} s)")
    print(f"  worker peak memory      {result['worker_peak_rss_mib']:>8.1f} MiB RSS   "
          f"({result['worker_peak_pss_mib']:.1f} MiB PSS, {result['worker_processes']} processes)")
    print(f"  CPU used                {result['worker_cpu_s']:>8.1f} s worker, {result['web_cpu_s']:.1f} s web, "
          f"{result['database_cpu_s']:.1f} s PostgreSQL; machine {result['machine_cpu_busy_pct']:.0f}% busy "
          f"on {os.cpu_count()} CPUs (load average {result['load_average_before']:.2f} before)")
    print(f"  pipeline CPU per record {result['pipeline_cpu_ms_per_record']:>8.3f} ms   (worker + web + PostgreSQL)")
    print(f"  delivered rows          {result['destination_rows']:>12,}   (bench_events; file lines "
          f"{result['file_destination_lines']:,})")
    print(f"  written to {RESULTS.relative_to(BASE_DIR)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
