#!/usr/bin/env python3
"""`make run`: set up the project and supervise web + worker (with beat) + demo feeder.

Set-up: migrate, load the pipeline configuration (manage.py reload_config), collect static files,
create the operator login (password kept in $OPSCONSOLE_VAR_DIR/operator-password so re-runs print
the same one) and its API token. Then it starts, each in its own process group:

  web     gunicorn opsconsole.wsgi on 127.0.0.1:8000
  worker  one Celery worker on queues alpha, beta, gamma, ops with beat embedded
  feed    manage.py demo_feed, pushing a few records every couple of seconds over HTTP

and prefixes their output. Ctrl-C (SIGINT), SIGTERM or SIGHUP stops all of them (TERM, then KILL
of the whole process group after a grace period), and so does any one of them dying. Children
also get SIGTERM from the kernel if this supervisor itself is killed (PR_SET_PDEATHSIG).

Embedded mode (no DATABASE_URL, CELERY_BROKER_URL, REDIS_URL): SQLite in WAL mode and Celery's
file-system transport under var/. With them set: PostgreSQL and Redis.
"""
import argparse
import ctypes
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
BIN_DIR = Path(sys.executable).parent
PYTHON = sys.executable
VAR_DIR = Path(os.environ.get("OPSCONSOLE_VAR_DIR") or BASE_DIR / "var")

GRACE_SECONDS = 20.0
_print_lock = threading.Lock()
# Set by SIGINT/SIGTERM/SIGHUP, during set-up as well as while supervising.
STOP = threading.Event()

try:
    _libc = ctypes.CDLL(None, use_errno=True)
    _prctl = _libc.prctl
except (OSError, AttributeError):  # not Linux: children are still stopped by process group
    _prctl = None
PR_SET_PDEATHSIG = 1


def say(line: str, prefix: str = "run") -> None:
    with _print_lock:
        sys.stdout.write(f"{prefix:<6}| {line}\n")
        sys.stdout.flush()


def fail(message: str, output: str = "") -> "NoReturn":  # noqa: F821
    if output:
        with _print_lock:
            sys.stdout.write(output if output.endswith("\n") else output + "\n")
    say(f"ERROR: {message}")
    sys.exit(1)


def child_env(**extra: str) -> dict:
    env = dict(os.environ)
    env.setdefault("DJANGO_SETTINGS_MODULE", "opsconsole.settings")
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def manage(*args: str, quiet: bool = False) -> str:
    """Run a management command to completion; its output, or exit with it shown."""
    command = [PYTHON, str(BASE_DIR / "manage.py"), *args]
    result = subprocess.run(command, cwd=BASE_DIR, env=child_env(), capture_output=True, text=True)
    if result.returncode != 0 and STOP.is_set():
        say("stopped during set-up")
        sys.exit(130)
    if result.returncode != 0:
        fail(f"`manage.py {' '.join(args)}` failed (exit {result.returncode})", result.stdout + result.stderr)
    if not quiet:
        for line in (result.stdout + result.stderr).splitlines():
            if line.strip():
                say(line, "setup")
    return result.stdout


def postgres_database_ensure(url: str) -> None:
    """Create the PostgreSQL database DATABASE_URL names if the server lacks it (a fresh server)."""
    from urllib.parse import unquote, urlsplit

    import psycopg
    from psycopg import sql

    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql", "pgsql"):
        return
    name = unquote(parts.path.lstrip("/"))
    params = {"host": parts.hostname, "port": parts.port or 5432, "connect_timeout": 10,
              "user": unquote(parts.username) if parts.username else None,
              "password": unquote(parts.password) if parts.password else None}
    try:
        psycopg.connect(dbname=name, **params).close()
        return
    except psycopg.OperationalError as exc:
        if "does not exist" not in str(exc):
            fail(f"cannot connect to PostgreSQL: {str(exc).strip().splitlines()[0]}")
    with psycopg.connect(dbname="postgres", autocommit=True, **params) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    say(f"created PostgreSQL database {name}")


