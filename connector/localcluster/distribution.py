"""Distributions for local clusters: Maven fetch, unpack, OpenSearch modules and plugins.

Internal to :mod:`connector.localcluster`. The servers come from Maven Central
(``integ-test-zip`` distributions plus OpenSearch plugin zips), fetched with
``mvn dependency:copy`` and kept unpacked under ``$ESHYBRID_HOME/dist`` so the
second start is instant. The JDK choice lives in :mod:`connector.localcluster.java`
(its names are re-exported here).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import stat
import subprocess
import tempfile
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from connector.cluster.capabilities import Flavor
from connector.errors import LocalClusterError
from connector.localcluster.java import (
    JavaHome,
    choose_java,
    default_java_search_dirs,
    find_java_homes,
    supported_java_majors,
)
from connector.localcluster.knnstub import install_knn_stubs

__all__ = [
    "Flavor",
    "JavaHome",
    "PLUGIN_ARTIFACTS",
    "supported_java_majors",
    "find_java_homes",
    "choose_java",
    "default_java_search_dirs",
    "maven_coordinates",
    "plugin_coordinates",
    "ordered_plugins",
    "dist_dir_name",
    "fetch_artifact",
    "ensure_distribution",
]

logger = logging.getLogger(__name__)

# Short plugin name -> Maven artifactId (group org.opensearch.plugin, version <os>.0).
PLUGIN_ARTIFACTS: Mapping[str, str] = {
    "knn": "opensearch-knn",
    "job-scheduler": "opensearch-job-scheduler",
    "ml": "opensearch-ml-plugin",
    "neural": "neural-search",
}
# Install order matters: a plugin's extended.plugins must already be there.
_PLUGIN_ORDER = ("knn", "job-scheduler", "ml", "neural")
# Plugins a plugin needs (extended.plugins or hard runtime use).
_PLUGIN_NEEDS: Mapping[str, tuple[str, ...]] = {
    "neural": ("knn",),
    "ml": ("job-scheduler",),
}

# OpenSearch 2.x integ-test zips ship transport-netty4 only (3.x ships the usual
# modules). opensearch-knn extends lang-painless, and the team needs analyzers
# (english...), _reindex / _update_by_query and rank_feature: build those modules
# from their Maven jars.


@dataclass(frozen=True)
class _ModuleSpec:
    artifact: str
    classes: tuple[str, ...]  # plugin class candidates, newest name first
    extended: str = ""
    policy: str = ""


_OPENSEARCH_MODULES: Mapping[str, _ModuleSpec] = {
    "lang-painless": _ModuleSpec(
        "lang-painless",
        ("org.opensearch.painless.PainlessModulePlugin", "org.opensearch.painless.PainlessPlugin"),
        policy="""grant {
  // needed to generate runtime classes
  permission java.lang.RuntimePermission "createClassLoader";
  // needed to find the classloader to load allowlisted classes from
  permission java.lang.RuntimePermission "getClassLoader";
};
""",
    ),
    "analysis-common": _ModuleSpec(
        "analysis-common",
        (
            "org.opensearch.analysis.common.CommonAnalysisModulePlugin",
            "org.opensearch.analysis.common.CommonAnalysisPlugin",
        ),
        extended="lang-painless",
    ),
    "mapper-extras": _ModuleSpec(
        "mapper-extras-client",
        ("org.opensearch.index.mapper.MapperExtrasModulePlugin", "org.opensearch.index.mapper.MapperExtrasPlugin"),
    ),
    "reindex": _ModuleSpec(
        "reindex-client",
        ("org.opensearch.index.reindex.ReindexModulePlugin", "org.opensearch.index.reindex.ReindexPlugin"),
        policy="""grant {
  // reindex from remote opens sockets with the rest client, which reads the default proxy
  permission java.net.SocketPermission "*", "connect";
  permission java.net.NetPermission "getProxySelector";
};
""",
    ),
}
_MODULE_ORDER = ("lang-painless", "analysis-common", "mapper-extras", "reindex")

_THROWAWAY_POM = """<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.eshybrid</groupId>
  <artifactId>resolve-{artifact}</artifactId>
  <version>0</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>{group}</groupId>
      <artifactId>{artifact}</artifactId>
      <version>{version}</version>
    </dependency>
  </dependencies>
</project>
"""


def maven_coordinates(flavor: Flavor, version: str) -> str:
    """``group:artifact:version:zip`` of a server's integ-test distribution."""
    group = "org.elasticsearch" if flavor == "elasticsearch" else "org.opensearch"
    return f"{group}.distribution.integ-test-zip:{flavor}:{version}:zip"


def plugin_coordinates(plugin: str, opensearch_version: str) -> str:
    """``group:artifact:version:zip`` of an OpenSearch plugin built for ``opensearch_version``."""
    try:
        artifact = PLUGIN_ARTIFACTS[plugin]
    except KeyError:
        raise LocalClusterError(
            f"unknown plugin {plugin!r}; choose from {sorted(PLUGIN_ARTIFACTS)}", plugin=plugin
        ) from None
    return f"org.opensearch.plugin:{artifact}:{opensearch_version}.0:zip"


