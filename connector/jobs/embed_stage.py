"""The pipeline's embed stage: call the embedding service, retry, find refused texts, check vectors.

Texts are sorted by length before batching and the order restored after (less padding).
429/503/unreachable are retried with jittered backoff and feed the shared
:class:`Backpressure`; a batch the service refuses (4xx) is bisected down to the
texts it refuses, which become dead letters through the :class:`JobMode`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from connector.errors import EmbeddingOverloaded, EmbeddingRequestError, EmbeddingServiceUnavailable, JobError
from connector.jobs.backpressure import Backpressure
from connector.jobs.passages import PassageStep, passages_value
from connector.jobs.work import DocWork, Embedder, JobMode, Page, PipelineOptions, _Stopped

__all__ = ["EmbedStage"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")


class EmbedStage:
    """Stage 2 of :class:`connector.jobs.pipeline.Pipeline`; shares its stop event, backpressure and live counts."""

    def __init__(
        self,
        *,
        mode: JobMode,
        embedder: Embedder | None,
        passages: PassageStep | None,
        options: PipelineOptions,
        backpressure: Backpressure,
        stop: threading.Event,
        count: Callable[..., None],
    ) -> None:
        self.mode = mode
        self.embedder = embedder
        self.passages = passages
        self.options = options
        self.backpressure = backpressure
        self._stop = stop
        self._count = count

    def announce(self, page: Page) -> None:
        """Tell an embedder that fetches ahead (the image job's ``prefetch``) what a classified page will ask for."""
        prefetch = getattr(self.embedder, "prefetch", None)
        if prefetch is None or self.passages is not None:
            return
        texts = [w.text for w in page.work if w.verdict == "embed" and w.text]
        if texts:
            prefetch(sorted(texts, key=len))  # the order embed_works sends them in

    def embed_works(self, works: list[DocWork], page: Page) -> None:
        """Embed ``works`` (texts, or passages in passage mode); a refused one becomes a dead letter."""
        assert self.embedder is not None, "a job with work to embed needs an embedder"
        if self.passages is not None:
            self._embed_passages(works, page)
            return
        texts = [w.text or "" for w in works]
        # Sort by length so each service batch pads little; restore the order after.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        results = self._embed_or_bisect([texts[i] for i in order])
        page.counts.embedded += len(texts)
        self._count(embedded=len(texts))
        for position, result in zip(order, results):
            work = works[position]
            if isinstance(result, EmbeddingRequestError):
                # An image job's errors say why themselves (``reason_code``: image_unreachable...).
                code = getattr(result, "reason_code", None)
                self.mode.mark_unembeddable(
                    work,
                    code or "embedding_rejected",
                    str(result) if code else f"the embedding service refused the text: {result}",
                )
                if work.dead_letter is not None:
                    page.dead_letters.append(work.dead_letter)
                if work.verdict == "dead":
                    page.counts.dead_lettered += 1
                    self._count(dead_lettered=1)
                continue
            work.vector = result
            work.verdict = "write"
        page.work = [w for w in page.work if w.verdict != "dead"]

    def _embed_passages(self, works: list[DocWork], page: Page) -> None:
        """Passage mode: cut each text, embed every passage, attach the nested array to its document."""
        step = self.passages
        assert step is not None
        cuts = self._with_retry(lambda: step.cut([w.text or "" for w in works], [step.prefix(w.source) for w in works]))
        flat = [p.text for passages in cuts for p in passages]
        order = sorted(range(len(flat)), key=lambda i: len(flat[i]))
        sorted_results = self._embed_or_bisect([flat[i] for i in order])
        results: list[list[float] | EmbeddingRequestError] = [[] for _ in flat]
        for position, result in zip(order, sorted_results):
            results[position] = result
        page.counts.embedded += len(works)
        self._count(embedded=len(works))
        first = 0
        for work, passages in zip(works, cuts):
            mine = results[first : first + len(passages)]
            first += len(passages)
            refused = next((r for r in mine if isinstance(r, EmbeddingRequestError)), None)
            if refused is not None or not passages:
                reason = f"the embedding service refused a passage: {refused}" if refused else "no passage to embed"
                self.mode.mark_unembeddable(work, "embedding_rejected", reason)
                if work.dead_letter is not None:
                    page.dead_letters.append(work.dead_letter)
                if work.verdict == "dead":
                    page.counts.dead_lettered += 1
                    self._count(dead_lettered=1)
                continue
            work.passages = passages_value(passages, [r for r in mine if not isinstance(r, EmbeddingRequestError)])
            work.verdict = "write"
        page.work = [w for w in page.work if w.verdict != "dead"]

    def _with_retry(self, call: Callable[[], _T]) -> _T:
        """``call()`` with the service retry policy (429/503/unreachable), backpressure included.

        Each attempt first waits out the shared backpressure delay; a stopped pipeline
        makes no further attempt.
        """

        def before_sleep(state: RetryCallState) -> None:
            err = state.outcome.exception() if state.outcome else None
            logger.warning(
                "embedding service call failed (%s); retry %s in %.1fs",
                err,
                state.attempt_number,
                state.next_action.sleep if state.next_action else 0.0,
            )
            self.backpressure.penalize(type(err).__name__)

        retrying = Retrying(
            stop=stop_after_attempt(self.options.embed_max_retries + 1),
            wait=wait_random_exponential(multiplier=0.5, max=self.options.max_backoff_s),
            retry=retry_if_exception_type((EmbeddingOverloaded, EmbeddingServiceUnavailable)),
            before_sleep=before_sleep,
            reraise=True,
        )
        for attempt in retrying:
            with attempt:
                if self._stop.is_set():
                    raise _Stopped()
                self.backpressure.wait(self._stop)
                result = call()
        self.backpressure.relieve()
        return result

    def _embed_or_bisect(self, texts: list[str]) -> list[list[float] | EmbeddingRequestError]:
        """Embed; when the service refuses a batch (4xx), split it to find the texts it refuses."""
        try:
            vectors = self._embed_with_retry(texts)
        except EmbeddingRequestError as e:
            if len(texts) == 1:
                return [e]
            mid = len(texts) // 2
            return self._embed_or_bisect(texts[:mid]) + self._embed_or_bisect(texts[mid:])
        return list(vectors)

    def _embed_with_retry(self, texts: list[str]) -> list[list[float]]:
        assert self.embedder is not None
        embedder = self.embedder
        vectors = self._with_retry(lambda: embedder.embed_documents(texts))
        self._check_vectors(texts, vectors)
        return vectors

    def _check_vectors(self, texts: Sequence[str], vectors: Sequence[Sequence[float]]) -> None:
        if len(vectors) != len(texts):
            raise JobError(f"the embedding service returned {len(vectors)} vectors for {len(texts)} texts")
        dims = self.options.dims
        if dims is not None and any(len(v) != dims for v in vectors):
            bad = next(len(v) for v in vectors if len(v) != dims)
            raise JobError(
                f"the embedding service returned {bad}-dim vectors but the field holds {dims} dims; "
                "point --embed-url at the model the field was built for, or migrate to a new field"
            )
