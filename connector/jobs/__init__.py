"""Upgrade jobs: backfill in place and reindex with an alias swap (resumable, observable).

- :func:`run_backfill` / :class:`BackfillConfig`: embed an index's documents and write the
  vectors into it (``eshybrid backfill``).
- :func:`run_reindex` / :class:`ReindexConfig`: copy into ``<alias>-v<k>`` with the hybrid
  mapping, embed, catch up, swap the alias atomically (``eshybrid reindex``).
- :class:`JobSummary`, :class:`JobCounts`: what a job did (``read = updated + skipped +
  dead_lettered + vanished``); :class:`JobStore`: job documents, checkpoints, dead letters.
- :func:`streaming_bulk`: the bulk helper the jobs write with.
- :func:`build_profiles`: shopper profile vectors from interaction events (``eshybrid profiles build``).

Nothing here imports torch or ray at import time (Ray only with ``ray_address``).
"""

from __future__ import annotations

from connector.jobs.backfill import BackfillConfig, run_backfill
from connector.jobs.bulk import BulkAction, BulkItemResult, streaming_bulk
from connector.jobs.common import JobSummary
from connector.jobs.profiles import ProfileBuildReport, build_profiles, read_events
from connector.jobs.reindex import ReindexConfig, run_reindex
from connector.jobs.settings import ClusterSpec, ConnectionSettings, JobSettings
from connector.jobs.store import DeadLetter, JobCounts, JobStore
from connector.jobs.work import Embedder
from connector.texts import TextPolicy, build_text, text_hash

__all__ = [
    "BackfillConfig",
    "BulkAction",
    "BulkItemResult",
    "ClusterSpec",
    "ConnectionSettings",
    "DeadLetter",
    "Embedder",
    "ProfileBuildReport",
    "JobCounts",
    "JobSettings",
    "JobStore",
    "JobSummary",
    "ReindexConfig",
    "TextPolicy",
    "build_profiles",
    "build_text",
    "read_events",
    "run_backfill",
    "run_reindex",
    "streaming_bulk",
    "text_hash",
]
