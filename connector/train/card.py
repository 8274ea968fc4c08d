"""The model card written beside a trained model: ``eshybrid_training.json`` (machine) and ``README.md`` (people).

Pure: a dict in, text out. The JSON keeps the held-out query ids, so the gated switch scores a new model only on
queries it never trained on.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["CARD_FILE", "read_card", "render_card", "write_card"]

CARD_FILE = "eshybrid_training.json"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def render_card(card: Mapping[str, Any]) -> str:
    """The README.md of a trained model folder."""
    kind = card["kind"]
    lines = [
        f"# {card['name']}",
        "",
        f"{'An' if kind[0] in 'aeiou' else 'A'} {kind} fine-tuned by `eshybrid train {kind}` on a shop's own judgments.",
        "",
        "| | |",
        "| --- | --- |",
        f"| base | `{card['base']}` |",
        f"| data | {card['data']['name']} ({card['data']['date']}) |",
        f"| queries | {card['data']['train_queries']} trained on, {card['data']['heldout_queries']} held out "
        f"(seeded split, seed {card['data']['seed']}) |",
        f"| examples | {card['fit']['examples']} ({card['fit']['steps']} steps, {card['fit']['seconds']} s) |",
    ]
    if card.get("layers"):
        lines.append(f"| layers kept | {card['layers']['kept']} of {card['layers']['teacher']} |")
    lines += ["", "## Parameters", "", "```json", json.dumps(card["parameters"], indent=2, sort_keys=True), "```"]
    lines += ["", "## Out-of-sample figures (held-out queries only)", ""]
    lines += ["| figure | value |", "| --- | --- |"]
    lines += [f"| {key} | {_fmt(value)} |" for key, value in card["heldout"].items()]
    if card.get("speed"):
        lines += ["", "## Speed (same backend, same texts, this machine)", ""]
        lines += ["| figure | value |", "| --- | --- |"]
        lines += [f"| {key} | {_fmt(value)} |" for key, value in card["speed"].items()]
    lines += ["", f"Serve it with `eshybrid serve {'embed' if kind == 'embedder' else 'rerank'} --model DIR`.", ""]
    return "\n".join(lines)


def write_card(folder: str | Path, card: Mapping[str, Any]) -> Path:
    """Write both files into ``folder``; returns the JSON's path."""
    folder = Path(folder)
    (folder / "README.md").write_text(render_card(card), encoding="utf-8")
    path = folder / CARD_FILE
    path.write_text(json.dumps(card, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


def read_card(folder: str | Path) -> dict[str, Any] | None:
    """The training card of a model folder, or None when it has none (a model not trained here)."""
    path = Path(folder) / CARD_FILE
    if not path.is_file():
        return None
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data
