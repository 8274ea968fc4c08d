"""The page and the routes without a cluster: escaping, server rendering, state in the URL, access rules."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from pydantic import SecretStr

from connector.workbench.config import presets
from connector.workbench.render import hit_image
from connector.workbench.web import WebRequest, Workbench
from tests.unit.connector.workbench._fakes import HOSTILE, FakeSearch, FakeStore


def workbench(search: FakeSearch | None = None, **options: Any) -> Workbench:
    fake = search or FakeSearch(["d1", "d2", "d3"])
    return Workbench(
        index="shop",
        search_for=lambda form: fake,
        store=FakeStore(),  # type: ignore[arg-type]
        presets=presets(None),
        export_dir="unused",
        **options,
    )


def get(app: Workbench, path: str, query: str = "", **headers: str) -> Any:
    return app.handle(WebRequest("GET", path, query, {"host": "127.0.0.1:8090", **headers}, client_host="127.0.0.1"))


def post(app: Workbench, path: str, payload: Any, content_type: str = "application/json") -> Any:
    headers = {"host": "localhost:8090", "content-type": content_type}
    return app.handle(WebRequest("POST", path, "", headers, json.dumps(payload).encode(), client_host="127.0.0.1"))


def test_the_first_load_shows_both_lists_escaped() -> None:
    search = FakeSearch(["d1", HOSTILE, "d3"], titles={"d1": HOSTILE})
    page = get(workbench(search), "/ui", f"q={HOSTILE}&a=mode:hybrid,user:{HOSTILE}&b=preset:bm25").body.decode()
    assert page.count('<li class="hit"') == 6
    assert "<script>alert" not in page and "<img src=x" not in page and "javascript:" not in page
    assert page.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 4  # title, id, query, user
    assert re.search(r'<script src="/ui/static/workbench.js" defer></script>', page)
    assert search.calls[0]["explain"] is True and search.calls[0]["size"] == 10


def test_moves_are_marked_between_the_sides() -> None:
    page = get(workbench(), "/ui", "q=tent&a=mode:hybrid&b=mode:bm25").body.decode()
    assert 'class="move move-up"' in page and 'class="move move-down"' in page and "move-same" in page


def test_a_form_submission_redirects_to_the_canonical_url() -> None:
    answer = get(workbench(), "/ui", "q=red+tent&a.mode=knn&a.lw=&b.preset=bm25&b.correct=off")
    assert answer.status == 303
    assert dict(answer.headers)["Location"] == "/ui?q=red+tent&a=mode%3Aknn&b=preset%3Abm25%2Ccorrect%3Aoff"


def test_a_bad_side_is_shown_on_its_side_only() -> None:
    page = get(workbench(), "/ui", "q=tent&a=mode:fast").body.decode()
    assert "mode must be one of" in page and page.count('<li class="hit"') == 3


def test_rating_answers_grades_and_both_ndcgs() -> None:
    app = workbench()
    answer = post(
        app, "/ui/api/rate", {"q": "tent", "doc": "d2", "grade": 3, "rater": "ann", "a": ["d1", "d2"], "b": ["d2"]}
    )
    data = json.loads(answer.body)
    assert answer.status == 200 and data["grades"] == {"d2": 3}
    assert data["ndcg"]["b"] == 1.0 and 0 < data["ndcg"]["a"] < 1
    bad = post(app, "/ui/api/rate", {"q": "tent", "doc": "d2", "grade": 7, "rater": "ann"})
    assert bad.status == 400 and "grade must be one of" in json.loads(bad.body)["error"]["message"]


def test_posts_must_be_json() -> None:
    answer = post(workbench(), "/ui/api/rate", {"q": "x"}, content_type="application/x-www-form-urlencoded")
    assert answer.status == 400 and "application/json" in answer.body.decode()


def test_without_a_token_only_loopback_is_served() -> None:
    app = workbench()
    assert get(app, "/ui").status == 200
    remote = app.handle(WebRequest("GET", "/ui", "", {"host": "shop.example"}, client_host="10.1.2.3"))
    assert remote.status == 403 and b"api_key" in remote.body
    rebound = app.handle(WebRequest("GET", "/ui", "", {"host": "evil.example"}, client_host="127.0.0.1"))
    assert rebound.status == 403


def test_a_token_is_asked_as_a_bearer_header_or_the_login_cookie() -> None:
    app = workbench(api_key=SecretStr("s3cret"))
    assert get(app, "/ui").status == 303  # to the login form
    assert get(app, "/ui/api/grades", "q=x").status == 401
    assert get(app, "/ui/api/grades", "q=x", authorization="Bearer s3cret").status == 200
    wrong = app.handle(WebRequest("POST", "/ui/login", "", {}, b"token=nope", client_host="10.0.0.1"))
    assert wrong.status == 401
    login = app.handle(WebRequest("POST", "/ui/login", "", {}, b"token=s3cret", client_host="10.0.0.1"))
    cookie = dict(login.headers)["Set-Cookie"]
    assert login.status == 303 and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert get(app, "/ui", cookie=cookie.split(";")[0]).status == 200


def test_static_files_are_package_data_and_others_are_refused() -> None:
    app = workbench()
    script = get(app, "/ui/static/workbench.js")
    assert script.status == 200 and script.content_type == "text/javascript" and b"textContent" in script.body
    assert get(app, "/ui/static/../web.py").status == 404
    headers = dict(get(app, "/ui").all_headers())
    assert "script-src 'self'" in headers["Content-Security-Policy"] and headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("https://cdn.example/a.jpg", "https://cdn.example/a.jpg"),
        (["http://x/b.png"], "http://x/b.png"),
        ("javascript:alert(1)", None),
        ("data:text/html,<script>", None),
    ],
)
def test_only_web_and_image_data_urls_are_shown_as_images(value: Any, shown: str | None) -> None:
    assert hit_image({"image": value}) == shown


def test_plain_types_in_and_out_for_a_host_app() -> None:
    status, headers, body = workbench().handle_http(
        "GET", "/ui", "q=tent", {"Host": "127.0.0.1:8000"}, b"", "127.0.0.1"
    )
    assert status == 200 and ("Content-Type", "text/html; charset=utf-8") in headers and b"<ol" in body


def test_links_follow_the_host_apps_mount_point() -> None:
    app = workbench()
    status, _, body = app.handle_http("GET", "/ui", "q=tent", {"host": "localhost"}, b"", "127.0.0.1", "/search-es9/")
    page = body.decode()
    assert status == 200 and 'href="/search-es9/ui/static/workbench.css"' in page
    assert 'action="/search-es9/ui"' in page and 'data-root="/search-es9"' in page
    status, headers, _ = app.handle_http("GET", "/ui", "q=x&a.mode=knn", {"host": "localhost"}, b"", "::1", "/s")
    assert status == 303 and dict(headers)["Location"].startswith("/s/ui?q=x")
