"""The image backfill's prefetch: the next page's images download while the current page embeds.

The reader stage announces a page's images once it knows which documents need embedding (``prefetch``, after
the incremental check: an image whose document is skipped is never downloaded); they are fetched on the job's
fetch pool, in announcement order, as far as the budget allows: at most ``max_images`` images held ahead of the
embed stage (fetched or in flight, not yet taken; the job sets one page) and ``max_bytes`` of fetched bytes
(downloads in flight when it is reached may add the fetch pool's ``max_concurrency`` x its byte limit per image).
The rest wait in a backlog of refs (strings only) until the embed stage takes what was held.

The embed stage ``take``s a page's images: the held ones are handed over, the others are fetched at once, and
the freed budget goes to the backlog. Nothing here changes what the pipeline reads, writes or checkpoints: a
prefetch is a cache of bytes, lost with the process, and a failed download is a result (:class:`ImageRejected`)
handed to the page that needs it, as without prefetch.
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from connector.jobs.images import ImageRejected

    # One download: the bytes, or why it failed.
    Fetched = Future[bytes | ImageRejected]

__all__ = ["ImagePrefetch"]


class ImagePrefetch:
    """Images fetched ahead of the embed stage, within a budget of images and bytes.

    Args:
        submit: starts one download on the fetch pool and returns its future (``ImageFetcher.submit``).
        max_images: images held ahead (fetched or in flight, not taken); 0 turns prefetching off.
        max_bytes: fetched bytes held ahead; past it no new download starts until the embed stage takes some.
    """

    def __init__(self, submit: Callable[[str], Fetched], *, max_images: int, max_bytes: int) -> None:
        self._submit = submit
        self.max_images = max_images
        self.max_bytes = max_bytes
        # Re-entrant: a download already finished runs its done-callback at once, inside ``_fill``.
        self._lock = threading.RLock()
        self._held: OrderedDict[str, Fetched] = OrderedDict()
        self._sizes: dict[str, int] = {}
        self._held_bytes = 0
        self._backlog: deque[str] = deque()
        self._wanted: set[str] = set()

    def prefetch(self, refs: Sequence[str]) -> None:
        """Announce images the embed stage will ask for (in the order it will); start what the budget allows."""
        if self.max_images <= 0:
            return
        with self._lock:
            for ref in dict.fromkeys(refs):
                if ref not in self._held and ref not in self._wanted:
                    self._backlog.append(ref)
                    self._wanted.add(ref)
            self._fill()

    def take(self, refs: Sequence[str]) -> list[Fetched]:
        """The downloads of ``refs`` (distinct), in order: held ones handed over, the others started now."""
        with self._lock:
            held = [self._held.pop(ref, None) for ref in refs]
            for ref in refs:
                self._held_bytes -= self._sizes.pop(ref, 0)
                self._wanted.discard(ref)  # taken: a backlog entry for it is dropped when reached
        # The page being embedded goes on the pool before the backlog does.
        futures = [future if future is not None else self._submit(ref) for ref, future in zip(refs, held)]
        with self._lock:
            self._fill()
        return futures

    @property
    def held(self) -> tuple[int, int]:
        """(images held ahead, fetched bytes held ahead): what the budget bounds."""
        with self._lock:
            return len(self._held), self._held_bytes

    # ----- internals -----

    def _fill(self) -> None:
        """Start backlog downloads while the budget allows (the caller holds the lock)."""
        while self._backlog and len(self._held) < self.max_images and self._held_bytes < self.max_bytes:
            ref = self._backlog.popleft()
            if ref not in self._wanted:
                continue  # taken before its turn came
            self._wanted.discard(ref)
            future = self._submit(ref)
            self._held[ref] = future
            future.add_done_callback(functools.partial(self._count, ref))

    def _count(self, ref: str, done: Fetched) -> None:
        """A held download finished: its bytes count against the budget until taken."""
        result = done.result() if not done.cancelled() and done.exception() is None else None
        size = len(result) if isinstance(result, bytes) else 0
        with self._lock:
            if self._held.get(ref) is done:
                self._sizes[ref] = size
                self._held_bytes += size
