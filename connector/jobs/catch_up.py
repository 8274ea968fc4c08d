"""A job's catch-up passes: after the main scan, the writes made since its high-water marks.

Each pass reads, per shard, the documents whose sequence number lies in ``[after, upto]``
(:class:`~connector.jobs.sources.ShardCatchUpSource`) through the same pipeline as the main
scan, until a pass writes nothing. Functions of a :class:`~connector.jobs.runner.JobRunner`
(which calls them from its methods of the same name).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

from connector.jobs.sources import ShardCatchUpSource, shard_high_water_marks
from connector.jobs.store import JobCounts, SliceCheckpoint, sum_counts

if TYPE_CHECKING:
    from connector.jobs.runner import JobRunner

__all__ = ["catch_up_counts", "catch_up_windows", "run_catch_up"]

logger = logging.getLogger(__name__)


def catch_up_windows(runner: JobRunner) -> dict[int, list[int]]:
    """Per shard ``[after, upto]`` of the next catch-up pass (marks read before the refresh)."""
    assert runner.state is not None
    now = shard_high_water_marks(runner.cluster, runner.state.scan_index)
    runner.cluster.refresh(runner.state.scan_index)
    return {
        shard: [runner.state.high_water.get(shard, -1), upto]
        for shard, upto in now.items()
        if upto > runner.state.high_water.get(shard, -1)
    }


def run_catch_up(runner: JobRunner, *, max_passes: int | None = None, until_quiet: bool = True) -> JobCounts:
    """Catch-up passes until one writes nothing (or ``max_passes``); returns their summed counts."""
    assert runner.state is not None
    limit = runner.settings.max_catch_up_passes if max_passes is None else max_passes
    done_passes = 0
    while True:
        resumed = runner.state.phase == "catch_up" and bool(runner.state.windows)
        if not resumed:
            if done_passes >= limit:
                break
            runner.state.catch_up_pass += 1
            runner.state.phase = "catch_up"
            runner.state.windows = catch_up_windows(runner)
            runner.save_state(phase="catch_up")
        counts = _catch_up_pass(runner, runner.state.catch_up_pass, runner.state.windows)
        done_passes += 1
        for shard, (_, upto) in runner.state.windows.items():
            runner.state.high_water[shard] = upto
        runner.state.windows = {}
        runner.state.phase = "caught_up"
        runner.save_state()
        if until_quiet and counts.updated == 0:
            break
    return catch_up_counts(runner)


def catch_up_counts(runner: JobRunner) -> JobCounts:
    return sum_counts([cp for cp in runner.checkpoints.values() if cp.pass_name.startswith("catchup")])


def _catch_up_pass(runner: JobRunner, number: int, windows: Mapping[int, list[int]]) -> JobCounts:
    assert runner.state is not None
    includes = runner.mode().source_includes
    cps, sources = [], []
    for shard, (after, upto) in sorted(windows.items()):
        key = f"catchup{number}-shard-{shard}"
        cp = runner.checkpoints.get(key) or SliceCheckpoint(
            job_id=runner.job_id,
            key=key,
            pass_name=f"catchup{number}",
            slice_id=shard,
            max_slices=0,
            shard=shard,
            after_seq_no=after,
            upto_seq_no=upto,
        )
        runner.checkpoints[key] = cp
        cps.append(cp)
        if not cp.done:
            sources.append(
                ShardCatchUpSource(
                    key=key,
                    cluster=runner.cluster,
                    dialect=runner.dialect,
                    index=runner.state.scan_index,
                    shard=shard,
                    after_seq_no=after,
                    upto_seq_no=upto,
                    page_size=runner.settings.page_size,
                    source_includes=includes,
                    cursor=cp.cursor,
                    own_writes=runner.own_writes,
                )
            )
    if not sources:
        return sum_counts(cps)
    counts = runner.run_sources(cps, sources, f"catch-up {number}")
    skipped = sum(source.skipped_own for source in sources)
    runner.catch_up_skipped_own += skipped
    if runner.own_writes is not None:
        logger.info("catch-up %s: %s documents left unread, this job's own writes unchanged since", number, skipped)
    return counts
