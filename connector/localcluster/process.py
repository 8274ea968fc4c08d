"""Local Elasticsearch / OpenSearch clusters for development and tests (no Docker).

A server comes from Maven Central (``integ-test-zip`` distribution, plus
OpenSearch plugin zips), is unpacked once under ``$ESHYBRID_HOME/dist`` and
runs detached as an unprivileged user, bound to 127.0.0.1, single-node, with a
small heap. Each running cluster has a folder ``$ESHYBRID_HOME/clusters/<name>``
holding its config, data, logs and ``state.json``.

Example::

    from connector.localcluster import start_cluster, stop_cluster

    cluster = start_cluster(flavor="opensearch", port=0, plugins=("knn", "neural"))
    print(cluster.url)
    stop_cluster(cluster.name, remove_data=True)
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from connector.errors import LocalClusterError
from connector.localcluster.distribution import (
    Flavor,
    JavaHome,
    choose_java,
    default_java_search_dirs,
    dist_dir_name,
    ensure_distribution,
    find_java_homes,
    ordered_plugins,
)

__all__ = [
    "DEFAULT_VERSIONS",
    "DEFAULT_FLAVOR_VERSIONS",
    "DEFAULT_OPENSEARCH_PLUGINS",
    "Flavor",
    "LocalClusterSettings",
    "LocalCluster",
    "ClusterStatus",
    "start_cluster",
    "stop_cluster",
    "stop_all_clusters",
    "cluster_status",
    "server_version",
    "fetch_distribution",
    "select_java",
    "render_node_config",
    "render_jvm_options",
]

logger = logging.getLogger(__name__)

# The four servers the test suite runs against: key -> (flavor, version).
DEFAULT_VERSIONS: Mapping[str, tuple[Flavor, str]] = {
    "es9": ("elasticsearch", "9.5.4"),
    "es8": ("elasticsearch", "8.19.9"),
    "os3": ("opensearch", "3.6.0"),
    "os2": ("opensearch", "2.19.1"),
}
DEFAULT_FLAVOR_VERSIONS: Mapping[Flavor, str] = {"elasticsearch": "9.5.4", "opensearch": "3.6.0"}
DEFAULT_OPENSEARCH_PLUGINS: tuple[str, ...] = ("knn",)

_STATE_FILE = "state.json"
_LOCAL_HOST = "127.0.0.1"


class LocalClusterSettings(BaseSettings):
    """Where local clusters live and how they run (env prefix ``ESHYBRID_``)."""

    model_config = SettingsConfigDict(env_prefix="ESHYBRID_", extra="forbid")

    home: Path = Field(
        default=Path("/var/tmp/eshybrid"),
        description="Cache of downloads, unpacked distributions and cluster folders; must be "
        "traversable by the unprivileged server user (so not under /root).",
    )
    java_home: Path | None = Field(default=None, description="Force this JDK instead of choosing one.")
    jvm_dir: Path = Field(default=Path("/usr/lib/jvm"), description="Where installed JDKs are looked for.")
    mvn: str = Field(default="mvn", description="The Maven executable used to fetch distributions.")
    cluster_user: str = Field(
        default="eshybrid",
        description="Unprivileged system user the servers run as when started by root ('' = never switch).",
    )
    cluster_heap_mb: int = Field(default=512, ge=128, le=65536, description="JVM heap (-Xms = -Xmx) per server.")
    cluster_startup_timeout_s: float = Field(
        default=300.0, gt=0, le=3600, description="How long to wait for yellow/green health."
    )
    cluster_stop_timeout_s: float = Field(
        default=60.0, gt=0, le=600, description="How long to wait after SIGTERM before SIGKILL."
    )


@dataclass(frozen=True)
class LocalCluster:
    """A started local cluster (what ``state.json`` holds)."""

    name: str
    flavor: Flavor
    version: str
    url: str
    port: int
    pid: int
    plugins: tuple[str, ...]
    java_home: str
    java_major: int
    cluster_dir: str
    started_at: float

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> LocalCluster:
        raw = json.loads(text)
        raw["plugins"] = tuple(raw.get("plugins", ()))
        return cls(**raw)


@dataclass(frozen=True)
class ClusterStatus:
    """A cluster's state file plus what a probe found."""

    cluster: LocalCluster
    running: bool
    answers: bool
    server_version: str | None = None
    health: str | None = None
    problems: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class _NodeSpec:
    """The node :func:`start_cluster` was asked for, defaults resolved (``port`` 0: any free port)."""

    flavor: Flavor
    version: str
    name: str
    port: int
    plugins: tuple[str, ...]
    heap_mb: int