def port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _die_with_parent() -> None:
    """In the child before exec: its own session (own process group), SIGTERM when we die."""
    if _prctl is not None:
        _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def group_members(pgid: int) -> list[int]:
    """Pids whose process group is pgid (Linux /proc); falls back to 'maybe' on other systems."""
    proc = Path("/proc")
    if not proc.is_dir():
        return [pgid]
    members = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


class Child:
    def __init__(self, name: str, command: list[str], env: dict):
        self.name = name
        self.command = command
        self.process = subprocess.Popen(
            command, cwd=BASE_DIR, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=_die_with_parent,
        )
        self.pgid = self.process.pid  # leader of its own session and group
        self.reader: threading.Thread | None = None

    def relay_output(self) -> None:
        def relay() -> None:
            assert self.process.stdout is not None
            for raw in iter(self.process.stdout.readline, b""):
                say(raw.decode("utf-8", "replace").rstrip("\n"), self.name)
        self.reader = threading.Thread(target=relay, name=f"relay-{self.name}", daemon=True)
        self.reader.start()

    def signal_group(self, signum: int) -> None:
        try:
            os.killpg(self.pgid, signum)
        except (ProcessLookupError, PermissionError):
            pass

    def alive_members(self) -> list[int]:
        if self.process.poll() is None:
            return [self.process.pid] + [p for p in group_members(self.pgid) if p != self.process.pid]
        return group_members(self.pgid)


