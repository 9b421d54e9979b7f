"""A real HTTP destination on 127.0.0.1 that fails in programmable ways."""
import json
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class HttpSink:
    """Answers each POST with the next scripted behaviour, or 200 when the script is empty.

    A behaviour is (status, headers, body, delay_seconds); `"close"` drops the connection.
    Accepted batches are kept by Idempotency-Key, so repeats are visible to the test.
    """

    def __init__(self):
        self.script: deque = deque()
        self.accepted: dict[str, list[dict]] = {}
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with sink.lock:
                    behaviour = sink.script.popleft() if sink.script else (200, {}, b'{"ok": true}', 0)
                    sink.requests.append({"headers": dict(self.headers), "body": body})
                if behaviour == "close":
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                status, headers, answer, delay = behaviour
                if delay:
                    time.sleep(delay)
                if 200 <= status < 300:
                    payload = json.loads(body)
                    with sink.lock:
                        sink.accepted.setdefault(self.headers.get("Idempotency-Key"), payload["records"])
                try:
                    self.send_response(status)
                    for key, value in headers.items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting (a timeout test)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/ingest"

    def fail(self, times: int, status: int = 503, headers: dict | None = None, delay: float = 0) -> None:
        with self.lock:
            self.script.extend([(status, headers or {}, b"unavailable", delay)] * times)

    def delivered_ids(self) -> list[str]:
        with self.lock:
            return [r["record_id"] for records in self.accepted.values() for r in records]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
