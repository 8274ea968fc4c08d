"""The revision graph without a cluster: the shipped revisions, typed graph errors, paths."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import pytest

from connector.errors import (
    ConfigError,
    MigrationCycleError,
    MigrationGraphError,
    MissingRevisionError,
    MultipleHeadsError,
)
from migrations import DEFAULT_VERSIONS_DIR, MigrationContext, Revision, RevisionGraph, load_revisions


def _noop(ctx: Any) -> None:
    return None


def rev(revision: str, down: str | None) -> Revision:
    return Revision(revision=revision, down_revision=down, upgrade=_noop, downgrade=_noop, slug=f"r{revision}")


def test_shipped_revisions_form_one_line() -> None:
    graph = RevisionGraph(load_revisions())
    assert [r.revision for r in graph] == ["0001", "0002", "0003", "0004", "0005", "0006"]
    assert graph.base == "0001" and graph.head == "0006"
    for revision in graph:
        assert revision.description, f"{revision.name} needs a docstring"
        assert revision.path and Path(revision.path).name.startswith(revision.revision + "_")
    assert graph.get("0001").requires == ("dims", "model_id")
    assert graph.get("0005").requires == ("drop_vector_field",)


def test_shipped_revisions_live_in_the_package() -> None:
    assert DEFAULT_VERSIONS_DIR == Path(__file__).resolve().parents[3] / "migrations" / "versions"


def test_order_does_not_depend_on_input_order() -> None:
    graph = RevisionGraph([rev("c", "b"), rev("a", None), rev("b", "a")])
    assert [r.revision for r in graph] == ["a", "b", "c"]


def test_two_heads_are_typed() -> None:
    with pytest.raises(MultipleHeadsError) as err:
        RevisionGraph([rev("a", None), rev("b", "a"), rev("c", "a")])
    assert err.value.heads == ["b", "c"]
    assert isinstance(err.value, MigrationGraphError) and isinstance(err.value, ValueError)


def test_a_cycle_is_typed() -> None:
    with pytest.raises(MigrationCycleError) as err:
        RevisionGraph([rev("a", None), rev("b", "c"), rev("c", "b")])
    assert set(err.value.cycle) == {"b", "c"}


def test_a_self_cycle_is_typed() -> None:
    with pytest.raises(MigrationCycleError):
        RevisionGraph([rev("a", "a")])


def test_a_missing_revision_is_typed() -> None:
    with pytest.raises(MissingRevisionError) as err:
        RevisionGraph([rev("a", None), rev("b", "zzz")])
    assert err.value.missing == "zzz"


def test_duplicates_and_two_bases_are_graph_errors() -> None:
    with pytest.raises(MigrationGraphError, match="defined twice"):
        RevisionGraph([rev("a", None), rev("a", None)])
    with pytest.raises(MigrationGraphError, match="2 bases"):
        RevisionGraph([rev("a", None), rev("b", None)])


def test_graph_errors_pickle() -> None:
    with pytest.raises(MultipleHeadsError) as err:
        RevisionGraph([rev("a", None), rev("b", "a"), rev("c", "a")])
    copy = pickle.loads(pickle.dumps(err.value))
    assert type(copy) is MultipleHeadsError and copy.heads == ["b", "c"]


def test_paths_up_and_down() -> None:
    graph = RevisionGraph([rev("1", None), rev("2", "1"), rev("3", "2")])
    assert [r.revision for r in graph.upgrade_path(None, "3")] == ["1", "2", "3"]
    assert [r.revision for r in graph.upgrade_path("1", "3")] == ["2", "3"]
    assert graph.upgrade_path("3", "3") == []
    assert [r.revision for r in graph.downgrade_path("3", None)] == ["3", "2", "1"]
    assert [r.revision for r in graph.downgrade_path("3", "1")] == ["3", "2"]
    with pytest.raises(ConfigError, match="use downgrade"):
        graph.upgrade_path("3", "1")
    with pytest.raises(ConfigError, match="use upgrade"):
        graph.downgrade_path("1", "3")


def test_resolve_names() -> None:
    graph = RevisionGraph(load_revisions())
    assert graph.resolve("head") == "0006"
    assert graph.resolve("base") is None
    assert graph.resolve("0002") == "0002"
    assert graph.resolve("0003_add") == "0003"
    with pytest.raises(ConfigError, match="several"):
        graph.resolve("000")
    with pytest.raises(MissingRevisionError):
        graph.resolve("9999")


def _write(folder: Path, name: str, revision: str, down: str | None) -> None:
    (folder / name).write_text(
        f'"""Revision {revision}."""\nrevision = {revision!r}\ndown_revision = {down!r}\n'
        "def upgrade(ctx):\n    pass\n\ndef downgrade(ctx):\n    pass\n"
    )


def test_load_from_a_folder(tmp_path: Path) -> None:
    _write(tmp_path, "a1_first.py", "a1", None)
    _write(tmp_path, "b2_second.py", "b2", "a1")
    (tmp_path / "helpers.py").write_text("x = 1\n")  # not a revision file name: ignored
    graph = RevisionGraph(load_revisions(tmp_path))
    assert [r.name for r in graph] == ["a1_first", "b2_second"]
    assert graph.get("b2").description == "Revision b2."


def test_a_file_whose_revision_differs_from_its_name(tmp_path: Path) -> None:
    _write(tmp_path, "a1_first.py", "zz", None)
    with pytest.raises(MigrationGraphError, match="must start with it"):
        load_revisions(tmp_path)


def test_a_file_missing_functions(tmp_path: Path) -> None:
    (tmp_path / "a1_first.py").write_text("revision = 'a1'\ndown_revision = None\n")
    with pytest.raises(MigrationGraphError, match="upgrade, downgrade"):
        load_revisions(tmp_path)


def test_a_branch_in_files_is_two_heads(tmp_path: Path) -> None:
    _write(tmp_path, "a1_first.py", "a1", None)
    _write(tmp_path, "b2_left.py", "b2", "a1")
    _write(tmp_path, "c3_right.py", "c3", "a1")
    with pytest.raises(MultipleHeadsError):
        RevisionGraph(load_revisions(tmp_path))


def test_missing_folder_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        load_revisions(tmp_path / "nope")


def test_context_parameters_name_the_flag() -> None:
    ctx = MigrationContext(
        cluster=None,
        index="products",
        params={"dims": "384", "source_fields": "a, b", "force": "true"},
        revision="0001",
    )
    assert ctx.int_param("dims") == 384
    assert ctx.list_param("source_fields") == ("a", "b")
    assert ctx.bool_param("force", False) is True
    assert ctx.param("vector_field", "embedding") == "embedding"
    with pytest.raises(ConfigError, match="--model-id"):
        ctx.param("model_id")
    assert ctx.used == {"dims", "source_fields", "force", "vector_field", "model_id"}


def test_parameters_from_settings_yield_to_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    from migrations import MigrationSettings, Migrator

    monkeypatch.setenv("ESHYBRID_MIGRATE_PARAMS", '{"dims": "384", "model_id": "from-env"}')
    migrator = Migrator(
        None,
        "products",
        params={"model_id": "from-flag", "template": None},  # type: ignore[arg-type]
        settings=MigrationSettings(),
        graph=RevisionGraph([]),
    )
    assert migrator.params == {"dims": "384", "model_id": "from-flag"}
