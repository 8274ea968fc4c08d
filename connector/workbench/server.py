"""The workbench against one index, and its own small HTTP server (the standard library's; no extra install).

:func:`build_workbench` wires the routes to a cluster: one ``HybridSearch`` per lexical form a side asks for
(made on first use, then kept), the presets from the index's ``_meta``, the judgments store.
:class:`WorkbenchServer` serves it on a thread-per-request server (``eshybrid workbench`` runs it; tests start
one on a free port).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from connector.search.hybrid import HybridSearch
from connector.search.models import LexicalForm
from connector.workbench.config import presets
from connector.workbench.store import DEFAULT_JUDGMENTS_INDEX, JudgmentStore
from connector.workbench.web import MAX_BODY_BYTES, WebRequest, Workbench
from mappings.search_defaults import search_defaults_of

__all__ = ["WorkbenchServer", "build_workbench"]

logger = logging.getLogger(__name__)


def build_workbench(
    cluster: Any,
    index: str,
    *,
    make_search: Callable[[LexicalForm | None], HybridSearch] | None = None,
    embedder: Any = None,
    export_dir: str | Path = "workbench-judgments",
    api_key: SecretStr | None = None,
    judgments_index: str = DEFAULT_JUDGMENTS_INDEX,
    size: int = 10,
) -> Workbench:
    """The workbench for ``index``.

    Args:
        cluster: a connected cluster (``connector.connect``).
        index: the index or alias searched.
        make_search: builds the ``HybridSearch`` of a lexical form (default: one over ``cluster`` and
            ``embedder`` with that form and the library's other defaults).
        embedder: the query embedder of the default ``make_search`` (``None``: bm25 only).
        export_dir: the folder ``Export`` writes the BEIR judgments to.
        api_key: the bearer token asked of clients (``None``: localhost only, no login).
        judgments_index: where grades are stored.
        size: hits per side.
    """
    made: dict[LexicalForm | None, HybridSearch] = {}
    lock = threading.Lock()

    def build(form: LexicalForm | None) -> HybridSearch:
        return HybridSearch(cluster, index, embedder=embedder, lexical_form=form)

    def search_for(form: LexicalForm | None) -> HybridSearch:
        with lock:
            if form not in made:
                made[form] = (make_search or build)(form)
            return made[form]

    meta = cluster.get_mapping(index).get("_meta")
    return Workbench(
        index=index,
        search_for=search_for,
        store=JudgmentStore(cluster, index, judgments_index=judgments_index),
        presets=presets(search_defaults_of(meta)),
        export_dir=export_dir,
        api_key=api_key,
        size=size,
    )


def _handler_for(workbench: Workbench) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            path, _, query = self.path.partition("?")
            length = min(int(self.headers.get("content-length") or 0), MAX_BODY_BYTES)
            request = WebRequest(
                method=self.command,
                path=path,
                query=query,
                headers={k.lower(): v for k, v in self.headers.items()},
                body=self.rfile.read(length) if length else b"",
                client_host=self.client_address[0],
            )
            try:
                response = workbench.handle(request)
            except Exception:  # noqa: BLE001 - one broken request must not stop the server
                logger.exception("workbench: %s %s failed", self.command, path)
                self.send_error(500, "the workbench failed; see its log")
                return
            self.send_response(response.status)
            for name, value in response.all_headers():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(response.body)

        do_GET = _serve
        do_POST = _serve

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
            logger.debug("workbench: " + format, *args)

    return Handler


class WorkbenchServer:
    """The workbench on ``host:port`` (port 0: a free one), served from a background thread."""

    def __init__(self, workbench: Workbench, *, host: str = "127.0.0.1", port: int = 8090) -> None:
        self.workbench = workbench
        self._server = ThreadingHTTPServer((host, port), _handler_for(workbench))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        name = host.decode() if isinstance(host, bytes) else str(host)
        shown = "127.0.0.1" if name in ("0.0.0.0", "") else name
        return f"http://{shown}:{port}/ui"

    def start(self) -> WorkbenchServer:
        self._thread = threading.Thread(target=self._server.serve_forever, name="workbench-http", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self.workbench.close()
