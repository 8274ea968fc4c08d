"""AWS SigV4 without AWS: the client ``--aws-region`` builds signs exactly as botocore signs the same request
(fixed credentials and time), and the credentials show nowhere (headers, reprs, messages)."""

from __future__ import annotations

import datetime
import hashlib
import json
from typing import Any

import pytest

from connector.cluster.cloud import aws_signed_client, cloud_id_url
from connector.cluster.official import OfficialCluster
from connector.cluster.settings import ClusterSpec, ConnectionSettings
from connector.errors import ConfigError

botocore_auth = pytest.importorskip("botocore.auth")
botocore_awsrequest = pytest.importorskip("botocore.awsrequest")
botocore_credentials = pytest.importorskip("botocore.credentials")
pytest.importorskip("opensearchpy")

ACCESS_KEY = "AKIDEXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
SESSION_TOKEN = "FQoGZXIvYXdzEXAMPLETOKEN"
FIXED_NOW = datetime.datetime(2026, 3, 14, 15, 9, 26)
ENDPOINT = "https://search-shop-abc123.eu-west-1.es.amazonaws.com"


@pytest.fixture
def fixed_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(botocore_auth, "get_current_datetime", lambda *a, **k: FIXED_NOW)


def _signer(client: Any) -> Any:
    return client.transport.connection_pool.connections[0].http_auth


def _botocore_headers(method: str, url: str, body: bytes | None, credentials: Any) -> dict[str, str]:
    request = botocore_awsrequest.AWSRequest(method=method, url=url, data=body, headers={})
    request.headers["X-Amz-Content-SHA256"] = hashlib.sha256(body or b"").hexdigest()
    botocore_auth.SigV4Auth(credentials, "es", "eu-west-1").add_auth(request)
    return dict(request.headers.items())


@pytest.mark.parametrize("token", [None, SESSION_TOKEN])
@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/_nodes/plugins?filter_path=nodes.%2A.version", None),  # as request_target encodes it
        ("POST", "/shop/_search", json.dumps({"query": {"match": {"title": "tent"}}}).encode()),
        ("POST", "/shop/_msearch", b'{}\n{"size":0}\n'),
    ],
)
def test_signature_equals_botocores_own(fixed_time: None, token: str | None, method: str, path: str, body: Any) -> None:
    credentials = botocore_credentials.Credentials(ACCESS_KEY, SECRET_KEY, token)
    client = aws_signed_client(ENDPOINT, region="eu-west-1", credentials=credentials)
    url = ENDPOINT + ":443" + path
    ours = _signer(client)(method, url, body)
    want = _botocore_headers(method, url, body, credentials)
    assert ours["Authorization"] == want["Authorization"]
    assert ours["Authorization"].startswith(
        f"AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/20260314/eu-west-1/es/aws4_request"
    )
    assert ours["X-Amz-Date"] == "20260314T150926Z"
    assert (ours.get("X-Amz-Security-Token"), "x-amz-security-token" in ours["Authorization"]) == (token, bool(token))
    assert SECRET_KEY not in json.dumps(ours)
    wrapped = OfficialCluster(client)
    assert SECRET_KEY not in repr(wrapped) and ACCESS_KEY not in repr(wrapped)
    assert wrapped.url == "https://search-shop-abc123.eu-west-1.es.amazonaws.com:443"


def test_spec_and_settings_carry_the_region_not_the_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ESHYBRID_AWS_REGION", "eu-west-1")
    monkeypatch.setenv("ESHYBRID_URL", ENDPOINT)
    spec = ConnectionSettings().cluster_spec()
    assert (spec.aws_region, spec.aws_service) == ("eu-west-1", "es")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    cluster = spec.connect()  # nothing sent: credentials come from the standard chain (env here)
    assert isinstance(cluster, OfficialCluster)
    for text in (repr(spec), repr(cluster), spec.model_dump_json()):
        assert SECRET_KEY not in text and ACCESS_KEY not in text
    with pytest.raises(ConfigError, match="region"):
        aws_signed_client(ENDPOINT, region="")


def test_cloud_id_names_the_deployment_url() -> None:
    import base64

    cloud_id = "shop:" + base64.b64encode(b"eu-west-1.aws.found.io:443$es0123$kb4567").decode()
    assert cloud_id_url(cloud_id) == "https://es0123.eu-west-1.aws.found.io:443"
    spec = ConnectionSettings(cloud_id=cloud_id).cluster_spec()
    assert spec.url == "https://es0123.eu-west-1.aws.found.io:443" and isinstance(spec, ClusterSpec)
    with pytest.raises(ConfigError, match="cloud id is malformed") as err:
        cloud_id_url("shop:not-base64-secret!")
    assert "not-base64-secret" not in str(err.value)