def ordered_plugins(plugins: Iterable[str]) -> tuple[str, ...]:
    """The plugins plus what they need, in install order; unknown names raise."""
    wanted: set[str] = set()
    todo = list(plugins)
    while todo:
        name = todo.pop()
        if name not in PLUGIN_ARTIFACTS:
            raise LocalClusterError(f"unknown plugin {name!r}; choose from {sorted(PLUGIN_ARTIFACTS)}", plugin=name)
        if name not in wanted:
            wanted.add(name)
            todo.extend(_PLUGIN_NEEDS.get(name, ()))
    return tuple(p for p in _PLUGIN_ORDER if p in wanted)


def dist_dir_name(flavor: Flavor, version: str, plugins: Sequence[str]) -> str:
    """Folder name of an unpacked distribution, e.g. ``opensearch-3.6.0_knn_neural``."""
    # Not "+": the plugin tool URL-decodes its paths, turning "+" into a space.
    return "_".join([f"{flavor}-{version}", *plugins])


def fetch_artifact(coords: str, dest_dir: Path, *, mvn: str = "mvn", timeout_s: float = 1800) -> Path:
    """Copy one Maven artifact into ``dest_dir`` (cached: a second call is a no-op).

    Raises:
        LocalClusterError: ``mvn`` is missing or the download failed.
    """
    group, artifact, version, packaging = coords.split(":")
    target = dest_dir / f"{artifact}-{version}.{packaging}"
    if target.is_file() and target.stat().st_size > 0:
        return target
    dest_dir.mkdir(parents=True, exist_ok=True)
    _run_mvn(
        ["dependency:copy", f"-Dartifact={coords}", f"-DoutputDirectory={dest_dir}"],
        mvn=mvn,
        what=coords,
        timeout_s=timeout_s,
    )
    if not target.is_file():
        raise LocalClusterError(f"mvn reported success but {target} is missing", artifact=coords)
    return target


def _unzip(archive: Path, dest: Path) -> None:
    """Unpack keeping the executable bits (``zipfile`` alone drops them)."""
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            path = zf.extract(info, dest)
            mode = (info.external_attr >> 16) & 0o777
            if mode and not info.is_dir():
                os.chmod(path, mode | stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)


def _make_world_readable(root: Path) -> None:
    # The server runs as an unprivileged user; the distribution stays root-owned.
    for dirpath, _dirnames, filenames in os.walk(root):
        os.chmod(dirpath, 0o755)
        for name in filenames:
            p = os.path.join(dirpath, name)
            if not os.path.islink(p):
                mode = os.stat(p).st_mode
                os.chmod(p, mode | stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)


def _run_mvn(args: Sequence[str], *, mvn: str, what: str, timeout_s: float = 1800) -> None:
    exe = shutil.which(mvn)
    if exe is None:
        raise LocalClusterError(
            f"`{mvn}` (Apache Maven) is not on PATH; it fetches the server zips from Maven Central. "
            "Install it (`apt-get install maven`) or set ESHYBRID_MVN to its path.",
            mvn=mvn,
        )
    logger.info("fetching %s with mvn", what)
    try:
        proc = subprocess.run([exe, "-B", "-q", *args], capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as e:
        raise LocalClusterError(f"downloading {what} took more than {timeout_s:.0f}s", artifact=what) from e
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-8:])
        raise LocalClusterError(
            f"mvn could not fetch {what} (exit {proc.returncode}). Check the version exists on "
            f"Maven Central and that the network reaches it.\n{tail}",
            artifact=what,
            returncode=proc.returncode,
        )


def _resolve_jars(group: str, artifact: str, version: str, dest: Path, *, mvn: str) -> list[Path]:
    """A jar and its runtime dependencies (transitively), via a throwaway pom; cached."""
    jars_dir = dest / "jars"
    done = dest / ".resolved"
    if not done.is_file():
        shutil.rmtree(jars_dir, ignore_errors=True)
        dest.mkdir(parents=True, exist_ok=True)
        pom = dest / "pom.xml"
        pom.write_text(_THROWAWAY_POM.format(group=group, artifact=artifact, version=version), encoding="utf-8")
        _run_mvn(
            ["-f", str(pom), "dependency:copy-dependencies", f"-DoutputDirectory={jars_dir}", "-DincludeScope=runtime"],
            mvn=mvn,
            what=f"{group}:{artifact}:{version} (+ dependencies)",
        )
        done.write_text("ok\n", encoding="utf-8")
    return sorted(jars_dir.glob("*.jar"))


def _jar_base(name: str) -> str:
    """``httpcore5-5.4.jar`` -> ``httpcore5`` (to spot jars the server already has)."""
    return re.sub(r"-\d[^-]*(-[A-Za-z0-9.]+)?\.jar$", "", name)


