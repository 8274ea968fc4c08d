"""A seeded random sample of an index's documents, rendered as the backfill renders them: the texts the
embedding service's static int8 (``--backend openvino --quantize int8``) is calibrated on.

- :func:`sample_body`: the search body (pure): ``random_score`` with a seed over ``_seq_no`` (the same seed on
  the same shards and documents draws the same sample), only the text's source fields read;
- :func:`calibration_sample`: the rendered texts, through :func:`connector.texts.build_text` with the fields and
  template the index ``_meta`` records for the vector field (as the backfill reads them), unembeddable documents
  skipped;
- :func:`write_calibration_file`: the file ``--calibration-file`` reads: JSON lines (one JSON string a line: the
  exact text, newlines kept) when the name ends in ``.jsonl``, else one text a line with its whitespace runs
  joined into single spaces (a BERT tokenizer reads both alike).

``eshybrid calibration-sample --index NAME --out FILE`` is the command line.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

from connector.cluster.client import Cluster, JsonDict
from connector.errors import ConfigError
from connector.jobs.backfill import BackfillConfig, with_text_fields
from connector.texts import UnembeddableDocument, build_text

__all__ = ["MAX_SAMPLE", "calibration_sample", "sample_body", "write_calibration_file"]

logger = logging.getLogger(__name__)

MAX_SAMPLE = 5000
# Hits asked beyond ``size``, so a few unembeddable documents do not shorten the sample (the default result
# window is 10,000).
_SPARE = 2


def sample_body(*, source_fields: Sequence[str], size: int, seed: int) -> JsonDict:
    """The search body drawing ``size`` documents at random (seeded), reading only ``source_fields``."""
    return {
        "size": min(size * _SPARE, 10_000),
        "_source": {"includes": list(source_fields)},
        "track_total_hits": False,
        "query": {
            "function_score": {
                "query": {"match_all": {}},
                "random_score": {"seed": seed, "field": "_seq_no"},
                "boost_mode": "replace",
            }
        },
    }


def calibration_sample(
    cluster: Cluster,
    *,
    index: str,
    vector_field: str = "embedding",
    fields: Sequence[str] = (),
    template: str | None = None,
    size: int = 300,
    seed: int = 0,
) -> list[str]:
    """Up to ``size`` texts of ``index`` drawn at random with ``seed``, rendered as the backfill renders them.

    Args:
        fields: source fields of the text (default: those the index ``_meta`` records for ``vector_field``).
        template: the text template (default: the ``_meta`` one, else the fields joined by newlines).

    Raises:
        ConfigError: ``size`` is out of range, or no fields are given or recorded.
    """
    if not 1 <= size <= MAX_SAMPLE:
        raise ConfigError(f"size must be within 1..{MAX_SAMPLE}, got {size}", field="size")
    config = with_text_fields(
        cluster, BackfillConfig(index=index, fields=tuple(fields), template=template, vector_field=vector_field)
    )
    policy = config.policy
    hits = cluster.search(index, sample_body(source_fields=policy.fields, size=size, seed=seed))["hits"]["hits"]
    texts: list[str] = []
    skipped = 0
    for hit in hits:
        try:
            texts.append(build_text(dict(hit.get("_source") or {}), policy))
        except UnembeddableDocument:
            skipped += 1
            continue
        if len(texts) >= size:
            break
    logger.info(
        "calibration sample of %s: %d texts (%d unembeddable skipped), seed %d", index, len(texts), skipped, seed
    )
    return texts


def write_calibration_file(path: Path, texts: Sequence[str]) -> None:
    """Write ``texts`` where ``--calibration-file`` reads them (JSON lines for ``*.jsonl``, else plain lines)."""
    if path.suffix == ".jsonl":
        lines = [json.dumps(text, ensure_ascii=False) for text in texts]
    else:
        lines = [" ".join(text.split()) for text in texts]
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
