"""What a ``serve search`` replica is started with (the deployment's Ray actor options; no Ray started)."""

from __future__ import annotations

import pytest

pytest.importorskip("ray.serve")
pytest.importorskip("fastapi")

from connector.search.app import build_search_app  # noqa: E402
from connector.search.settings import SearchServiceSettings  # noqa: E402


def _actor_options(**fields: object) -> dict[str, object]:
    settings = SearchServiceSettings(cluster_url="http://127.0.0.1:1", index="products", **fields)  # type: ignore[arg-type]
    return dict(build_search_app(settings)._bound_deployment.ray_actor_options)


def test_a_replica_caps_its_malloc_arenas() -> None:
    """Its many threads must not each keep an arena of freed memory (the soak's RSS growth)."""
    options = _actor_options(num_cpus_per_replica=0.5)
    assert options == {"num_cpus": 0.5, "runtime_env": {"env_vars": {"MALLOC_ARENA_MAX": "2"}}}


def test_zero_leaves_glibc_its_own_arenas() -> None:
    assert _actor_options(malloc_arena_max=0) == {"num_cpus": 0.25}