# --------------------------------------------------------------------------- pure parts


def render_node_config(
    flavor: Flavor,
    *,
    name: str,
    port: int,
    data_dir: Path,
    logs_dir: Path,
) -> dict[str, str | int | bool]:
    """The ``elasticsearch.yml`` / ``opensearch.yml`` settings of a local single node.

    Only settings that exist in the integ-test distributions: x-pack-security is
    the one security module there (ES); OpenSearch's integ-test zip has no
    security plugin, so no ``plugins.security.*`` key (unknown keys fail startup).
    """
    config: dict[str, str | int | bool] = {
        "cluster.name": f"eshybrid-{name}",
        "node.name": name,
        "network.host": _LOCAL_HOST,
        "http.port": port,
        "discovery.type": "single-node",
        "path.data": str(data_dir),
        "path.logs": str(logs_dir),
        # A nearly full dev disk must not turn indices read-only mid-test.
        "cluster.routing.allocation.disk.threshold_enabled": False,
    }
    if flavor == "elasticsearch":
        config["xpack.security.enabled"] = False
    return config


def render_yaml(config: Mapping[str, str | int | bool]) -> str:
    """Flat ``key: value`` YAML (keys are dotted setting names)."""
    lines = ["# written by eshybrid (connector.localcluster); regenerated on every start"]
    for key, value in config.items():
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, int):
            text = str(value)
        else:
            text = json.dumps(value)
        lines.append(f"{key}: {text}")
    return "\n".join(lines) + "\n"


def render_jvm_options(text: str, *, logs_dir: Path, data_dir: Path) -> str:
    """The distribution's ``jvm.options`` with relative file paths made absolute.

    The stock file writes GC logs, heap dumps and crash files relative to the
    server's working directory, which is the (read-only, shared) distribution.
    """
    out = []
    for line in text.splitlines():
        line = line.replace("file=logs/", f"file={logs_dir}/")
        line = line.replace("-XX:HeapDumpPath=data", f"-XX:HeapDumpPath={data_dir}")
        line = line.replace("-XX:ErrorFile=logs/", f"-XX:ErrorFile={logs_dir}/")
        out.append(line)
    return "\n".join(out) + "\n"


def server_env(
    flavor: Flavor,
    *,
    java: JavaHome,
    config_dir: Path,
    tmp_dir: Path,
    heap_mb: int,
    base: Mapping[str, str],
    library_path: Path | None = None,
) -> dict[str, str]:
    """Environment for the server process (JDK, config folder, heap, native library folder)."""
    prefix = "ES" if flavor == "elasticsearch" else "OPENSEARCH"
    env = {k: v for k, v in base.items() if not k.startswith(("ES_", "OPENSEARCH_"))}
    env.pop("JAVA_TOOL_OPTIONS", None)
    env["JAVA_HOME"] = str(java.path)
    env[f"{prefix}_JAVA_HOME"] = str(java.path)
    env[f"{prefix}_PATH_CONF"] = str(config_dir)
    env[f"{prefix}_TMPDIR"] = str(tmp_dir)
    java_opts = f"-Xms{heap_mb}m -Xmx{heap_mb}m"
    if library_path is not None:
        java_opts += f" -Djava.library.path={library_path}"
    env[f"{prefix}_JAVA_OPTS"] = java_opts
    return env


# --------------------------------------------------------------------------- helpers


def _settings(settings: LocalClusterSettings | None) -> LocalClusterSettings:
    return settings if settings is not None else LocalClusterSettings()


def _clusters_dir(settings: LocalClusterSettings) -> Path:
    return settings.home / "clusters"


def _name_lock(settings: LocalClusterSettings, name: str) -> Path:
    """The lock file that serialises starting (and reusing) the cluster called ``name``."""
    return _clusters_dir(settings) / f".{name}.lock"


