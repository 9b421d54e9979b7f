"""Real HTTP servers on 127.0.0.1 for rest_api sources: a source API (timestamp cursor, linked pages,
CSV, OAuth2 / basic / bearer authentication, token expiry, scripted failures) and a small HashiCorp
Vault KV v2 stand-in that hvac talks to over HTTP."""
import json
import threading
import time
import uuid
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse


def make_record(i: int, *, ts: str | None = None) -> dict:
    return {"id": f"r{i:05d}", "timestamp": ts or f"2026-01-01T00:{i // 60 % 60:02d}:{i % 60:02d}Z",
            "payload": {"n": i}}


class SourceAPI:
    """State and behaviour of the fake upstream API; tests change it while it serves."""

    def __init__(self):
        self.lock = threading.Lock()
        self.records: list[dict] = []
        self.page_size_default = 100
        self.auth: str = "none"  # none, basic, bearer, oauth2
        self.basic = ("reader", "s3cret")
        self.bearer = "static-token"
        self.clients: dict[str, str] = {}  # oauth2 client_id -> secret
        self.token_lifetime = 3600.0
        self.tokens: dict[str, tuple[str, float]] = {}  # token -> (client_id, expires at)
        self.failures: list[str] = []  # next answers of data paths: 500, html, garbage, timeout, ...
        self.delay = 0.0
        self.token_requests = 0
        self.data_requests = 0
        self.unauthorized = 0
        self.link_header = False
        self.base_url = ""

    # --- helpers tests call
    def add(self, records: list[dict]) -> None:
        with self.lock:
            self.records.extend(records)

    def fail_next(self, *kinds: str) -> None:
        with self.lock:
            self.failures.extend(kinds)

    def revoke_tokens(self, client_id: str | None = None) -> None:
        with self.lock:
            for token, (cid, _) in list(self.tokens.items()):
                if client_id is None or cid == client_id:
                    del self.tokens[token]

    # --- request handling
    def authorized(self, headers) -> bool:
        header = headers.get("Authorization", "")
        if self.auth == "none":
            return True
        if self.auth == "basic":
            import base64

            expected = "Basic " + base64.b64encode(f"{self.basic[0]}:{self.basic[1]}".encode()).decode()
            return header == expected
        if self.auth == "bearer":
            return header == f"Bearer {self.bearer}"
        token = header.removeprefix("Bearer ")
        with self.lock:
            found = self.tokens.get(token)
        return bool(found and found[1] > time.time() and found[0] in self.clients)

    def issue_token(self, form: dict) -> tuple[int, dict]:
        self.token_requests += 1
        client_id, secret = form.get("client_id", [""])[0], form.get("client_secret", [""])[0]
        if form.get("grant_type", [""])[0] != "client_credentials":
            return 400, {"error": "unsupported_grant_type"}
        if self.clients.get(client_id) != secret or not secret:
            return 401, {"error": "invalid_client"}
        token = uuid.uuid4().hex
        with self.lock:
            self.tokens[token] = (client_id, time.time() + self.token_lifetime)
        return 200, {"access_token": token, "token_type": "bearer", "expires_in": self.token_lifetime}


