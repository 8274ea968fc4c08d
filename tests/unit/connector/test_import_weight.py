"""The base install stays light: importing the connector never imports torch, transformers or ray."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]

# Modules that ARE Ray entry points (the /search Serve app); everything else must import without Ray.
_RAY_ENTRY_POINTS = {"connector.search.app"}
# The framework adapters import their framework (an extra of their own), and Haystack imports torch when it is
# installed: what they weigh is the framework's choice, made by whoever installs that extra.
_FRAMEWORK_ADAPTERS = {
    "connector.adapters.haystack_component",
    "connector.adapters.langchain_retriever",
    "connector.adapters.llamaindex_retriever",
}

_PROBE = """
import importlib, json, pkgutil, sys
import connector
names = sorted(m.name for m in pkgutil.walk_packages(connector.__path__, "connector.")
               if m.name not in set(json.loads(sys.argv[1])) and not m.name.endswith("__main__"))
for name in names:
    importlib.import_module(name)
heavy = sorted({m.split(".")[0] for m in sys.modules} & {"torch", "transformers", "ray"})
print(json.dumps({"modules": names, "heavy": heavy}))
"""


def test_importing_every_connector_module_loads_no_heavy_dependency() -> None:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(sorted(_RAY_ENTRY_POINTS | _FRAMEWORK_ADAPTERS))],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(result["modules"]) > 40
    assert result["heavy"] == []