def _build_opensearch_module(module: str, version: str, home: Path, *, cache: Path, mvn: str) -> None:
    """Assemble ``modules/<module>`` from the module's Maven jar and its dependencies."""
    spec = _OPENSEARCH_MODULES[module]
    target = home / "modules" / module
    if target.exists():
        return
    jars = _resolve_jars("org.opensearch.plugin", spec.artifact, version, cache / f"{module}-{version}", mvn=mvn)
    main_jar = next((j for j in jars if j.name == f"{spec.artifact}-{version}.jar"), None)
    if main_jar is None:
        raise LocalClusterError(f"mvn did not deliver {spec.artifact}-{version}.jar", module=module, version=version)
    with zipfile.ZipFile(main_jar) as zf:
        names = set(zf.namelist())
    classname = next((c for c in spec.classes if c.replace(".", "/") + ".class" in names), None)
    if classname is None:
        raise LocalClusterError(f"{main_jar.name} has none of the plugin classes {spec.classes}", module=module)
    # A jar the server (or a module it extends) already has would fail the jar-hell check.
    provided = {_jar_base(j.name) for j in (home / "lib").glob("*.jar")}
    if spec.extended:
        provided |= {_jar_base(j.name) for j in (home / "modules" / spec.extended).glob("*.jar")}
    target.mkdir(parents=True)
    for jar in jars:
        if jar is main_jar or _jar_base(jar.name) not in provided:
            shutil.copy2(jar, target / jar.name)
    descriptor = {
        "description": f"{module} module (assembled by eshybrid from Maven Central)",
        "version": version,
        "name": module,
        "classname": classname,
        "java.version": "11",
        "opensearch.version": version,
        "custom.foldername": "",
        "extended.plugins": spec.extended,
        "has.native.controller": "false",
    }
    text = "".join(f"{k}={v}\n" for k, v in descriptor.items())
    (target / "plugin-descriptor.properties").write_text(text, encoding="utf-8")
    if spec.policy:
        (target / "plugin-security.policy").write_text(spec.policy, encoding="utf-8")


def _install_plugin(home: Path, zip_path: Path, java: JavaHome) -> None:
    env = dict(os.environ, JAVA_HOME=str(java.path), OPENSEARCH_JAVA_HOME=str(java.path))
    env.pop("OPENSEARCH_JAVA_OPTS", None)
    cmd = [str(home / "bin" / "opensearch-plugin"), "install", "--batch", zip_path.resolve().as_uri()]
    logger.info("installing plugin %s", zip_path.name)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, check=False)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-10:])
        raise LocalClusterError(
            f"installing {zip_path.name} failed (exit {proc.returncode}):\n{tail}",
            plugin=zip_path.name,
            returncode=proc.returncode,
        )


def ensure_distribution(
    flavor: Flavor,
    version: str,
    *,
    plugins: Sequence[str],
    java: JavaHome,
    home: Path,
    mvn: str = "mvn",
) -> Path:
    """The unpacked server folder (``$home/dist/<flavor>-<version>[_plugin...]``), built once.

    Args:
        flavor: ``elasticsearch`` or ``opensearch``.
        version: server version.
        plugins: short OpenSearch plugin names, already in install order.
        java: the JDK the plugin tool runs with.
        home: ``ESHYBRID_HOME``.
        mvn: the Maven executable.

    Raises:
        LocalClusterError: download, unpack or plugin install failed.
    """
    if flavor == "elasticsearch" and plugins:
        raise LocalClusterError("plugins are only supported for opensearch", plugins=list(plugins))
    dist_root = home / "dist"
    target = dist_root / dist_dir_name(flavor, version, plugins)
    if (target / "bin").is_dir():
        knn_dir = target / "plugins" / "opensearch-knn"
        if knn_dir.is_dir() and not (knn_dir / "lib").is_dir():  # unpacked before the stand-ins existed
            install_knn_stubs(knn_dir, java.path)
            _make_world_readable(knn_dir)
        return target
    downloads = home / "downloads"
    archive = fetch_artifact(maven_coordinates(flavor, version), downloads, mvn=mvn)
    plugin_zips = [fetch_artifact(plugin_coordinates(p, version), downloads, mvn=mvn) for p in plugins]
    dist_root.mkdir(parents=True, exist_ok=True)
    os.chmod(dist_root, 0o755)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=dist_root))
    try:
        _unzip(archive, staging)
        inner = staging / f"{flavor}-{version}"
        if not (inner / "bin").is_dir():
            raise LocalClusterError(f"{archive.name} has no {flavor}-{version}/bin folder", archive=str(archive))
        if flavor == "opensearch":
            for module in _MODULE_ORDER:
                _build_opensearch_module(module, version, inner, cache=downloads, mvn=mvn)
            for zip_path in plugin_zips:
                _install_plugin(inner, zip_path, java)
            if "knn" in plugins:
                install_knn_stubs(inner / "plugins" / "opensearch-knn", java.path)
        _make_world_readable(inner)
        try:
            inner.rename(target)
        except OSError:
            if not (target / "bin").is_dir():  # else another process won the race
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info("unpacked %s", target)
    return target
