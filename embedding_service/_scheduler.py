"""Runs blocking forward passes one at a time on a dedicated thread, most urgent first.

The replica's event loop stays free to accept requests and tokenize the next batch while
the model computes. A query's forward pass jumps ahead of the document passes that are
still waiting, so a search stays fast while a backfill keeps the model busy.
"""

from __future__ import annotations

import asyncio
import functools
import heapq
import itertools
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

__all__ = ["ForwardScheduler", "PRIORITY_QUERY", "PRIORITY_DOCUMENT"]

T = TypeVar("T")

PRIORITY_QUERY = 0
PRIORITY_DOCUMENT = 1


class ForwardScheduler:
    """A priority queue of blocking jobs served by one worker thread.

    Args:
        thread_initializer: runs once in the worker thread (e.g. to set torch's thread count).
        pipeline_depth: jobs handed to the thread at once (1 running + the rest waiting there). 1 lets a
            query overtake every waiting document pass; 2 also hides the event loop's wake-up gap between
            passes (small next to a CPU forward pass) at the price of a query waiting one more pass.
    """

    def __init__(self, *, thread_initializer: Callable[[], None] | None = None, pipeline_depth: int = 1) -> None:
        self._executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="embed-forward", initializer=thread_initializer
        )
        self._heap: list[tuple[int, int, Callable[[], Any], asyncio.Future[Any]]] = []
        self._seq = itertools.count()
        self._pipeline_depth = pipeline_depth
        self._wakeup: asyncio.Event | None = None
        self._slots: asyncio.Semaphore | None = None
        self._worker: asyncio.Task[None] | None = None
        self.busy_s = 0.0

    @property
    def waiting(self) -> int:
        """Jobs queued and not yet handed to the thread."""
        return len(self._heap)

    async def run(self, job: Callable[[], T], *, priority: int) -> T:
        """Queue ``job`` and wait for its result (lower ``priority`` runs first, FIFO within one)."""
        loop = asyncio.get_running_loop()
        if self._worker is None or self._worker.done():
            self._wakeup = asyncio.Event()
            self._slots = asyncio.Semaphore(self._pipeline_depth)
            self._worker = loop.create_task(self._work())
        future: asyncio.Future[T] = loop.create_future()
        heapq.heappush(self._heap, (priority, next(self._seq), job, future))
        assert self._wakeup is not None
        self._wakeup.set()
        return await future

    async def _work(self) -> None:
        assert self._wakeup is not None and self._slots is not None
        while True:
            # With depth > 1 the next job already waits inside the executor, so the thread starts it the
            # moment the previous one ends, even while this event loop is busy tokenizing or serialising.
            await self._slots.acquire()
            while not self._heap:
                self._wakeup.clear()
                await self._wakeup.wait()
            _, _, job, future = heapq.heappop(self._heap)
            if future.done():  # the caller went away
                self._slots.release()
                continue
            done = asyncio.wrap_future(self._executor.submit(self._timed, job))
            done.add_done_callback(functools.partial(self._finish, future))

    def _timed(self, job: Callable[[], T]) -> T:
        started = time.perf_counter()
        try:
            return job()
        finally:
            self.busy_s += time.perf_counter() - started

    def _finish(self, future: asyncio.Future[Any], done: asyncio.Future[Any]) -> None:
        assert self._slots is not None
        self._slots.release()
        if future.done():
            return
        if done.cancelled():
            future.cancel()
        elif done.exception() is not None:
            future.set_exception(done.exception())  # type: ignore[arg-type]
        else:
            future.set_result(done.result())

    def close(self) -> None:
        """Stop the worker; jobs still queued are cancelled."""
        if self._worker is not None:
            self._worker.cancel()
        for _, _, _, future in self._heap:
            future.cancel()
        self._heap.clear()
        self._executor.shutdown(wait=False, cancel_futures=True)
