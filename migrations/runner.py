"""The migration commands as plain functions: ``status``, ``plan``, ``upgrade``, ``downgrade``, ``stamp``.

``upgrade`` / ``downgrade`` / ``stamp`` hold the cluster lock of the target while they run
and read the current revision only once they hold it, so two runners started together
never apply the same revision: the second waits (``lock_wait_s``) and then finds nothing
to do, or gives up with :class:`~connector.errors.MigrationLockedError`.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from connector.cluster.client import JsonDict
from connector.cluster.detect import ClusterLike, as_cluster
from connector.errors import ConfigError, MigrationError
from migrations.context import MigrationContext
from migrations.graph import DEFAULT_VERSIONS_DIR, Revision, RevisionGraph, load_revisions
from migrations.state import DEFAULT_MIGRATIONS_INDEX, MigrationLock, MigrationStore

__all__ = ["MigrationSettings", "Migrator", "PlanStep", "Status"]

logger = logging.getLogger(__name__)

Direction = Literal["up", "down"]


class MigrationSettings(BaseSettings):
    """Where state lives and how the lock behaves (env prefix ``ESHYBRID_MIGRATE_``)."""

    model_config = SettingsConfigDict(env_prefix="ESHYBRID_MIGRATE_", extra="forbid", frozen=True)

    state_index: str = Field(DEFAULT_MIGRATIONS_INDEX, min_length=1, description="index of state and locks")
    lock_ttl_s: float = Field(60.0, ge=1, le=3600, description="a lock not renewed for this long can be taken over")
    lock_wait_s: float = Field(0.0, ge=0, le=86_400, description="how long to wait for another runner's lock")
    versions_dir: str = Field(str(DEFAULT_VERSIONS_DIR), description="folder of revision files")
    params: dict[str, str] = Field(
        default_factory=dict, description='default revision parameters (JSON: {"dims": "384", ...}); flags win'
    )


@dataclass(frozen=True)
class PlanStep:
    """One revision a command would run."""

    revision: str
    name: str
    direction: Direction
    description: str
    missing_params: tuple[str, ...] = ()


@dataclass
class Status:
    index: str
    current: str | None
    head: str | None
    pending: list[str]
    history: list[JsonDict] = field(default_factory=list)

    def as_dict(self) -> JsonDict:
        return {
            "index": self.index,
            "current": self.current,
            "head": self.head,
            "pending": self.pending,
            "up_to_date": not self.pending,
            "history": self.history,
        }


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Migrator:
    """Runs the revisions of one folder against one target index.

    Args:
        cluster: the cluster.
        index: the target (index or alias) as the user names it.
        params: parameters for the revisions (CLI flags / settings).
        settings: state index, lock ttl/wait, versions folder.
        graph: a graph to use instead of loading ``settings.versions_dir``.
        log: where progress lines go.
    """

    def __init__(
        self,
        cluster: ClusterLike,
        index: str,
        *,
        params: Mapping[str, Any] | None = None,
        settings: MigrationSettings | None = None,
        graph: RevisionGraph | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.cluster = as_cluster(cluster)  # ours, or the app's official client wrapped
        self.index = index
        self.settings = settings or MigrationSettings()
        merged = {**self.settings.params, **dict(params or {})}
        self.params = {k: v for k, v in merged.items() if v is not None}
        self.graph = graph or RevisionGraph(load_revisions(Path(self.settings.versions_dir)))
        self.store = MigrationStore(self.cluster, index=self.settings.state_index)
        self.log = log or (lambda line: logger.info("%s", line))
        self.owner = _owner()

    # -- read-only ------------------------------------------------------------------------
    def current(self) -> str | None:
        if not self.cluster.index_exists(self.store.index):
            return None
        current = self.store.state(self.index).get("current")
        return None if current is None else str(current)

    def status(self) -> Status:
        state = self.store.state(self.index) if self.cluster.index_exists(self.store.index) else {}
        current = state.get("current")
        pending = [r.revision for r in self.graph.upgrade_path(current, self.graph.head)]
        return Status(
            index=self.index,
            current=current,
            head=self.graph.head,
            pending=pending,
            history=list(state.get("history") or []),
        )

    def plan(self, target: str = "head", *, direction: Direction = "up") -> list[PlanStep]:
        """What ``upgrade``/``downgrade`` to ``target`` would run (a dry run: nothing changes)."""
        current = self.current()
        resolved = self.graph.resolve(target)
        if direction == "up":
            path = self.graph.upgrade_path(current, resolved)
            return [self._step(r, "up", self.params) for r in path]
        path = self.graph.downgrade_path(current, resolved)
        return [self._step(r, "down", {**self.store.params_for(self.index, r.revision), **self.params}) for r in path]

    def _step(self, rev: Revision, direction: Direction, params: Mapping[str, Any]) -> PlanStep:
        missing = tuple(p for p in rev.requires if params.get(p) in (None, "")) if direction == "up" else ()
        return PlanStep(
            revision=rev.revision,
            name=rev.name,
            direction=direction,
            description=rev.description,
            missing_params=missing,
        )

    # -- changing commands ----------------------------------------------------------------
    def _lock(self) -> MigrationLock:
        self.store.ensure_index()
        return MigrationLock(
            self.cluster,
            self.index,
            owner=self.owner,
            ttl_s=self.settings.lock_ttl_s,
            wait_s=self.settings.lock_wait_s,
            index=self.store.index,
        )

    def upgrade(self, target: str = "head") -> list[str]:
        """Apply the revisions up to ``target``; returns those applied (empty: already there).

        Raises:
            ConfigError: a revision lacks a parameter (checked before anything runs).
            MigrationLockedError: another runner holds the lock past ``lock_wait_s``.
            MigrationError: a revision failed (the state records the ones before it).
        """
        resolved = self.graph.resolve(target)
        with self._lock() as lock:
            current = self.current()
            path = self.graph.upgrade_path(current, resolved)
            missing = [(r.name, p) for r in path for p in r.requires if self.params.get(p) in (None, "")]
            if missing:
                raise ConfigError(
                    "missing parameters: "
                    + "; ".join(f"{name} needs {p!r}" for name, p in missing)
                    + ". Pass them, or stop earlier with --to",
                    field=missing[0][1],
                )
            if not path:
                self.log(f"{self.index} is at {current or 'base'}: nothing to apply")
            applied = []
            for rev in path:
                lock.check()
                self._apply(rev, "up", dict(self.params), new_current=rev.revision)
                applied.append(rev.revision)
            return applied

    def downgrade(self, target: str) -> list[str]:
        """Undo revisions down to ``target`` (``base`` undoes all); returns those undone."""
        resolved = self.graph.resolve(target)
        with self._lock() as lock:
            path = self.graph.downgrade_path(self.current(), resolved)
            if not path:
                self.log(f"{self.index} is already at {target}: nothing to undo")
            undone = []
            for rev in path:
                lock.check()
                params = {**self.store.params_for(self.index, rev.revision), **self.params}
                self._apply(rev, "down", params, new_current=rev.down_revision)
                undone.append(rev.revision)
            return undone

    def stamp(self, revision: str) -> None:
        """Record ``revision`` as current without running anything (after a manual change)."""
        resolved = self.graph.resolve(revision)
        with self._lock():
            self.store.record(
                self.index,
                current=resolved,
                revision=resolved or "base",
                direction="stamp",
                owner=self.owner,
                params=self.params,
            )
            self.log(f"stamped {self.index} at {resolved or 'base'}")

    def _apply(self, rev: Revision, direction: Direction, params: dict[str, Any], *, new_current: str | None) -> None:
        self.log(f"{'applying' if direction == 'up' else 'undoing'} {rev.name}: {rev.description}")
        ctx = MigrationContext(
            cluster=self.cluster, index=self.index, params=params, revision=rev.revision, log=self.log
        )
        try:
            (rev.upgrade if direction == "up" else rev.downgrade)(ctx)
        except MigrationError:
            raise
        except ConfigError:
            raise
        except Exception as e:
            raise MigrationError(f"{rev.name} {direction} failed: {e}", revision=rev.revision) from e
        self.store.record(
            self.index,
            current=new_current,
            revision=rev.revision,
            direction=direction,
            owner=self.owner,
            params={k: params[k] for k in sorted(ctx.used) if k in params},
        )
