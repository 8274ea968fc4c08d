"""Shared pytest configuration: fixtures live in tests/fixtures/, one module per area."""

import os

# Searches embed queries through the service under test, whatever exports earlier tests left in the model caches
# (the onnx backend writes one beside the bundled model): which path a search takes must not depend on test order.
# tests/integration/test_query_encoder.py turns the in-process encoder on where it is the subject.
os.environ.setdefault("ESHYBRID_QUERY_ENCODER_ENABLED", "false")
# The search path's embedding budget (0.2 s by default) is about a down or stalled embedder; on a 2-core CI machine
# running four servers and Ray, a healthy one can exceed it now and then, and a test comparing two searches would
# see one of them fall back. Tests of the fallback set their own budget; the rest get a roomy one.
os.environ.setdefault("ESHYBRID_SEARCH_EMBED_BUDGET_S", "5")

pytest_plugins = [
    "tests.fixtures.clusters",
    "tests.fixtures.embedding",
    "tests.fixtures.images",
    "tests.fixtures.multinode",
    "tests.fixtures.rerank",
    "tests.fixtures.tls",
]
