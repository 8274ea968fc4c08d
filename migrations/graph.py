"""Revisions and the revision graph (pure: no cluster needed).

A revision is a file ``versions/<rev>_<slug>.py`` defining ``revision``,
``down_revision`` (``None`` for the first), ``upgrade(ctx)`` and ``downgrade(ctx)``,
optionally ``requires`` (the ctx parameters it needs) and a docstring (its description).
The graph must be one straight line: duplicates, a missing ``down_revision``, a cycle,
two bases or two heads are typed errors, raised when the graph is built.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from connector.errors import (
    ConfigError,
    MigrationCycleError,
    MigrationGraphError,
    MissingRevisionError,
    MultipleHeadsError,
)

__all__ = ["DEFAULT_VERSIONS_DIR", "Revision", "RevisionGraph", "load_revisions"]

DEFAULT_VERSIONS_DIR = Path(__file__).resolve().parent / "versions"

_FILE_RE = re.compile(r"^(?P<rev>[A-Za-z0-9]+)_(?P<slug>[A-Za-z0-9_]+)\.py$")

MigrationFn = Callable[[Any], None]


@dataclass(frozen=True)
class Revision:
    """One migration step."""

    revision: str
    down_revision: str | None
    upgrade: MigrationFn
    downgrade: MigrationFn
    description: str = ""
    slug: str = ""
    requires: tuple[str, ...] = ()
    path: str | None = field(default=None, compare=False)

    @property
    def name(self) -> str:
        return f"{self.revision}_{self.slug}" if self.slug else self.revision


def _from_module(module: ModuleType, *, slug: str, path: str) -> Revision:
    missing = [name for name in ("revision", "down_revision", "upgrade", "downgrade") if not hasattr(module, name)]
    if missing:
        raise MigrationGraphError(f"{path} does not define {', '.join(missing)}", path=path)
    doc = (module.__doc__ or "").strip()
    return Revision(
        revision=str(module.revision),
        down_revision=None if module.down_revision is None else str(module.down_revision),
        upgrade=module.upgrade,
        downgrade=module.downgrade,
        description=doc.splitlines()[0] if doc else "",
        slug=slug,
        requires=tuple(getattr(module, "requires", ())),
        path=path,
    )


def load_revisions(directory: str | Path = DEFAULT_VERSIONS_DIR) -> list[Revision]:
    """Import every ``<rev>_<slug>.py`` of ``directory`` (files not named so are ignored).

    Raises:
        ConfigError: the directory does not exist.
        MigrationGraphError: a file's ``revision`` differs from its file name, or misses a name.
    """
    folder = Path(directory)
    if not folder.is_dir():
        raise ConfigError(f"migration versions folder {str(folder)!r} does not exist", field="versions_dir")
    revisions = []
    for path in sorted(folder.glob("*.py")):
        match = _FILE_RE.match(path.name)
        if match is None:
            continue
        spec = importlib.util.spec_from_file_location(f"eshybrid_migration_{path.stem}", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        revision = _from_module(module, slug=match.group("slug"), path=str(path))
        if revision.revision != match.group("rev"):
            raise MigrationGraphError(
                f"{path.name} declares revision {revision.revision!r}; the file name must start with it",
                path=str(path),
                revision=revision.revision,
            )
        revisions.append(revision)
    return revisions


class RevisionGraph:
    """A validated straight line of revisions, base first.

    Raises (from the constructor):
        MigrationGraphError: a revision id defined twice, or more than one base.
        MissingRevisionError: a ``down_revision`` that no revision defines.
        MigrationCycleError: following ``down_revision`` comes back to a revision.
        MultipleHeadsError: more than one revision has no successor (a branch).
    """

    def __init__(self, revisions: Iterable[Revision]) -> None:
        self._by_id: dict[str, Revision] = {}
        for rev in revisions:
            if rev.revision in self._by_id:
                other = self._by_id[rev.revision]
                raise MigrationGraphError(
                    f"revision {rev.revision!r} is defined twice ({other.path} and {rev.path})", revision=rev.revision
                )
            self._by_id[rev.revision] = rev
        self._check_missing()
        self._check_cycles()
        self.ordered: list[Revision] = self._order()

    def _check_missing(self) -> None:
        for rev in self._by_id.values():
            if rev.down_revision is not None and rev.down_revision not in self._by_id:
                raise MissingRevisionError(
                    f"revision {rev.revision!r} ({rev.path}) names down_revision {rev.down_revision!r}, "
                    "which no revision defines",
                    revision=rev.revision,
                    missing=rev.down_revision,
                )

    def _check_cycles(self) -> None:
        for start in self._by_id.values():
            seen = [start.revision]
            current = start.down_revision
            while current is not None:
                if current in seen:
                    cycle = seen[seen.index(current) :] + [current]
                    raise MigrationCycleError(f"the revisions form a cycle: {' -> '.join(cycle)}", cycle=cycle)
                seen.append(current)
                current = self._by_id[current].down_revision

    def _order(self) -> list[Revision]:
        if not self._by_id:
            return []
        bases = sorted(r.revision for r in self._by_id.values() if r.down_revision is None)
        if len(bases) != 1:
            raise MigrationGraphError(
                f"the revisions have {len(bases)} bases ({', '.join(bases)}); "
                "exactly one may have down_revision = None",
                bases=bases,
            )
        children: dict[str, list[str]] = {}
        for rev in self._by_id.values():
            if rev.down_revision is not None:
                children.setdefault(rev.down_revision, []).append(rev.revision)
        heads = sorted(r for r in self._by_id if r not in children)
        if len(heads) != 1:
            raise MultipleHeadsError(
                f"the revisions have {len(heads)} heads ({', '.join(heads)}); point one at the other "
                "with down_revision so they form one line",
                heads=heads,
            )
        ordered = [self._by_id[bases[0]]]
        while ordered[-1].revision in children:
            ordered.append(self._by_id[children[ordered[-1].revision][0]])
        return ordered

    # -- queries ----------------------------------------------------------------------
    @property
    def head(self) -> str | None:
        return self.ordered[-1].revision if self.ordered else None

    @property
    def base(self) -> str | None:
        return self.ordered[0].revision if self.ordered else None

    def get(self, revision: str) -> Revision:
        try:
            return self._by_id[revision]
        except KeyError:
            raise MissingRevisionError(
                f"no revision {revision!r}; known: {', '.join(self._by_id) or 'none'}", revision=revision
            ) from None

    def resolve(self, target: str | None) -> str | None:
        """``head``, ``base`` (= before the first revision: ``None``), or a revision id / unique prefix."""
        if target is None or target == "base":
            return None
        if target == "head":
            return self.head
        if target in self._by_id:
            return target
        matches = [r.revision for r in self.ordered if r.name.startswith(target) or r.revision.startswith(target)]
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise ConfigError(f"{target!r} matches several revisions: {', '.join(matches)}", field="revision")
        raise MissingRevisionError(
            f"no revision {target!r}; known: {', '.join(self._by_id) or 'none'}", revision=target
        )

    def position(self, revision: str | None) -> int:
        """Index after which ``revision`` stands (-1 for base)."""
        if revision is None:
            return -1
        return self.ordered.index(self.get(revision))

    def upgrade_path(self, current: str | None, target: str | None) -> list[Revision]:
        """Revisions to apply, in order, to go from ``current`` up to ``target``."""
        start, end = self.position(current), self.position(target)
        if end < start:
            raise ConfigError(
                f"{target or 'base'} is below the current revision {current}; use downgrade", field="revision"
            )
        return self.ordered[start + 1 : end + 1]

    def downgrade_path(self, current: str | None, target: str | None) -> list[Revision]:
        """Revisions to undo, newest first, to go from ``current`` down to ``target``."""
        start, end = self.position(current), self.position(target)
        if end > start:
            raise ConfigError(
                f"{target} is above the current revision {current or 'base'}; use upgrade", field="revision"
            )
        return list(reversed(self.ordered[end + 1 : start + 1]))

    def __len__(self) -> int:
        return len(self.ordered)

    def __iter__(self) -> Iterator[Revision]:
        return iter(self.ordered)


def describe(revisions: Sequence[Revision]) -> list[str]:
    return [f"{r.name}: {r.description}" for r in revisions]
