"""A loopback HTTP proxy in front of a real cluster that answers some requests with 429/503.

Every request is forwarded to the real cluster, except that a share of those matching
``path_pattern`` (default: ``_bulk``) get an Elasticsearch-shaped 429 or 503 instead,
without reaching the cluster. Used to test the jobs' retries; nothing here mocks a
cluster's behaviour: all answers that are not injected faults are the cluster's own.
"""

from __future__ import annotations

import http.client
import json
import random
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

__all__ = ["FaultProxy", "fault_proxy"]

_HOP_HEADERS = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
}


@dataclass
class FaultProxy:
    """Counts of what the proxy did; ``url`` is where clients connect."""

    url: str
    forwarded: int = 0
    injected: dict[int, int] = field(default_factory=dict)
    traceparents: list[tuple[str, str]] = field(default_factory=list)  # (path, W3C traceparent) as received
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def injected_total(self) -> int:
        return sum(self.injected.values())


def _handler(
    upstream: str,
    proxy: FaultProxy,
    *,
    share: float,
    statuses: tuple[int, ...],
    pattern: re.Pattern[str],
    rng: random.Random,
) -> type[BaseHTTPRequestHandler]:
    target = urlsplit(upstream)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
            return

        def _relay(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else None
            with proxy.lock:
                if traceparent := self.headers.get("traceparent"):
                    proxy.traceparents.append((self.path, traceparent))
                fault = pattern.search(self.path) is not None and rng.random() < share
                status = rng.choice(statuses) if fault else 0
                if fault:
                    proxy.injected[status] = proxy.injected.get(status, 0) + 1
                else:
                    proxy.forwarded += 1
            if fault:
                self._answer_fault(status)
                return
            conn = http.client.HTTPConnection(target.hostname, target.port, timeout=120)
            try:
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_HEADERS}
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                payload = resp.read()
                self.send_response(resp.status)
                for key, value in resp.getheaders():
                    if key.lower() not in _HOP_HEADERS:
                        self.send_header(key, value)
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)
            finally:
                conn.close()

        def _answer_fault(self, status: int) -> None:
            kind = "es_rejected_execution_exception" if status == 429 else "unavailable_shards_exception"
            payload = json.dumps(
                {
                    "error": {
                        "root_cause": [{"type": kind, "reason": "injected by the fault proxy"}],
                        "type": kind,
                        "reason": "injected by the fault proxy",
                    },
                    "status": status,
                }
            ).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _relay

    return Handler


@contextmanager
def fault_proxy(
    upstream: str,
    *,
    share: float = 0.2,
    statuses: tuple[int, ...] = (429, 503),
    path_pattern: str = r"/_bulk",
    seed: int = 1,
) -> Iterator[FaultProxy]:
    """Run a proxy to ``upstream`` on a free loopback port for the ``with`` block."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    proxy = FaultProxy(url=f"http://127.0.0.1:{server.server_address[1]}")
    server.RequestHandlerClass = _handler(
        upstream, proxy, share=share, statuses=statuses, pattern=re.compile(path_pattern), rng=random.Random(seed)
    )
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="fault-proxy", daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
