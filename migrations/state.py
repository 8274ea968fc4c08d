"""Migration state and the migration lock, stored in the cluster.

- The current revision belongs to the index it describes: it is kept in that index's own
  ``_meta.eshybrid.migrations.current`` (of the concrete index the name resolves to). So
  it travels with the index when it is copied (a reindex into ``NAME-v<k>`` keeps the
  ``_meta``, so does migration 0002), and it goes with it: an index deleted and created
  again under the same name starts at base, whatever ran against the old one. (Binding a
  state document to the index UUID would lose the state at every alias swap.)
- ``state:<index>`` in ``eshybrid-migrations``: the history of what was applied under that
  name (with the parameters each revision ran with, so a downgrade gets them back, and the
  concrete index and UUID it ran on).
- ``lock:<index>`` in ``eshybrid-migrations``: created with ``op_type=create``, so exactly one runner gets it. It
  carries an owner and an expiry that the holder renews (heartbeat); a runner that finds
  an expired lock (its holder died) deletes it conditionally on its ``_seq_no`` and takes
  it, so two runners cannot both take over.

The system index name has no leading dot: dot-prefixed names are reserved for system
indices on recent Elasticsearch and OpenSearch.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from connector.cluster.client import Cluster, JsonDict
from connector.errors import (
    ClusterApiError,
    ConfigError,
    MigrationError,
    MigrationLockedError,
    MigrationLockLostError,
)
from mappings.system import migrations_index_body

__all__ = ["DEFAULT_MIGRATIONS_INDEX", "LockInfo", "MigrationLock", "MigrationStore", "migrations_index_body"]

logger = logging.getLogger(__name__)

DEFAULT_MIGRATIONS_INDEX = "eshybrid-migrations"


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _iso(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).isoformat(timespec="seconds")


class MigrationStore:
    """Reads and writes the migration state of target indices.

    The current revision is read from and written to the target's own ``_meta`` (see the
    module docstring); the history goes to ``state:<target>`` in the migrations index.
    """

    def __init__(self, cluster: Cluster, *, index: str = DEFAULT_MIGRATIONS_INDEX) -> None:
        self.cluster = cluster
        self.index = index

    def ensure_index(self) -> None:
        if self.cluster.index_exists(self.index):
            return
        try:
            self.cluster.create_index(self.index, migrations_index_body())
        except ClusterApiError as e:
            if e.error_type != "resource_already_exists_exception":
                raise

    def current(self, target: str) -> str | None:
        """The revision the index behind ``target`` is at (``None``: base, or no such index)."""
        found = self._target_mapping(target)
        if found is None:
            return None
        current = _migrations_meta(found[1], target).get("current")
        return None if current is None else str(current)

    def history(self, target: str) -> list[JsonDict]:
        """What was applied under the name ``target``, oldest first (every index that bore the name)."""
        if not self.cluster.index_exists(self.index):
            return []
        found = self.cluster.request("GET", f"/{self.index}/_doc/state:{target}", ignore=(404,))
        if found.status == 404 or not found.body.get("found"):
            return []
        return list(found.body["_source"].get("history") or [])

    def state(self, target: str) -> JsonDict:
        """``{"current": rev | None, "history": [...]}`` of a target (``current`` from the index's ``_meta``)."""
        return {"current": self.current(target), "history": self.history(target)}

    def record(
        self, target: str, *, current: str | None, revision: str, direction: str, owner: str, params: Mapping[str, Any]
    ) -> None:
        """Store the new current revision in the target's ``_meta`` and append to the history.

        Raises:
            MigrationError: ``current`` is a revision but ``target`` names no index (nothing to hold the state).
        """
        found = self._target_uuid(target)
        if found is None and current is not None:
            raise MigrationError(
                f"cannot record revision {current} for {target!r}: no such index (the revision state is kept "
                "in the index's own _meta)",
                index=target,
                revision=revision,
            )
        if found is not None:
            self._write_current(target, current)
        concrete, uuid = found or (None, None)
        history = self.history(target)
        history.append(
            {
                "revision": revision,
                "direction": direction,
                "owner": owner,
                "at": _now_iso(),
                "params": dict(params),
                "concrete_index": concrete,
                "index_uuid": uuid,
            }
        )
        body = {"type": "state", "index": target, "current": current, "history": history, "updated_at": _now_iso()}
        self.cluster.request("PUT", f"/{self.index}/_doc/state:{target}", body=body, params={"refresh": "true"})

    def params_for(self, target: str, revision: str) -> JsonDict:
        """The parameters ``revision`` was last applied with (for its downgrade)."""
        for entry in reversed(self.history(target)):
            if entry.get("revision") == revision and entry.get("direction") == "up":
                return dict(entry.get("params") or {})
        return {}

    def _target_mapping(self, target: str) -> tuple[str, JsonDict] | None:
        """``(concrete index, mapping)`` of the one index ``target`` names, or ``None`` when none exists."""
        found = self.cluster.request("GET", f"/{target}/_mapping", ignore=(404,))
        if found.status == 404:
            return None
        body: JsonDict = found.body
        if len(body) != 1:
            raise ConfigError(f"{target!r} resolves to {len(body)} indices; name one index", index=target)
        concrete, value = next(iter(body.items()))
        return str(concrete), dict(value.get("mappings") or {})

    def _target_uuid(self, target: str) -> tuple[str, str] | None:
        """``(concrete index, uuid)`` of the one index ``target`` names, or ``None`` when none exists."""
        found = self.cluster.request("GET", f"/{target}/_settings/index.uuid", ignore=(404,))
        if found.status == 404:
            return None
        body: JsonDict = found.body
        if len(body) != 1:
            raise ConfigError(f"{target!r} resolves to {len(body)} indices; name one index", index=target)
        concrete, value = next(iter(body.items()))
        return str(concrete), str(value["settings"]["index"]["uuid"])

    def _write_current(self, target: str, current: str | None) -> None:
        """Set ``_meta.eshybrid.migrations.current``, keeping every other ``_meta`` key (``PUT _mapping`` replaces it)."""
        found = self._target_mapping(target)
        if found is None:
            raise MigrationError(f"{target!r} disappeared while its migration state was written", index=target)
        concrete, mapping = found
        migrations = {**_migrations_meta(mapping, target), "current": current}
        meta = copy.deepcopy(dict(mapping.get("_meta") or {}))
        meta["eshybrid"] = {**dict(meta.get("eshybrid") or {}), "migrations": migrations}
        self.cluster.put_mapping(concrete, {"_meta": meta})


def _migrations_meta(mapping: Mapping[str, Any], target: str) -> JsonDict:
    """``_meta.eshybrid.migrations`` of a mapping (empty when absent)."""
    ours = (mapping.get("_meta") or {}).get("eshybrid") or {}
    migrations = ours.get("migrations") if isinstance(ours, Mapping) else None
    if not isinstance(ours, Mapping) or not isinstance(migrations, (Mapping, type(None))):
        raise MigrationError(
            f"the _meta of {target!r} has an 'eshybrid' entry that eshybrid did not write; fix or remove it",
            index=target,
        )
    return dict(migrations or {})


@dataclass(frozen=True)
class LockInfo:
    owner: str
    acquired_at: str
    expires_at_ms: int
    seq_no: int
    primary_term: int

    @property
    def expired(self) -> bool:
        return self.expires_at_ms < time.time() * 1000


class MigrationLock:
    """The cluster-wide lock of one target index (context manager).

    Args:
        cluster: the cluster.
        target: the index being migrated.
        owner: who holds it (``host:pid:nonce``), shown to the runner that waits.
        ttl_s: the lock expires this long after its last heartbeat (clocks of runners
            are assumed to agree within a fraction of it).
        wait_s: how long :meth:`acquire` waits for another runner before giving up.
        index: the migrations index.
    """

    def __init__(
        self,
        cluster: Cluster,
        target: str,
        *,
        owner: str,
        ttl_s: float = 60.0,
        wait_s: float = 0.0,
        poll_s: float = 1.0,
        index: str = DEFAULT_MIGRATIONS_INDEX,
    ) -> None:
        self.cluster = cluster
        self.target = target
        self.owner = owner
        self.ttl_s = ttl_s
        self.wait_s = wait_s
        self.poll_s = poll_s
        self.index = index
        self.doc_path = f"/{index}/_doc/lock:{target}"
        self._seq: tuple[int, int] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lost = False

    def __enter__(self) -> MigrationLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def _body(self) -> JsonDict:
        now = time.time()
        return {
            "type": "lock",
            "index": self.target,
            "owner": self.owner,
            "acquired_at": _now_iso(),
            "updated_at": _now_iso(),
            "expires_at_ms": int((now + self.ttl_s) * 1000),
        }

    def _try_create(self) -> bool:
        result = self.cluster.request(
            "PUT",
            f"/{self.index}/_create/lock:{self.target}",
            body=self._body(),
            params={"refresh": "true"},
            ignore=(409,),
        )
        if result.status == 409:
            return False
        self._seq = (int(result.body["_seq_no"]), int(result.body["_primary_term"]))
        return True

    def holder(self) -> LockInfo | None:
        found = self.cluster.request("GET", self.doc_path, ignore=(404,))
        if found.status == 404 or not found.body.get("found"):
            return None
        src = found.body["_source"]
        return LockInfo(
            owner=str(src.get("owner")),
            acquired_at=str(src.get("acquired_at")),
            expires_at_ms=int(src.get("expires_at_ms", 0)),
            seq_no=int(found.body["_seq_no"]),
            primary_term=int(found.body["_primary_term"]),
        )

    def _take_over(self, info: LockInfo) -> None:
        logger.warning(
            "migration lock of %s held by %s expired at %s: taking it over (its runner died)",
            self.target,
            info.owner,
            _iso(info.expires_at_ms / 1000),
        )
        # Conditional delete: of two runners taking over, only one deletes; both then race on create.
        self.cluster.request(
            "DELETE",
            self.doc_path,
            params={"if_seq_no": info.seq_no, "if_primary_term": info.primary_term, "refresh": "true"},
            ignore=(404, 409),
        )

    def acquire(self) -> None:
        """Take the lock, waiting up to ``wait_s``.

        Raises:
            MigrationLockedError: another live runner holds it (``owner``, ``expires_at`` say who/when).
        """
        deadline = time.monotonic() + self.wait_s
        announced = False
        while True:
            if self._try_create():
                self._start_heartbeat()
                logger.info("migration lock of %s taken by %s", self.target, self.owner)
                return
            info = self.holder()
            if info is None:
                continue
            if info.expired:
                self._take_over(info)
                continue
            if time.monotonic() >= deadline:
                raise MigrationLockedError(
                    f"index {self.target!r} is being migrated by {info.owner} (since {info.acquired_at}; its lock "
                    f"expires {_iso(info.expires_at_ms / 1000)} unless renewed). Wait for it to finish, or run "
                    "again with --lock-wait SECONDS to wait here",
                    index=self.target,
                    owner=info.owner,
                    expires_at_ms=info.expires_at_ms,
                )
            if not announced:
                logger.warning(
                    "index %s is being migrated by %s; waiting up to %.0fs", self.target, info.owner, self.wait_s
                )
                announced = True
            time.sleep(min(self.poll_s, max(0.05, deadline - time.monotonic())))

    def _start_heartbeat(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._heartbeat, name="migration-lock", daemon=True)
        self._thread.start()

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.ttl_s / 3):
            try:
                self.renew()
            except MigrationLockLostError as e:
                logger.error("%s", e)
                return
            except Exception as e:  # noqa: BLE001 - a missed beat is retried; expiry is far away
                logger.warning("could not renew the migration lock of %s: %s", self.target, e)

    def renew(self) -> None:
        """Push the expiry forward (only if we still hold the lock)."""
        assert self._seq is not None
        result = self.cluster.request(
            "PUT",
            self.doc_path,
            body=self._body(),
            ignore=(404, 409),
            params={"if_seq_no": self._seq[0], "if_primary_term": self._seq[1]},
        )
        if result.status in (404, 409):
            self.lost = True
            raise MigrationLockLostError(
                f"the migration lock of {self.target!r} was taken over while {self.owner} held it "
                "(a heartbeat was missed for longer than the lock ttl)",
                index=self.target,
            )
        self._seq = (int(result.body["_seq_no"]), int(result.body["_primary_term"]))

    def check(self) -> None:
        """Raise :class:`MigrationLockLostError` if the lock was lost (called between revisions)."""
        if self.lost:
            raise MigrationLockLostError(f"the migration lock of {self.target!r} was lost; stopping", index=self.target)

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._seq is None or self.lost:
            return
        self.cluster.request(
            "DELETE",
            self.doc_path,
            ignore=(404, 409),
            params={"if_seq_no": self._seq[0], "if_primary_term": self._seq[1], "refresh": "true"},
        )
        self._seq = None
