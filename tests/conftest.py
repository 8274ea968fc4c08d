"""Shared pytest configuration: fixtures live in tests/fixtures/, one module per area."""

import os

# Searches embed queries through the service under test, whatever exports earlier tests left in the model caches
# (the onnx backend writes one beside the bundled model): which path a search takes must not depend on test order.
# tests/integration/test_query_encoder.py turns the in-process encoder on where it is the subject.
os.environ.setdefault("ESHYBRID_QUERY_ENCODER_ENABLED", "false")

pytest_plugins = [
    "tests.fixtures.clusters",
    "tests.fixtures.embedding",
    "tests.fixtures.images",
    "tests.fixtures.rerank",
    "tests.fixtures.tls",
]
