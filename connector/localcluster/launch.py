"""Launch one server process from a rendered node config: its folders, ``jvm.options``, user and environment.

Internal to :mod:`connector.localcluster`: :mod:`~connector.localcluster.process` starts single-node clusters
with it, :mod:`~connector.localcluster.multinode` each node of a multi-node one.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
import shutil
import socket
import subprocess
from collections.abc import Mapping
from pathlib import Path

from connector.errors import LocalClusterError
from connector.localcluster.config import (
    LOCAL_HOST,
    ConfigValue,
    LocalClusterSettings,
    render_jvm_options,
    render_yaml,
    server_env,
)
from connector.localcluster.distribution import Flavor
from connector.localcluster.java import JavaHome

__all__: list[str] = []

logger = logging.getLogger(__name__)


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Like the servers themselves: TIME_WAIT leftovers do not block a bind, a listener does.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOCAL_HOST, port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOCAL_HOST, 0))
        return int(sock.getsockname()[1])


def _log_tail(cluster_dir: Path, *, lines: int = 25) -> str:
    parts = []
    logs = [cluster_dir / "console.log", *sorted((cluster_dir / "logs").glob("eshybrid-*.log"))]
    for node_dir in sorted(cluster_dir.glob("node-*")):  # a multi-node cluster: each node's own folder
        logs += [node_dir / "console.log", *sorted((node_dir / "logs").glob("eshybrid-*.log"))]
    for path in logs:
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


def _launch_node(
    s: LocalClusterSettings,
    *,
    flavor: Flavor,
    node_config: Mapping[str, ConfigValue],
    heap_mb: int,
    java: JavaHome,
    dist: Path,
    node_dir: Path,
) -> int:
    """Write a node's config folder under ``node_dir`` and start the server detached; returns its pid.

    ``node_config`` names ``node_dir``'s ``data`` and ``logs`` folders (made here; kept across restarts).
    The process gets a session of its own: its pid is the process group that stopping it kills.
    """
    config_dir, tmp_dir = node_dir / "config", node_dir / "tmp"
    data_dir, logs_dir = Path(str(node_config["path.data"])), Path(str(node_config["path.logs"]))
    shutil.rmtree(config_dir, ignore_errors=True)
    shutil.copytree(dist / "config", config_dir)
    for d in (data_dir, logs_dir, tmp_dir):
        d.mkdir(parents=True, exist_ok=True)
    (config_dir / f"{flavor}.yml").write_text(render_yaml(node_config), encoding="utf-8")
    jvm_options = config_dir / "jvm.options"
    jvm_options.write_text(
        render_jvm_options(jvm_options.read_text(encoding="utf-8"), logs_dir=logs_dir, data_dir=data_dir),
        encoding="utf-8",
    )
    user = _server_user(s)
    if user is not None:
        _chown_tree(node_dir, user)
    cmd = [str(dist / "bin" / flavor)]
    if user is not None:
        cmd = ["runuser", "-u", user, "--", *cmd]
    knn_lib = dist / "plugins" / "opensearch-knn" / "lib"  # the k-NN stand-in libraries, if any
    env = server_env(
        flavor, java=java, config_dir=config_dir, tmp_dir=tmp_dir, heap_mb=heap_mb, base=os.environ,
        library_path=knn_lib if knn_lib.is_dir() else None,
    )  # fmt: skip
    logger.info(
        "starting %s node %s as %s on port %s (java %s)",
        flavor, node_config["node.name"], user or "self", node_config["http.port"], java.major,
    )  # fmt: skip
    with open(node_dir / "console.log", "wb") as console:
        proc = subprocess.Popen(  # noqa: S603 - fixed argv
            cmd,
            cwd=str(dist),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=console,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # survives the CLI; its own process group to kill
        )
    return proc.pid