def _read_state(cluster_dir: Path) -> LocalCluster | None:
    try:
        return LocalCluster.from_json((cluster_dir / _STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError):
        return None


def _group_alive(pgid: int) -> bool:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pgid, os.WNOHANG)
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _get_json(url: str, *, timeout_s: float = 2.0) -> dict[str, object] | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:  # noqa: S310 - local http only
            body = json.loads(resp.read().decode("utf-8"))
    except (OSError, ValueError, urllib.error.URLError):
        return None
    return body if isinstance(body, dict) else None


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Like the servers themselves: TIME_WAIT leftovers do not block a bind, a listener does.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((_LOCAL_HOST, port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((_LOCAL_HOST, 0))
        return int(sock.getsockname()[1])


def _log_tail(cluster_dir: Path, *, lines: int = 25) -> str:
    parts = []
    for path in [cluster_dir / "console.log", *sorted((cluster_dir / "logs").glob("eshybrid-*.log"))]:
        with contextlib.suppress(OSError):
            text = path.read_text(encoding="utf-8", errors="replace").rstrip().splitlines()
            if text:
                parts.append(f"--- {path} (last {min(lines, len(text))} lines)\n" + "\n".join(text[-lines:]))
    return "\n".join(parts) or "(no log output)"


def _server_user(settings: LocalClusterSettings) -> str | None:
    """The user to run as, created if missing; None when we are not root."""
    if os.geteuid() != 0 or not settings.cluster_user:
        return None
    user = settings.cluster_user
    try:
        pwd.getpwnam(user)
    except KeyError:
        logger.info("creating system user %s", user)
        proc = subprocess.run(
            ["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
             "--shell", "/usr/sbin/nologin", user],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if proc.returncode not in (0, 9):  # 9: created meanwhile by another process
            raise LocalClusterError(  # noqa: B904 - the KeyError only means "create it"
                f"could not create user {user!r} (useradd exit {proc.returncode}): {proc.stderr.strip()}. "
                "Servers refuse to run as root; create the user or set ESHYBRID_CLUSTER_USER.",
                user=user,
            )
    return user


def _chown_tree(root: Path, user: str) -> None:
    entry = pwd.getpwnam(user)
    for dirpath, _dirnames, filenames in os.walk(root):
        os.chown(dirpath, entry.pw_uid, entry.pw_gid)
        for name in filenames:
            os.chown(os.path.join(dirpath, name), entry.pw_uid, entry.pw_gid, follow_symlinks=False)


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _prepare_home(settings: LocalClusterSettings) -> None:
    for sub in (settings.home, settings.home / "clusters"):
        sub.mkdir(parents=True, exist_ok=True)
        # The server user must traverse the home to reach its cluster folder.
        with contextlib.suppress(PermissionError):
            os.chmod(sub, 0o755)


# --------------------------------------------------------------------------- public API


def select_java(flavor: Flavor, version: str, *, settings: LocalClusterSettings | None = None) -> JavaHome:
    """The JDK a server version will run with (``ESHYBRID_JAVA_HOME`` wins).

    Raises:
        LocalClusterError: no installed JDK fits the version.
    """
    s = _settings(settings)
    homes = find_java_homes(default_java_search_dirs(s.jvm_dir))
    return choose_java(flavor, version, homes=homes, override=s.java_home)


def fetch_distribution(
    *,
    flavor: Flavor,
    version: str | None = None,
    plugins: Sequence[str] = (),
    settings: LocalClusterSettings | None = None,
) -> Path:
    """Download (with ``mvn``) and unpack a server, plugins installed; cached.

    Args:
        flavor: ``elasticsearch`` or ``opensearch``.
        version: server version; the flavor's default when None.
        plugins: OpenSearch plugins (``knn``, ``neural``, ``ml``, ``job-scheduler``).
        settings: defaults to :class:`LocalClusterSettings` from env.

    Returns:
        The folder of the unpacked distribution.

    Raises:
        LocalClusterError: ``mvn`` or a JDK is missing, or the download failed.
    """
    s = _settings(settings)
    version = version or DEFAULT_FLAVOR_VERSIONS[flavor]
    ordered = ordered_plugins(plugins)
    java = select_java(flavor, version, settings=s)
    _prepare_home(s)
    lock = s.home / "dist" / f".{dist_dir_name(flavor, version, ordered)}.lock"
    with _file_lock(lock):
        return ensure_distribution(flavor, version, plugins=ordered, java=java, home=s.home, mvn=s.mvn)


def start_cluster(
    *,
    flavor: Flavor,
    version: str | None = None,
    port: int = 9200,
    name: str | None = None,
    plugins: Sequence[str] | None = None,
    heap_mb: int | None = None,
    settings: LocalClusterSettings | None = None,
) -> LocalCluster:
    """Start a detached single-node cluster and wait until it is yellow or green.

    Starting a name that already runs (same flavor and version) returns it.

    Args:
        flavor: ``elasticsearch`` or ``opensearch``.
        version: server version; the flavor's default (9.5.4 / 3.6.0) when None.
        port: HTTP port on 127.0.0.1; 0 picks a free one.
        name: cluster name (folder under ``$ESHYBRID_HOME/clusters``); ``<flavor>-<version>`` when None.
        plugins: OpenSearch plugins; ``("knn",)`` when None. Elasticsearch takes none.
        heap_mb: JVM heap; ``ESHYBRID_CLUSTER_HEAP_MB`` (512) when None.
        settings: defaults to :class:`LocalClusterSettings` from env.

    Returns:
        The running cluster (its ``url`` is ``http://127.0.0.1:<port>``).

    Raises:
        LocalClusterError: port in use, no suitable JDK, ``mvn`` missing, download
            failed, the server died or did not get healthy in time (log tail attached).
    """
    s = _settings(settings)
    if flavor not in DEFAULT_FLAVOR_VERSIONS:
        raise LocalClusterError(f"unknown flavor {flavor!r}; use elasticsearch or opensearch", flavor=flavor)
    version = version or DEFAULT_FLAVOR_VERSIONS[flavor]
    name = name or f"{flavor}-{version}"
    if plugins is None:
        plugins = DEFAULT_OPENSEARCH_PLUGINS if flavor == "opensearch" else ()
    spec = _NodeSpec(
        flavor=flavor,
        version=version,
        name=name,
        port=port,
        plugins=ordered_plugins(plugins),
        heap_mb=heap_mb if heap_mb is not None else s.cluster_heap_mb,
    )
    _prepare_home(s)
    cluster_dir = _clusters_dir(s) / name
    name_lock = _name_lock(s, name)
    try:
        cluster = _start_locked(s, spec, cluster_dir=cluster_dir, name_lock=name_lock)
    except LocalClusterError:
        if not cluster_dir.exists():  # refused before anything was made: leave no lock file behind
            with contextlib.suppress(FileNotFoundError):
                name_lock.unlink()
        raise
    return cluster


def _start_locked(s: LocalClusterSettings, spec: _NodeSpec, *, cluster_dir: Path, name_lock: Path) -> LocalCluster:
    """Under the name's lock: reuse a running cluster or check the port, fetch, launch; then wait."""
    name = spec.name
    with _file_lock(name_lock):
        existing = _read_state(cluster_dir)
        if existing is not None and _group_alive(existing.pid):
            if (existing.flavor, existing.version) == (spec.flavor, spec.version) and spec.port in (0, existing.port):
                logger.info("cluster %s already runs at %s", name, existing.url)
                return existing
            raise LocalClusterError(
                f"cluster {name!r} already runs ({existing.flavor} {existing.version} at {existing.url}); "
                f"stop it first with `eshybrid cluster down --name {name}` or pick another --name",
                name=name,
                url=existing.url,
            )
        port = _free_port() if spec.port == 0 else spec.port
        if not _port_free(port):
            raise LocalClusterError(
                f"port {port} on {_LOCAL_HOST} is already in use; pick another with --port "
                "(0 = any free port) or stop what listens there (`eshybrid cluster status`)",
                port=port,
                name=name,
            )
        java = select_java(spec.flavor, spec.version, settings=s)
        dist = fetch_distribution(flavor=spec.flavor, version=spec.version, plugins=spec.plugins, settings=s)
        cluster = _launch(s, replace(spec, port=port), java=java, dist=dist, cluster_dir=cluster_dir)
    _wait_healthy(cluster, s)
    return cluster


def _launch(s: LocalClusterSettings, spec: _NodeSpec, *, java: JavaHome, dist: Path, cluster_dir: Path) -> LocalCluster:
    """Write the node's config and start the server detached (new session)."""
    flavor, version, port = spec.flavor, spec.version, spec.port
    config_dir, data_dir, logs_dir, tmp_dir = (cluster_dir / d for d in ("config", "data", "logs", "tmp"))
    shutil.rmtree(config_dir, ignore_errors=True)
    shutil.copytree(dist / "config", config_dir)
    for d in (data_dir, logs_dir, tmp_dir):
        d.mkdir(parents=True, exist_ok=True)
    node_config = render_node_config(flavor, name=spec.name, port=port, data_dir=data_dir, logs_dir=logs_dir)
    (config_dir / f"{flavor}.yml").write_text(render_yaml(node_config), encoding="utf-8")
    jvm_options = config_dir / "jvm.options"
    jvm_options.write_text(
        render_jvm_options(jvm_options.read_text(encoding="utf-8"), logs_dir=logs_dir, data_dir=data_dir),
        encoding="utf-8",
    )
    user = _server_user(s)
    if user is not None:
        _chown_tree(cluster_dir, user)
    cmd = [str(dist / "bin" / flavor)]
    if user is not None:
        cmd = ["runuser", "-u", user, "--", *cmd]
    knn_lib = dist / "plugins" / "opensearch-knn" / "lib"  # the k-NN stand-in libraries, if any
    env = server_env(
        flavor, java=java, config_dir=config_dir, tmp_dir=tmp_dir, heap_mb=spec.heap_mb, base=os.environ,
        library_path=knn_lib if knn_lib.is_dir() else None,
    )  # fmt: skip
    logger.info("starting %s %s as %s on port %s (java %s)", flavor, version, user or "self", port, java.major)
    with open(cluster_dir / "console.log", "wb") as console:
        proc = subprocess.Popen(  # noqa: S603 - fixed argv
            cmd,
            cwd=str(dist),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=console,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # survives the CLI; its own process group to kill
        )
    cluster = LocalCluster(
        name=spec.name, flavor=flavor, version=version, url=f"http://{_LOCAL_HOST}:{port}", port=port,
        pid=proc.pid, plugins=spec.plugins, java_home=str(java.path), java_major=java.major,
        cluster_dir=str(cluster_dir), started_at=time.time(),
    )  # fmt: skip
    (cluster_dir / _STATE_FILE).write_text(cluster.to_json(), encoding="utf-8")
    return cluster


def _wait_healthy(cluster: LocalCluster, s: LocalClusterSettings) -> None:
    deadline = time.monotonic() + s.cluster_startup_timeout_s
    settled_red = 0
    while time.monotonic() < deadline:
        if not _group_alive(cluster.pid):
            raise _startup_failed(cluster, f"{cluster.flavor} {cluster.version} ({cluster.name}) exited during startup")
        health = _get_json(f"{cluster.url}/_cluster/health")
        if health is not None and health.get("status") in ("yellow", "green"):
            logger.info("%s is %s at %s", cluster.name, health["status"], cluster.url)
            return
        # A restarted cluster may keep an index that can never recover (e.g. a faiss
        # field on the k-NN stand-ins): once recovery has settled, red is an answer too.
        settled_red = settled_red + 1 if health is not None and _red_settled(health) else 0
        if settled_red >= 5:
            logger.warning("%s is up at %s but red: some index cannot recover (see _cat/indices?health=red)",
                           cluster.name, cluster.url)  # fmt: skip
            return
        time.sleep(1.0)
    raise _startup_failed(
        cluster,
        f"{cluster.name} did not get healthy within {s.cluster_startup_timeout_s:.0f}s "
        "(raise ESHYBRID_CLUSTER_STARTUP_TIMEOUT_S on a slow machine)",
        stop_timeout_s=s.cluster_stop_timeout_s,
    )


def _startup_failed(cluster: LocalCluster, problem: str, *, stop_timeout_s: float | None = None) -> LocalClusterError:
    """The error of a start that failed, with the log tail; the server (if ``stop_timeout_s``) and state go."""
    cluster_dir = Path(cluster.cluster_dir)
    tail = _log_tail(cluster_dir)
    if stop_timeout_s is not None:
        _stop(cluster, stop_timeout_s)
    _remove_state(cluster_dir)
    return LocalClusterError(f"{problem}; log tail:\n{tail}", name=cluster.name, log_tail=tail)


def _red_settled(health: Mapping[str, object]) -> bool:
    return (
        health.get("status") == "red"
        and health.get("initializing_shards") == 0
        and health.get("delayed_unassigned_shards") == 0
        and health.get("number_of_pending_tasks") == 0
    )


def _remove_state(cluster_dir: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        (cluster_dir / _STATE_FILE).unlink()


def _stop(cluster: LocalCluster, timeout_s: float) -> None:
    """SIGTERM the process group, SIGKILL what is left after ``timeout_s``."""
    pgid = cluster.pid
    for sig, wait_s in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if not _group_alive(pgid):
                return
            time.sleep(0.2)
        if sig == signal.SIGTERM:
            logger.warning("%s did not stop within %.0fs after SIGTERM; killing it", cluster.name, timeout_s)
    if _group_alive(pgid):
        raise LocalClusterError(f"could not stop {cluster.name} (pid {pgid})", name=cluster.name, pid=pgid)


def stop_cluster(name: str, *, remove_data: bool = False, settings: LocalClusterSettings | None = None) -> bool:
    """Stop a local cluster (its whole process group) and remove its state file.

    Args:
        name: the cluster name given to :func:`start_cluster`.
        remove_data: also delete its folder (config, data, logs).
        settings: defaults to :class:`LocalClusterSettings` from env.

    Returns:
        True if a process was stopped, False if none ran.

    Raises:
        LocalClusterError: the processes did not go away, even after SIGKILL.
    """
    s = _settings(settings)
    cluster_dir = _clusters_dir(s) / name
    cluster = _read_state(cluster_dir)
    stopped = False
    if cluster is not None and _group_alive(cluster.pid):
        logger.info("stopping %s (pid %s)", name, cluster.pid)
        _stop(cluster, s.cluster_stop_timeout_s)
        stopped = True
    _remove_state(cluster_dir)
    if remove_data:
        shutil.rmtree(cluster_dir, ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            _name_lock(s, name).unlink()
    return stopped


def stop_all_clusters(*, remove_data: bool = False, settings: LocalClusterSettings | None = None) -> list[str]:
    """Stop every cluster that has a state file; returns the names stopped."""
    s = _settings(settings)
    return [
        st.cluster.name
        for st in cluster_status(settings=s)
        if stop_cluster(st.cluster.name, remove_data=remove_data, settings=s)
    ]


def cluster_status(*, settings: LocalClusterSettings | None = None) -> list[ClusterStatus]:
    """Every cluster with a state file: whether its process lives and it answers HTTP."""
    s = _settings(settings)
    root = _clusters_dir(s)
    out: list[ClusterStatus] = []
    if not root.is_dir():
        return out
    for cluster_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        cluster = _read_state(cluster_dir)
        if cluster is None:
            continue
        running = _group_alive(cluster.pid)
        health = _get_json(f"{cluster.url}/_cluster/health") if running else None
        problems = [] if running else ["process is gone (stale state; `cluster down` clears it)"]
        out.append(
            ClusterStatus(
                cluster=cluster,
                running=running,
                answers=health is not None,
                server_version=server_version(cluster.url) if health is not None else None,
                health=str(health.get("status")) if health else None,
                problems=tuple(problems),
            )
        )
    return out


def server_version(url: str, *, timeout_s: float = 2.0) -> str | None:
    """The version a server reports, or None if it does not answer.

    Elasticsearch's integ-test distribution lacks the ``rest-root`` module, so
    ``GET /`` answers 405 there; the local node's info carries the version too.
    """
    info = _get_json(f"{url}/", timeout_s=timeout_s)
    version = info.get("version") if info is not None else None
    if isinstance(version, dict) and version.get("number"):
        return str(version["number"])
    nodes = _get_json(f"{url}/_nodes/_local?filter_path=nodes.*.version", timeout_s=timeout_s)
    found = nodes.get("nodes") if nodes is not None else None
    if isinstance(found, dict):
        for node in found.values():
            if isinstance(node, dict) and node.get("version"):
                return str(node["version"])
    return None
