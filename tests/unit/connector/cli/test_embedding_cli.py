"""``eshybrid serve embed`` argument handling (nothing is started)."""

from __future__ import annotations

import argparse

import pytest

from connector.cli import serve as _cli_serve
from connector.errors import ConfigError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="eshybrid")
    _cli_serve.register(parser.add_subparsers(dest="command"))
    return parser


def test_serve_embed_options_become_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ESHYBRID_EMBED_MAX_BATCH_SIZE", "48")
    args = _parser().parse_args(
        [
            "serve",
            "embed",
            "--device",
            "cpu",
            "--dtype",
            "float32",
            "--replicas",
            "2",
            "--port",
            "8123",
            "--model",
            "/models/e5",
        ]
    )
    assert args.func is _cli_serve._serve_embed
    settings = _cli_serve._embed_settings(args)
    assert (settings.device, settings.dtype, settings.replicas, settings.port) == ("cpu", "float32", 2, 8123)
    assert settings.model == "/models/e5" and settings.offline is True
    assert settings.max_batch_size == 48  # unset options come from the environment


def test_bad_settings_are_a_config_error() -> None:
    args = _parser().parse_args(["serve", "embed", "--replicas", "0"])
    with pytest.raises(ConfigError, match="replicas"):
        _cli_serve._embed_settings(args)


def add_fake_command(serve_subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    serve_subparsers.add_parser("fake").set_defaults(func=lambda args: 0)


def test_serve_needs_a_service_and_other_areas_can_plug_in(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SystemExit):
        _parser().parse_args(["serve"])
    entries = (*_cli_serve.SERVE_COMMANDS, (__name__, "add_fake_command"), ("connector._not_there", "x"))
    monkeypatch.setattr(_cli_serve, "SERVE_COMMANDS", entries)
    assert _parser().parse_args(["serve", "fake"]).func(None) == 0