class _Handler(BaseHTTPRequestHandler):
    api: SourceAPI
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet
        pass

    def _send(self, status: int, body: bytes, content_type: str = "application/json", headers: dict | None = None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, document, headers: dict | None = None):
        self._send(status, json.dumps(document).encode(), headers=headers)

    def do_POST(self):
        api = self.api
        length = int(self.headers.get("Content-Length") or 0)
        form = parse_qs(self.rfile.read(length).decode())
        if urlparse(self.path).path == "/oauth/token":
            status, body = api.issue_token(form)
            return self._json(status, body)
        return self._json(404, {"error": "not found"})

    def do_GET(self):
        api = self.api
        url = urlparse(self.path)
        query = parse_qs(url.query)
        api.data_requests += 1
        with api.lock:
            failure = api.failures.pop(0) if api.failures else None
        if api.delay:
            time.sleep(api.delay)
        if failure == "timeout":
            time.sleep(3)
            return self._json(200, {"data": {"records": []}})
        if failure == "500":
            return self._json(500, {"error": "upstream exploded"})
        if failure == "html":
            return self._send(200, b"<!DOCTYPE html><html><head><title>Maintenance</title></head><body>back soon</body></html>",
                              "text/html; charset=utf-8")
        if failure == "garbage":
            return self._send(200, b"this is not json {", "application/json")
        if failure == "missing_path":
            return self._json(200, {"result": {"items": []}})
        if failure == "invalid_utf8":
            return self._send(200, b'{"data": {"records": [{"id": "x\xff\xfe"}]}}', "application/json")
        if not api.authorized(self.headers):
            api.unauthorized += 1
            return self._json(401, {"error": "unauthorized"}, headers={"WWW-Authenticate": "Bearer"})
        limit = int(query.get("limit", [api.page_size_default])[0])
        with api.lock:
            records = list(api.records)
        if url.path == "/data":  # timestamp cursor: records with timestamp >= since, oldest first
            since = query.get("since", [None])[0]
            chosen = sorted((r for r in records if since is None or r["timestamp"] >= since),
                            key=lambda r: (r["timestamp"], r["id"]))[:limit]
            return self._json(200, {"data": {"records": chosen}})
        if url.path == "/feed":  # linked pages, in arrival order
            page = int(query.get("page", ["1"])[0])
            chosen = records[(page - 1) * limit: page * limit]
            document = {"data": {"records": chosen}}
            headers = {}
            if len(records) > page * limit:
                link = f"{api.base_url}/feed?page={page + 1}&limit={limit}"
                if api.link_header:
                    headers["Link"] = f'<{link}>; rel="next"'
                else:
                    document["next"] = link
            return self._json(200, document, headers=headers)
        if url.path == "/csv":
            if failure == "ragged_csv":
                body = b"id,timestamp,amount\nc1,2026-01-01T00:00:01Z,10\nc2,2026-01-01T00:00:02Z\nc3,2026-01-01T00:00:03Z,7\n"
            else:
                body = b"id,timestamp,amount\nc1,2026-01-01T00:00:01Z,10\nc2,2026-01-01T00:00:02Z,\xff\xfe\nc3,2026-01-01T00:00:03Z,7\n"
            return self._send(200, body, "text/csv")
        return self._json(404, {"error": "not found"})


@contextmanager
def source_api_server():
    api = SourceAPI()
    handler = type("Handler", (_Handler,), {"api": api})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    api.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()


class VaultKV:
    """The KV v2 read path of HashiCorp Vault (GET /v1/<mount>/data/<path>), token-checked."""

    def __init__(self, token: str):
        self.token = token
        self.secrets: dict[str, dict] = {}
        self.reads = 0
        self.url = ""

    def put(self, path: str, **data) -> None:  # vault kv put secret/<path> k=v ...
        self.secrets[path] = dict(data)

    def delete(self, path: str) -> None:  # vault kv delete secret/<path>
        self.secrets.pop(path, None)


@contextmanager
def vault_server(token: str = "root-test-token"):
    vault = VaultKV(token)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_GET(self):
            vault.reads += 1
            path = urlparse(self.path).path
            if self.headers.get("X-Vault-Token") != vault.token:
                return self._json(403, {"errors": ["permission denied"]})
            prefix = "/v1/secret/data/"
            key = path[len(prefix):] if path.startswith(prefix) else None
            if key is None or key not in vault.secrets:
                return self._json(404, {"errors": []})
            return self._json(200, {"data": {"data": vault.secrets[key], "metadata": {"version": 1}}})

        def _json(self, status, document):
            body = json.dumps(document).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    vault.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield vault
    finally:
        server.shutdown()
        server.server_close()
