"""AWS SigV4 end to end without AWS: ``--aws-region`` requests go through a local proxy that checks each
signature the way Amazon OpenSearch Service does (botocore recomputes it from the known test credentials)
and forwards the request to a real OpenSearch 3 server."""

from __future__ import annotations

import hashlib
import logging
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from connector.cluster.official import OfficialCluster
from connector.cluster.settings import ConnectionSettings
from connector.errors import AuthenticationError

pytestmark = [pytest.mark.integration, pytest.mark.os3]

botocore_auth = pytest.importorskip("botocore.auth")
botocore_awsrequest = pytest.importorskip("botocore.awsrequest")
botocore_credentials = pytest.importorskip("botocore.credentials")
pytest.importorskip("opensearchpy")

ACCESS_KEY = "AKIDI14EXAMPLE"
SECRET_KEY = "i14/SigV4/secret+EXAMPLEKEY0123456789"
REGION = "eu-west-1"


@dataclass
class SigV4Proxy:
    """A local stand-in for the AWS endpoint: checks the signature, then forwards to ``upstream``."""

    upstream: str
    url: str = ""
    checked: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)

    def verify(self, method: str, path: str, headers: Any, body: bytes) -> bool:
        authorization = headers.get("Authorization", "")
        prefix = f"AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/"
        if not authorization.startswith(prefix) or f"/{REGION}/es/aws4_request" not in authorization:
            return False
        signed = authorization.split("SignedHeaders=")[1].split(",")[0].split(";")
        if hashlib.sha256(body).hexdigest() != headers.get("X-Amz-Content-SHA256"):
            return False  # the body is not the one that was signed
        request = botocore_awsrequest.AWSRequest(
            method=method,
            url=f"http://{headers['Host']}{path}",
            data=body,
            headers={name: headers[name] for name in signed if name != "host" and name in headers},
        )
        request.context["timestamp"] = headers["X-Amz-Date"]
        signer = botocore_auth.SigV4Auth(botocore_credentials.Credentials(ACCESS_KEY, SECRET_KEY), "es", REGION)
        canonical = signer.canonical_request(request)
        expected = signer.signature(signer.string_to_sign(request, canonical), request)
        return authorization.endswith(f"Signature={expected}")


def _handler(proxy: SigV4Proxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def _any(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if not proxy.verify(self.command, self.path, self.headers, body):
                proxy.refused.append(f"{self.command} {self.path}")
                self._answer(403, {"content-type": "application/json"}, b'{"message":"signature mismatch"}')
                return
            proxy.checked.append(f"{self.command} {self.path}")
            headers = {k: v for k, v in self.headers.items() if k.lower() in ("content-type", "accept")}
            request = urllib.request.Request(
                proxy.upstream + self.path, data=body or None, method=self.command, headers=headers
            )
            try:
                with urllib.request.urlopen(request, timeout=30) as resp:
                    self._answer(resp.status, dict(resp.headers), resp.read())
            except urllib.error.HTTPError as e:
                self._answer(e.code, dict(e.headers), e.read())

        def _answer(self, status: int, headers: dict[str, str], body: bytes) -> None:
            self.send_response(status)
            self.send_header("content-type", headers.get("content-type", headers.get("Content-Type", "")))
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _any

    return Handler


@pytest.fixture
def sigv4_proxy(os3_url: str) -> Iterator[SigV4Proxy]:
    proxy = SigV4Proxy(upstream=os3_url)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(proxy))
    proxy.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield proxy
    server.shutdown()
    server.server_close()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """The standard credential chain finds the test keys in the environment (and no file or profile)."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)


def test_signed_requests_reach_the_cluster(
    sigv4_proxy: SigV4Proxy, aws_env: None, index_name: str, os3_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = ConnectionSettings(url=sigv4_proxy.url, aws_region=REGION)
    cluster = settings.connect()  # detects through the signed client
    assert isinstance(cluster, OfficialCluster) and cluster.capabilities.flavor == "opensearch"
    cluster.create_index(index_name, {"settings": {"number_of_shards": 1, "number_of_replicas": 0}})
    try:
        cluster.bulk([{"index": {"_index": index_name, "_id": "a"}}, {"title": "tent"}], refresh=True)
        hits = cluster.search(index_name, {"query": {"match": {"title": "tent"}}})["hits"]["hits"]
        assert [h["_id"] for h in hits] == ["a"]
        assert cluster.msearch(index_name, [({}, {"size": 0})])[0]["hits"]["total"]["value"] == 1
    finally:
        cluster.delete_index(index_name)
    assert sigv4_proxy.refused == [] and len(sigv4_proxy.checked) >= 6
    assert any(line.startswith("POST /_bulk") for line in sigv4_proxy.checked)
    for text in (caplog.text, repr(cluster), repr(settings), settings.model_dump_json()):
        assert SECRET_KEY not in text


def test_a_wrong_secret_is_refused_and_not_shown(
    sigv4_proxy: SigV4Proxy, aws_env: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "i14/wrong/secret+EXAMPLEKEY9876543210"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", wrong)
    with pytest.raises(AuthenticationError) as err:
        ConnectionSettings(url=sigv4_proxy.url, aws_region=REGION).connect()
    assert sigv4_proxy.refused and not sigv4_proxy.checked
    for text in (str(err.value), repr(err.value), repr(vars(err.value)), caplog.text):
        assert wrong not in text
