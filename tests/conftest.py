"""Shared pytest configuration: fixtures live in tests/fixtures/, one module per area."""

pytest_plugins = [
    "tests.fixtures.clusters",
    "tests.fixtures.embedding",
    "tests.fixtures.images",
    "tests.fixtures.rerank",
    "tests.fixtures.tls",
]
