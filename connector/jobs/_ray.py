"""Run tasks on Ray: a generic executor (imported without Ray; ``ray`` is imported when it runs).

:func:`run_on_ray` runs a picklable function once per keyed argument as Ray tasks and waits
for them all. It knows nothing of jobs: the job runner hands it
:func:`connector.jobs.slices.run_slice_task` and one :class:`~connector.jobs.slices.SliceTask`
per unfinished slice, so backfill and reindex both scale out the same way.

Tasks are spread over the Ray cluster's nodes (``SPREAD``): slices mostly wait on HTTP, so spreading
puts every node's network and CPU to use, and a lost node takes fewer slices with it. A task that
died with its worker or node (not by an exception of ``fn``) is reported as *lost* (``JobError.lost``):
the caller may run it again from its own checkpoint.

Workers must be able to import the function's module (``connector`` installed, or on
``PYTHONPATH``: for a local Ray the driver passes its own path).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from connector.errors import JobError

__all__ = ["run_on_ray"]

logger = logging.getLogger(__name__)

ArgT = TypeVar("ArgT")
ResultT = TypeVar("ResultT")

# The folder that holds the ``connector`` package (connector/jobs/_ray.py -> three levels up).
_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_on_ray(
    fn: Callable[[ArgT], ResultT],
    tasks: Mapping[str, ArgT],
    *,
    address: str | None,
    num_cpus: float,
    on_progress: Callable[[int, int], None] | None = None,
    progress_interval_s: float = 10.0,
) -> dict[str, ResultT]:
    """Run ``fn(arg)`` for every ``key -> arg`` of ``tasks`` as a Ray task; wait for all of them.

    Args:
        fn: a module-level function (Ray pickles it by reference); its argument and result must pickle.
        tasks: one argument per task, by a key that names it in errors.
        address: the Ray cluster (``auto``, ``ray://...``); used when this process has not joined one yet.
        num_cpus: CPUs each task reserves.
        on_progress: called with ``(tasks finished, tasks)`` every ``progress_interval_s`` while waiting.
        progress_interval_s: seconds between ``on_progress`` calls.

    Returns:
        Each task's result by its key.

    Raises:
        JobError: some tasks failed (raised once every task has ended; the message names each failure;
            ``failures`` lists them, ``lost`` the keys of those whose worker or node died).
            Tasks are not retried by Ray: the caller's own checkpoints decide what to run again.
    """
    import ray

    if not ray.is_initialized():
        ray.init(address=address, log_to_driver=False)
    path = os.pathsep.join(p for p in (_PACKAGE_ROOT, os.environ.get("PYTHONPATH", "")) if p)
    remote = ray.remote(fn).options(
        num_cpus=num_cpus,
        max_retries=0,
        scheduling_strategy="SPREAD",
        runtime_env={"env_vars": {"PYTHONPATH": path}},
    )
    refs = {remote.remote(arg): key for key, arg in tasks.items()}
    logger.info("%s tasks submitted to Ray (%s)", len(refs), address or "the joined cluster")
    return _wait(refs, on_progress=on_progress, progress_interval_s=progress_interval_s)


def _wait(
    refs: Mapping[Any, str], *, on_progress: Callable[[int, int], None] | None, progress_interval_s: float
) -> dict[str, Any]:
    import ray

    pending = list(refs)
    results: dict[str, Any] = {}
    errors: list[str] = []
    lost: list[str] = []
    last_report = time.monotonic()
    while pending:
        done, pending = ray.wait(pending, num_returns=len(pending), timeout=1.0)
        for ref in done:
            try:
                results[refs[ref]] = ray.get(ref)
            except Exception as e:  # noqa: BLE001 - collected, raised once all tasks ended
                errors.append(f"{refs[ref]}: {e}")
                if _died_with_its_process(e):
                    lost.append(refs[ref])
        if on_progress is not None and time.monotonic() - last_report >= progress_interval_s:
            on_progress(len(refs) - len(pending), len(refs))
            last_report = time.monotonic()
    if errors:
        raise JobError(f"{len(errors)} Ray task(s) failed: {'; '.join(errors)}", failures=errors, lost=lost)
    return results


def _died_with_its_process(err: BaseException) -> bool:
    """Whether a task failed because its worker or node went away (not because the function raised)."""
    import ray.exceptions

    if isinstance(err, ray.exceptions.RayTaskError | ray.exceptions.TaskCancelledError):
        return False
    lost = (
        ray.exceptions.WorkerCrashedError,
        ray.exceptions.NodeDiedError,
        ray.exceptions.LocalRayletDiedError,
        ray.exceptions.ObjectLostError,
        ray.exceptions.OwnerDiedError,
    )
    return isinstance(err, lost)
