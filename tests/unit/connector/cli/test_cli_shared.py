"""What the CLI modules share: optional areas, comma lists, model-service settings, migrate actions."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest

from connector.cli import build_parser
from connector.cli import migrate as _cli_migrate
from connector.cli import serve as _cli_serve
from connector.cli.common import import_optional, split_csv
from connector.errors import ConfigError


def test_import_optional_skips_only_a_missing_area(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert import_optional("connector.cli.common") is sys.modules["connector.cli.common"]
    assert import_optional("connector.cli.not_written_yet") is None
    (tmp_path / "eshybrid_broken_area.py").write_text("import eshybrid_missing_dependency\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError, match="eshybrid_missing_dependency"):
        import_optional("eshybrid_broken_area")


def test_split_csv_drops_blanks() -> None:
    assert split_csv(" title, text,,") == ("title", "text")
    assert split_csv("") == ()


def _serve(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="eshybrid")
    _cli_serve.register(parser.add_subparsers(dest="command"))
    return parser.parse_args(["serve", *argv])


def test_serve_rerank_flags_become_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from connector.cli import serve_rerank as _cli_serve_rerank

    monkeypatch.setenv("ESHYBRID_RERANK_BATCH_SIZE", "12")
    monkeypatch.setenv("MY_RERANK_TOKEN", "s3cr3t-bearer")
    args = _serve(
        [
            "rerank",
            "--model",
            "/models/ce",
            "--device",
            "cpu",
            "--replicas",
            "2",
            "--port",
            "8124",
            "--no-token",
            "nope",
            "--trust-remote-code",
            "--online",
            "--api-key-env",
            "MY_RERANK_TOKEN",
        ]
    )
    settings = _cli_serve_rerank._rerank_settings(args)
    assert (settings.model, settings.device, settings.replicas, settings.port) == ("/models/ce", "cpu", 2, 8124)
    assert (settings.no_token, settings.trust_remote_code, settings.offline) == ("nope", True, False)
    assert settings.batch_size == 12  # unset options come from the environment
    assert settings.api_key is not None and settings.api_key.get_secret_value() == "s3cr3t-bearer"
    assert "s3cr3t" not in repr(settings)


def test_serve_rerank_backend_flags() -> None:
    from connector.cli import serve_rerank as _cli_serve_rerank

    args = _serve(["rerank", "--model", "/models/ce", "--backend", "onnx", "--quantize", "int8"])
    settings = _cli_serve_rerank._rerank_settings(args)
    assert (settings.backend, settings.quantize) == ("onnx", "int8")
    with pytest.raises(ConfigError, match="quantize int8 needs backend onnx"):
        _cli_serve_rerank._rerank_settings(_serve(["rerank", "--model", "m", "--quantize", "int8"]))


def test_serve_rerank_errors_name_the_service(monkeypatch: pytest.MonkeyPatch) -> None:
    from connector.cli import serve_rerank as _cli_serve_rerank

    monkeypatch.delenv("MY_UNSET_TOKEN", raising=False)
    with pytest.raises(ConfigError, match="--api-key-env MY_UNSET_TOKEN"):
        _cli_serve_rerank._rerank_settings(_serve(["rerank", "--model", "m", "--api-key-env", "MY_UNSET_TOKEN"]))
    with pytest.raises(ConfigError, match="invalid rerank service settings"):
        _cli_serve_rerank._rerank_settings(_serve(["rerank", "--model", "m", "--replicas", "0"]))


def test_model_services_take_a_niceness_for_their_replicas() -> None:
    from connector.cli import serve_rerank as _cli_serve_rerank

    settings = _cli_serve_rerank._rerank_settings(_serve(["rerank", "--model", "m", "--niceness", "19"]))
    assert settings.niceness == 19
    assert _cli_serve_rerank._rerank_settings(_serve(["rerank", "--model", "m"])).niceness is None  # Ray's own
    with pytest.raises(ConfigError, match="invalid rerank service settings"):
        _cli_serve_rerank._rerank_settings(_serve(["rerank", "--model", "m", "--niceness", "20"]))


def test_model_service_settings_needs_the_serve_extra() -> None:
    args = _serve(["embed"])
    with pytest.raises(ConfigError, match=r"the widget service is not installed; pip install 'eshybrid\[serve\]'"):
        _cli_serve.model_service_settings(args, "eshybrid_no_such_package.settings.Settings", service="widget service")


def test_migrate_actions_share_target_and_parameters() -> None:
    parser = build_parser()
    status = parser.parse_args(["migrate", "status", "--index", "i"])
    assert status.func is _cli_migrate._cmd_status and not hasattr(status, "dims")
    up = parser.parse_args(["migrate", "up", "--index", "i", "--dims", "8", "--lock-wait", "2"])
    assert (up.func, up.to, up.dims, up.lock_wait) == (_cli_migrate._cmd_up, "head", 8, 2.0)
    down = parser.parse_args(["migrate", "down", "--index", "i", "--to", "base", "--json"])
    assert (down.func, down.to, down.json) == (_cli_migrate._cmd_down, "base", True)
    stamp = parser.parse_args(["migrate", "stamp", "--index", "i", "r1"])
    assert (stamp.func, stamp.revision) == (_cli_migrate._cmd_stamp, "r1")
    with pytest.raises(SystemExit):
        parser.parse_args(["migrate", "down", "--index", "i"])  # --to is required


def test_migrate_prints_what_ran(capsys: pytest.CaptureFixture[str]) -> None:
    assert _cli_migrate._print_revisions("applied", ["0001", "0002"], as_json=False) == 0
    assert _cli_migrate._print_revisions("undone", [], as_json=False) == 0
    assert _cli_migrate._print_revisions("undone", ["0002"], as_json=True) == 0
    assert capsys.readouterr().out == 'applied 0001, 0002\n{"undone": ["0002"]}\n'


def test_run_model_service_builds_and_announces_the_app(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "eshybrid_fake_deployment.py").write_text(
        "def build_app(settings):\n    return ('app', settings)\n", encoding="utf-8"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    calls: list[dict[str, object]] = []

    def fake_run_app(build: object, **options: object) -> int:
        calls.append({"app": build(), **options})  # type: ignore[operator]
        options["on_ready"]("http://127.0.0.1:8123/embed")  # type: ignore[operator]
        return 0

    monkeypatch.setattr(_cli_serve, "run_app", fake_run_app)
    args = _serve(["embed", "--address", "auto", "--num-cpus", "2"])
    settings = argparse.Namespace(app_name="embed", route_prefix="/embed", host="0.0.0.0", port=8123)
    assert (
        _cli_serve.run_model_service(
            args, settings, deployment="eshybrid_fake_deployment", ready_message="ready at {url}  (POST {url}/v1/x)"
        )
        == 0
    )
    assert calls == [
        {
            "app": ("app", settings),
            "name": "embed",
            "route_prefix": "/embed",
            "host": "0.0.0.0",
            "port": 8123,
            "address": "auto",
            "num_cpus": 2,
            "on_ready": calls[0]["on_ready"],
        }
    ]
    assert capsys.readouterr().out == "ready at http://127.0.0.1:8123/embed  (POST http://127.0.0.1:8123/embed/v1/x)\n"


def test_unescape_template_turns_shell_escapes_into_characters() -> None:
    from connector.cli.common import unescape_template

    assert unescape_template(r"{title}\n{brand}\t{price}") == "{title}\n{brand}\t{price}"
    assert unescape_template(None) is None


def test_transport_retry_tracebacks_stay_quiet_unless_vv(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import logging

    from connector.cli import main

    monkeypatch.setenv("ESHYBRID_URL", "http://127.0.0.1:9")  # nothing listens on port 9
    assert main(["search", "--index", "x", "--mode", "bm25", "foo"]) == 2
    assert logging.getLogger("elastic_transport").level == logging.ERROR
    err = capsys.readouterr().err
    assert "Traceback" not in err and "error: cannot reach the cluster" in err


@pytest.mark.parametrize(
    "argv",
    [
        ["search", "tent", "--index", "products"],
        ["backfill", "--index", "products"],
        ["migrate", "status", "--index", "products"],
    ],
)
def test_managed_cluster_flags_reach_the_connection_settings(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """``--cloud-id`` / ``--aws-region`` / ``--aws-service`` on the commands that reach a cluster."""
    from connector.cli.common import managed_cluster_settings
    from connector.cluster.settings import ConnectionSettings

    monkeypatch.delenv("ESHYBRID_AWS_REGION", raising=False)
    args = build_parser().parse_args([*argv, "--aws-region", "eu-west-1", "--aws-service", "aoss"])
    settings = managed_cluster_settings(ConnectionSettings(url="https://search-x.eu-west-1.es.amazonaws.com"), args)
    spec = settings.cluster_spec()
    assert (spec.aws_region, spec.aws_service) == ("eu-west-1", "aoss")
    plain = build_parser().parse_args(argv)
    assert managed_cluster_settings(ConnectionSettings(), plain) == ConnectionSettings()  # nothing given: unchanged
