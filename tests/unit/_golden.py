"""Golden-JSON files of the unit tests: compared as JSON, rewritten with ``ESHYBRID_UPDATE_GOLDEN=1``."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GOLDEN_DIR = Path(__file__).parent / "golden"


@dataclass(frozen=True)
class GoldenFiles:
    """The golden files ``<folder>/<prefix><name>.json`` of one test module."""

    folder: Path = GOLDEN_DIR
    prefix: str = ""

    def check(self, name: str, actual: Any) -> None:
        path = self.folder / f"{self.prefix}{name}.json"
        if os.environ.get("ESHYBRID_UPDATE_GOLDEN") == "1":
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(actual, indent=2, sort_keys=True) + "\n")
        assert path.exists(), f"missing golden file {path}; run with ESHYBRID_UPDATE_GOLDEN=1"
        assert actual == json.loads(path.read_text()), f"{name} differs from {path}"
