"""The workbench's routes as one framework-free handler: a :class:`WebRequest` in, a :class:`WebResponse` out.

Served by its own small HTTP server (:mod:`connector.workbench.server`, ``eshybrid workbench``) or mounted
in another app. Routes, all under ``/ui``:

- ``GET /ui?q=...&a=...&b=...``: the page, both searches already rendered (a form submission with per-field
  ``a.mode=...`` parameters is redirected to that canonical URL, so the state is always a shareable link);
- ``GET /ui/static/<file>``: the script and the style sheet (package data; no CDN);
- ``POST /ui/api/rate`` (JSON ``{q, doc, grade, rater, a: [ids], b: [ids]}``): store a grade; answers the
  query's grades, disagreements and each side's nDCG@10;
- ``GET /ui/api/grades?q=``; ``POST /ui/api/export`` (JSON ``{rater?}``): write the BEIR folder;
- ``GET|POST /ui/login``: trade the bearer token for a cookie (a browser cannot send the header itself).

Access: without an ``api_key`` only loopback clients naming a loopback host are served (no login on
localhost; the Host check stops DNS rebinding); with one, every request needs ``Authorization: Bearer <key>``
or the login cookie. POSTs to ``/ui/api`` must be JSON (a cross-site form cannot send JSON without CORS).
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from importlib.resources import files
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qs, urlencode

from pydantic import SecretStr

from connector.errors import EshybridError, SearchRequestError
from connector.search.models import LexicalForm
from connector.workbench.compare import moves, ndcg_at
from connector.workbench.config import SIDE_KEYS, SideConfig, parse_side, side_to_url
from connector.workbench.render import PageView, SideView, esc, render_page
from connector.workbench.store import JudgmentStore

__all__ = ["MAX_BODY_BYTES", "SIDES", "WebRequest", "WebResponse", "Workbench"]

logger = logging.getLogger(__name__)

SIDES: Final = ("a", "b")
COOKIE: Final = "eshybrid_workbench"
_STATIC: Final = {"workbench.js": "text/javascript", "workbench.css": "text/css"}
_LOOPBACK_HOSTS: Final = ("127.0.0.1", "::1", "localhost")
_CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' https: http: data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
MAX_BODY_BYTES: Final = 64 * 1024


@dataclass(frozen=True)
class WebRequest:
    """What the handler needs of an HTTP request (``headers`` with lower-case names)."""

    method: str
    path: str
    query: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    client_host: str | None = None
    # Where the host app mounts the routes (``/search-app`` when ``/ui`` answers at ``/search-app/ui``).
    root_path: str = ""

    def param(self, name: str) -> str | None:
        values = parse_qs(self.query, keep_blank_values=True).get(name)
        return values[0] if values else None

    def json(self) -> dict[str, Any]:
        if not self.headers.get("content-type", "").startswith("application/json"):
            raise SearchRequestError("send the body as JSON (Content-Type: application/json)", field="body")
        try:
            data = json.loads(self.body or b"{}")
        except ValueError as e:
            raise SearchRequestError(f"the body is not JSON: {e}", field="body") from e
        if not isinstance(data, dict):
            raise SearchRequestError("the body must be a JSON object", field="body")
        return data


@dataclass(frozen=True)
class WebResponse:
    status: int
    body: bytes
    content_type: str = "text/html; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = ()

    def all_headers(self) -> list[tuple[str, str]]:
        base = [
            ("Content-Type", self.content_type),
            ("Content-Length", str(len(self.body))),
            ("Content-Security-Policy", _CSP),
            ("X-Content-Type-Options", "nosniff"),
            ("Referrer-Policy", "no-referrer"),
        ]
        if not any(name == "Cache-Control" for name, _ in self.headers):
            base.append(("Cache-Control", "no-store"))
        return base + list(self.headers)


def _json(status: int, payload: Any) -> WebResponse:
    return WebResponse(status, json.dumps(payload).encode(), "application/json")


def _error(status: int, message: str, field_: str | None = None) -> WebResponse:
    return _json(status, {"error": {"message": message, "field": field_}})


def _host_name(host_header: str) -> str:
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class Workbench:
    """The routes of the relevance workbench for one index (see the module docstring)."""

    def __init__(
        self,
        *,
        index: str,
        search_for: Callable[[LexicalForm | None], Any],
        store: JudgmentStore,
        presets: Mapping[str, SideConfig],
        export_dir: str | Path,
        api_key: SecretStr | None = None,
        size: int = 10,
    ) -> None:
        """Args:
        index: the product index searched.
        search_for: a ``HybridSearch`` for a lexical form (``None``: the index's); called per request.
        store: where grades are kept.
        presets: the presets a side may name (:func:`connector.workbench.config.presets`).
        export_dir: where ``Export`` writes the BEIR folder.
        api_key: the bearer token required beyond localhost (``None``: serve loopback clients only).
        size: hits per side.
        """
        self.index = index
        self._make_search = search_for
        self.store = store
        self.presets = dict(presets)
        self.export_dir = Path(export_dir)
        self._api_key = api_key
        self.size = size
        self._pool = ThreadPoolExecutor(max_workers=len(SIDES), thread_name_prefix="workbench-side")
        default_a = "preset:index" if "index" in self.presets else "preset:default"
        self.default_specs = {"a": default_a, "b": "preset:bm25"}

    def close(self) -> None:
        self._pool.shutdown(wait=False)

    def search_for(self, form: LexicalForm | None) -> Any:
        """The ``HybridSearch`` a side with this lexical form uses."""
        return self._make_search(form)

    # -- access ----------------------------------------------------------------------
    def _allowed(self, request: WebRequest) -> bool:
        if self._api_key is None:
            return request.client_host in _LOOPBACK_HOSTS and (
                _host_name(request.headers.get("host", "localhost")) in _LOOPBACK_HOSTS
            )
        secret = self._api_key.get_secret_value()
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer ") and hmac.compare_digest(auth[7:].strip().encode(), secret.encode()):
            return True
        cookie = SimpleCookie(request.headers.get("cookie", ""))
        token = cookie[COOKIE].value if COOKIE in cookie else ""
        return bool(token) and hmac.compare_digest(token.encode(), secret.encode())

    def _login(self, request: WebRequest) -> WebResponse:
        root = esc(request.root_path)
        form = (
            '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>workbench login</title>'
            f'<link rel="stylesheet" href="{root}/ui/static/workbench.css"></head><body>'
            f'<form method="post" action="{root}/ui/login">'
            '<label>service token <input type="password" name="token" autofocus></label>'
            '<button type="submit">Open</button></form></body></html>'
        )
        if request.method != "POST" or self._api_key is None:
            return WebResponse(200, form.encode())
        token = (parse_qs(request.body.decode("utf-8", "replace")).get("token") or [""])[0]
        if not hmac.compare_digest(token.encode(), self._api_key.get_secret_value().encode()):
            return WebResponse(401, form.replace("<form", '<p class="error">wrong token</p><form').encode())
        cookie = f"{COOKIE}={token}; HttpOnly; SameSite=Strict; Path={request.root_path}/ui"
        return WebResponse(303, b"", headers=(("Location", f"{request.root_path}/ui"), ("Set-Cookie", cookie)))

    # -- dispatch --------------------------------------------------------------------
    def handle(self, request: WebRequest) -> WebResponse:
        """Answer one request (never raises: errors become 4xx/5xx answers that say what to do)."""
        path = request.path.rstrip("/") or "/"
        if path == "/ui/login":
            return self._login(request)
        if path.startswith("/ui/static/"):
            return self._static(path.removeprefix("/ui/static/"))
        if not self._allowed(request):
            if self._api_key is None:
                return _error(403, "the workbench serves localhost only: give it an api_key to serve others")
            if path == "/ui" and request.method == "GET":
                return WebResponse(303, b"", headers=(("Location", f"{request.root_path}/ui/login"),))
            return _error(
                401, "missing or wrong bearer token (Authorization: Bearer <api_key>, or log in at /ui/login)"
            )
        try:
            return self._route(path, request)
        except EshybridError as e:
            return _error(400, str(e), getattr(e, "field", None))

    def handle_http(
        self,
        method: str,
        path: str,
        query: str,
        headers: Mapping[str, str],
        body: bytes,
        client_host: str | None,
        root_path: str = "",
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        """:meth:`handle` in plain types, for an app that mounts the routes without importing this package's
        types (``eshybrid serve search``): ``(status, headers, body)``."""
        lower = {k.lower(): v for k, v in headers.items()}
        request = WebRequest(method, path, query, lower, body, client_host, root_path.rstrip("/"))
        response = self.handle(request)
        return response.status, response.all_headers(), response.body

    def _route(self, path: str, request: WebRequest) -> WebResponse:
        if path == "/ui" and request.method == "GET":
            return self._page(request)
        if path == "/ui/api/rate" and request.method == "POST":
            return self._rate(request.json())
        if path == "/ui/api/grades" and request.method == "GET":
            return _json(200, self.store.grades(request.param("q") or "").to_json())
        if path == "/ui/api/export" and request.method == "POST":
            return self._export(request.json())
        return _error(404, f"no route {request.method} {path}; the workbench is at GET /ui")

    def _static(self, name: str) -> WebResponse:
        if name not in _STATIC:
            return _error(404, f"no static file {name!r}")
        body = files("connector.workbench").joinpath("static", name).read_bytes()
        return WebResponse(200, body, _STATIC[name], headers=(("Cache-Control", "max-age=300"),))

    # -- the page --------------------------------------------------------------------
    def _canonical(self, request: WebRequest) -> str | None:
        """The ``/ui?q=&a=&b=`` URL of a form submission (``a.mode=...`` fields), or ``None``."""
        params = parse_qs(request.query, keep_blank_values=True)
        if not any("." in name for name in params):
            return None
        state = {"q": (params.get("q") or [""])[0]}
        for side in SIDES:
            parts = [f"{key}:{params[f'{side}.{key}'][0]}" for key in SIDE_KEYS if params.get(f"{side}.{key}", [""])[0]]
            state[side] = ",".join(parts)
        return f"{request.root_path}/ui?" + urlencode(state)

    def _run_side(self, name: str, spec: str, query: str) -> SideView:
        try:
            config = parse_side(spec, self.presets)
        except EshybridError as e:
            return SideView(name, SideConfig(), spec, error=str(e))
        view = SideView(name, config, side_to_url(config))
        if not query:
            return view
        try:
            search = self.search_for(config.lexical_form)
            request = config.request(query, size=self.size)
            view.response = search.search(request.text, **request.options())
        except EshybridError as e:
            view.error = f"{type(e).__name__}: {e}"
        return view

    def compare(self, query: str, specs: Mapping[str, str]) -> list[SideView]:
        """Run both sides (concurrently) and mark how their lists differ."""
        futures = [self._pool.submit(self._run_side, side, specs[side], query) for side in SIDES]
        views = [f.result() for f in futures]
        for view, other in ((views[0], views[1]), (views[1], views[0])):
            view.moves = moves(view.ids, other.ids)
        return views

    def _page(self, request: WebRequest) -> WebResponse:
        canonical = self._canonical(request)
        if canonical is not None:
            return WebResponse(303, b"", headers=(("Location", canonical),))
        query = (request.param("q") or "").strip()
        specs = {side: request.param(side) or self.default_specs[side] for side in SIDES}
        views = self.compare(query, specs)
        grades = self.store.grades(query) if query else None
        page = PageView(
            index=self.index,
            query=query,
            sides=views,
            presets=list(self.presets),
            grades=grades.grades if grades else {},
            disagreements=grades.disagreements if grades else {},
            root=request.root_path,
        )
        return WebResponse(200, render_page(page).encode())

    # -- the API ---------------------------------------------------------------------
    def _rate(self, data: Mapping[str, Any]) -> WebResponse:
        query, doc, rater = str(data.get("q") or ""), str(data.get("doc") or ""), str(data.get("rater") or "")
        grade = data.get("grade")
        if not isinstance(grade, int) or isinstance(grade, bool):
            raise SearchRequestError("grade must be an integer 0-3", field="grade")
        config = {"side": str(data.get("side") or ""), "spec": str(data.get("spec") or "")}
        result = self.store.rate(query, doc, grade, rater=rater, config=config)
        out = result.to_json()
        out["ndcg"] = {
            side: ndcg_at([str(i) for i in data.get(side) or []], result.grades) for side in SIDES if side in data
        }
        return _json(200, out)

    def _export(self, data: Mapping[str, Any]) -> WebResponse:
        rater = str(data["rater"]) if data.get("rater") else None
        folder, queries, pairs = self.store.export_beir(self.export_dir, rater=rater)
        logger.info("workbench: exported %d queries, %d judgments to %s", queries, pairs, folder)
        return _json(200, {"path": str(folder.resolve()), "queries": queries, "judgments": pairs})