class Supervisor:
    def __init__(self) -> None:
        self.children: list[Child] = []
        self.stop_requested = STOP
        self.stop_reason = ""

    def request_stop(self, signum: int, frame) -> None:
        if self.stop_requested.is_set():
            say("second signal: killing everything now")
            for child in self.children:
                child.signal_group(signal.SIGKILL)
            return
        self.stop_reason = signal.Signals(signum).name
        self.stop_requested.set()

    def start(self, name: str, command: list[str], env: dict) -> Child:
        child = Child(name, command, env)
        self.children.append(child)
        return child

    def watch(self) -> int:
        """Until a signal or a child's death; then stop everything. The exit status."""
        status = 0
        while not self.stop_requested.wait(0.5):
            for child in self.children:
                code = child.process.poll()
                if code is not None:
                    say(f"{child.name} exited unexpectedly (status {code}); stopping everything")
                    status = 1
                    self.stop_requested.set()
                    break
        if status == 0:
            say(f"{self.stop_reason or 'stop'} received: stopping feed, web and worker")
        self.shutdown()
        return status

    def shutdown(self) -> None:
        # The feeder first (no new records), then web and worker together. Only each group's
        # leader is signalled: the gunicorn master and the celery main process stop their own
        # children (the worker's warm shutdown finishes the tasks it holds; acks_late re-delivers
        # any it cannot). The whole group is killed only if it outlives the grace period.
        for child in sorted(self.children, key=lambda c: c.name != "feed"):
            if child.process.poll() is None:
                try:
                    child.process.send_signal(signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + GRACE_SECONDS
        while time.monotonic() < deadline and any(c.alive_members() for c in self.children):
            time.sleep(0.2)
        for child in self.children:
            left = child.alive_members()
            if left:
                say(f"{child.name}: {len(left)} process(es) still running after {GRACE_SECONDS:.0f}s; killing")
                child.signal_group(signal.SIGKILL)
        for child in self.children:
            try:
                child.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            if child.reader is not None:
                child.reader.join(timeout=2)
        left = [pid for c in self.children for pid in c.alive_members()]
        if left:
            say(f"WARNING: processes still present: {left}")
        else:
            say("all processes stopped")


def wait_for_http(url: str, timeout: float, stop: threading.Event) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not stop.is_set():
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status < 500:
                    return True
        except urllib.error.HTTPError as exc:
            if exc.code < 500:
                return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.3)
    return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default=os.environ.get("RUN_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("RUN_PORT", "8000")))
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--no-demo", action="store_true", default=os.environ.get("DEMO_FEED", "1") == "0",
                        help="Do not start the demo feeder (also DEMO_FEED=0).")
    args = parser.parse_args()

    supervisor = Supervisor()
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, supervisor.request_stop)

    database = "PostgreSQL" if os.environ.get("DATABASE_URL") else f"SQLite (WAL) at {VAR_DIR / 'opsconsole.sqlite3'}"
    broker_url = os.environ.get("CELERY_BROKER_URL") or os.environ.get("REDIS_URL")
    broker = "Redis" if broker_url else f"Celery file-system transport at {VAR_DIR / 'broker'}"
    say(f"database: {database}")
    say(f"broker:   {broker}")
    if not port_free(args.host, args.port):
        fail(f"{args.host}:{args.port} is already in use (another `make run`?); stop it or set RUN_PORT")

    if os.environ.get("DATABASE_URL"):
        postgres_database_ensure(os.environ["DATABASE_URL"])
    say("migrating the database ...")
    manage("migrate", "--noinput", "-v", "0")
    say(f"loading the pipeline configuration from {os.environ.get('PIPELINE_CONFIG_DIR') or BASE_DIR / 'config'} ...")
    manage("reload_config")
    manage("collectstatic", "--noinput", "-v", "0", quiet=True)
    login = json.loads(manage("ensure_operator", "--username", "operator", "--group", "Operations Team",
                              "--password-file", str(VAR_DIR / "operator-password"), quiet=True))
    token_output = manage("drf_create_token", "operator", quiet=True)
    found = re.search(r"Generated token (\S+) for user", token_output)
    if not found:
        fail("could not read the token printed by drf_create_token", token_output)
    token = found.group(1)

    url = f"http://{args.host}:{args.port}/"
    banner = [
        "",
        "=" * 72,
        f"  opsconsole console:  {url}",
        f"  login:               {login['username']} / {login['password']}"
        f"   (kept in {VAR_DIR / 'operator-password'})",
        f"  API token:           {token}",
        f"  try:  curl -H 'Authorization: Token {token}' {url}api/pipeline/reconciliation",
        "  Ctrl-C stops everything.",
        "=" * 72,
        "",
    ]
    with _print_lock:
        sys.stdout.write("\n".join(banner) + "\n")
        sys.stdout.flush()

    if supervisor.stop_requested.is_set():
        say("stopped during set-up")
        return 130
    bind = f"{args.host}:{args.port}"
    supervisor.start("web", [
        str(BIN_DIR / "gunicorn"), "opsconsole.wsgi", "-b", bind, "-w", str(args.web_workers),
        "--graceful-timeout", "10", "--timeout", "60", "--error-logfile", "-", "--no-control-socket",
    ], child_env())
    supervisor.start("worker", [
        str(BIN_DIR / "celery"), "-A", "opsconsole", "worker", "-B", "-Q", "alpha,beta,gamma,ops",
        "--concurrency", str(args.concurrency), "-l", "info", "-n", "opsconsole-run@%h",
    ], child_env())
    if not args.no_demo:
        supervisor.start("feed", [
            PYTHON, str(BASE_DIR / "manage.py"), "demo_feed", "--url", f"http://{bind}",
            "--source", "api_source_1",
        ], child_env(OPSCONSOLE_API_TOKEN=token))
    # Output relays start after every fork, so no thread is running while preexec_fn runs.
    for child in supervisor.children:
        child.relay_output()

    def announce() -> None:
        if wait_for_http(f"{url}login/", 60, supervisor.stop_requested):
            say(f"console is up at {url} (login {login['username']} / {login['password']})")
        elif not supervisor.stop_requested.is_set():
            say(f"WARNING: {url}login/ does not answer after 60 s")

    threading.Thread(target=announce, name="announce", daemon=True).start()
    return supervisor.watch()


if __name__ == "__main__":
    sys.exit(main())
