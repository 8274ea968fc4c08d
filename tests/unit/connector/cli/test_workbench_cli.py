"""``eshybrid workbench``: registered, and it refuses to serve other machines without a token."""

from __future__ import annotations

import pytest

from connector.cli.main import build_parser, main


def test_the_command_is_registered_with_its_defaults() -> None:
    args = build_parser().parse_args(["workbench", "--index", "demo-products"])
    assert args.command == "workbench" and args.host == "127.0.0.1" and args.port == 8090
    assert args.export_dir == "workbench-judgments" and args.api_key_env is None


def test_other_machines_need_a_token(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    assert main(["workbench", "--index", "x", "--host", "0.0.0.0"]) == 2
    assert "--api-key-env" in capsys.readouterr().err
    monkeypatch.delenv("WB_TOKEN", raising=False)
    assert main(["workbench", "--index", "x", "--api-key-env", "WB_TOKEN"]) == 2
    assert "$WB_TOKEN is empty" in capsys.readouterr().err
