"""Reranking from the search path: an in-process adapter, a score cache, :class:`RerankConfig`
and :func:`apply_rerank` (top-k reordering with a fused-order fallback).

The rerank service's HTTP client is :class:`connector.services.rerank.RerankClient`. Nothing here
imports torch, transformers, ray or the :mod:`rerank` package: a model to run in this process is
loaded by the caller (``rerank.load_in_process``, as the CLI does) and handed in as ``reranker``
or through ``loader``.

Every reranker here has ``score(query, documents, *, timeout_s=None) -> list[float]``
(one score per document, input order, higher is better; ``timeout_s`` is the budget of
that call), so each also fits ``connector.search.Reranker``.
"""

from __future__ import annotations

import concurrent.futures
import functools
import hashlib
import inspect
import logging
import math
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

from pydantic import Field, PrivateAttr, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from connector.errors import ConfigError, EshybridError, RerankError, RerankTimeout
from connector.services.rerank import RerankClient
from connector.texts import TextPolicy, build_text, template_fields, validate_template

__all__ = [
    "SupportsScore",
    "InProcessReranker",
    "CachedReranker",
    "RerankConfig",
    "RerankOutcome",
    "apply_rerank",
    "rerank_outcome",
    "rerank_texts",
    "score_texts",
    "document_text",
    "hit_id",
    "hit_source",
]

logger = logging.getLogger(__name__)

H = TypeVar("H")


@runtime_checkable
class SupportsScore(Protocol):
    """Anything that scores documents against a query (higher is more relevant)."""

    def score(self, query: str, documents: Sequence[str]) -> list[float]: ...


class InProcessReranker:
    """Runs a reranker in this process (small setups: no Ray, no HTTP).

    With ``timeout_s`` the call runs on a worker thread and is abandoned when the
    budget runs out (PyTorch cannot be interrupted: the computation finishes in the
    background and the next call waits for it).

    Args:
        reranker: anything with ``score(query, documents)``, e.g. ``rerank.load_in_process(model)``.
        model_id: the name used in cache keys (default: ``reranker.model_id`` or its class name).
    """

    def __init__(self, reranker: SupportsScore, *, model_id: str | None = None) -> None:
        self._reranker = reranker
        self.model_id = model_id or str(getattr(reranker, "model_id", "") or type(reranker).__name__)
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"InProcessReranker({self.model_id!r})"

    def score(self, query: str, documents: Sequence[str], *, timeout_s: float | None = None) -> list[float]:
        """Scores in input order.

        Raises:
            RerankTimeout: the budget ran out.
            RerankError: the model failed.
        """
        if timeout_s is None:
            return self._call(query, list(documents))
        future = self._pool().submit(self._call, query, list(documents))
        try:
            return future.result(timeout=timeout_s)
        except concurrent.futures.TimeoutError as e:
            raise RerankTimeout(f"the in-process reranker took more than {timeout_s:g}s", timeout_s=timeout_s) from e

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False)

    def _pool(self) -> concurrent.futures.ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="rerank")
            return self._executor

    def _call(self, query: str, documents: list[str]) -> list[float]:
        try:
            return [float(s) for s in self._reranker.score(query, documents)]
        except RerankError:
            raise
        except Exception as e:  # noqa: BLE001 - a model failure must become a fallback, never an error page
            raise RerankError(f"the in-process reranker failed: {type(e).__name__}: {e}") from e


def _takes_timeout(reranker: SupportsScore) -> bool:
    try:
        return "timeout_s" in inspect.signature(reranker.score).parameters
    except (TypeError, ValueError):
        return False


def _score_within(reranker: SupportsScore, query: str, documents: list[str], timeout_s: float | None) -> list[float]:
    """Call ``reranker.score`` with the budget when it takes one; otherwise check the budget afterwards."""
    if _takes_timeout(reranker):
        return list(reranker.score(query, documents, timeout_s=timeout_s))  # type: ignore[call-arg]
    started = time.perf_counter()
    try:
        scores = list(reranker.score(query, documents))
    except RerankError:
        raise
    except Exception as e:  # noqa: BLE001 - see InProcessReranker._call
        raise RerankError(f"the reranker failed: {type(e).__name__}: {e}") from e
    elapsed = time.perf_counter() - started
    if timeout_s is not None and elapsed > timeout_s:
        raise RerankTimeout(f"the reranker took {elapsed:.3f}s, over its {timeout_s:g}s budget", timeout_s=timeout_s)
    return scores


class CachedReranker:
    """Keeps scores per (model, query, document) in an LRU; only unseen documents go to ``reranker``.

    Thread-safe.  ``hits`` and ``misses`` count documents.
    """

    def __init__(self, reranker: SupportsScore, *, size: int = 4096) -> None:
        if size < 1:
            raise ConfigError("cache size must be >= 1", field="cache_size")
        self.reranker = reranker
        self.size = size
        self.hits = 0
        self.misses = 0
        self._items: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"CachedReranker({self.reranker!r}, size={self.size})"

    @property
    def model_id(self) -> str:
        return str(getattr(self.reranker, "model_id", "") or type(self.reranker).__name__)

    def score(self, query: str, documents: Sequence[str], *, timeout_s: float | None = None) -> list[float]:
        model = self.model_id
        keys = [_cache_key(model, query, document) for document in documents]
        scores: list[float | None] = []
        with self._lock:
            for key in keys:
                value = self._items.get(key)
                if value is not None:
                    self._items.move_to_end(key)
                scores.append(value)
        missing = [i for i, value in enumerate(scores) if value is None]
        if missing:
            fresh = _score_within(self.reranker, query, [documents[i] for i in missing], timeout_s)
            if len(fresh) != len(missing):
                raise RerankError(f"the reranker returned {len(fresh)} scores for {len(missing)} documents")
            with self._lock:
                for i, value in zip(missing, fresh, strict=True):
                    scores[i] = float(value)
                    self._items[keys[i]] = float(value)
                while len(self._items) > self.size:
                    self._items.popitem(last=False)
        with self._lock:
            self.hits += len(documents) - len(missing)
            self.misses += len(missing)
        return [float(value) for value in scores if value is not None]


def _cache_key(model: str, query: str, document: str) -> str:
    digest = hashlib.sha256()
    for part in (model, query, document):
        digest.update(part.encode("utf-8", "surrogatepass"))
        digest.update(b"\x00")
    return digest.hexdigest()


class RerankConfig(BaseSettings):
    """How the search path reranks: which reranker, how many hits, which text, what budget.

    Exactly one of ``url`` (the rerank service), ``model`` (load in-process) or
    ``reranker`` (an object with ``score``) names the reranker.  Read from
    keyword arguments or ``ESHYBRID_SEARCH_RERANK_<FIELD>`` (e.g.
    ``ESHYBRID_SEARCH_RERANK_URL``, ``ESHYBRID_SEARCH_RERANK_API_KEY``).

    This library does not load models: ``model`` needs a ``loader`` (``rerank.load_in_process``
    from the ``rerank`` package, which the CLI hands in), or pass the loaded object as ``reranker``::

        import rerank
        RerankConfig(model="cross-encoder/ms-marco-MiniLM-L-6-v2", loader=rerank.load_in_process)
    """

    model_config = SettingsConfigDict(
        env_prefix="ESHYBRID_SEARCH_RERANK_",
        extra="forbid",
        frozen=True,
        arbitrary_types_allowed=True,
        protected_namespaces=(),
    )

    top_k: int = Field(default=50, ge=1, le=1000, description="fused hits the reranker reorders")
    fields: tuple[str, ...] | None = Field(
        default=None, description="_source fields (dotted) joined into the document text; default: all text"
    )
    template: str | None = Field(
        default=None, description="document text template over _source fields, e.g. '{title}\\n{text}'"
    )
    timeout_s: float = Field(default=2.0, gt=0.0, le=600.0, description="budget of one rerank call")
    url: str | None = Field(default=None, description="rerank service base URL (route prefix included)")
    model: str | None = Field(default=None, description="checkpoint folder or hub id to load in-process")
    loader: Callable[[str], SupportsScore] | None = Field(
        default=None, exclude=True, repr=False, description="loads `model` in this process (rerank.load_in_process)"
    )
    api_key: SecretStr | None = Field(default=None, description="bearer token for the service")
    reranker: SupportsScore | None = Field(default=None, exclude=True, repr=False, description="an in-process reranker")
    max_chars_per_document: int = Field(
        default=4000, ge=1, le=1_000_000, description="document text is cut to this many characters before sending"
    )
    cache_size: int = Field(default=4096, ge=0, le=10_000_000, description="cached scores (0: no cache)")
    max_retries: int = Field(default=0, ge=0, le=5, description="service retries within the budget")

    _backend: SupportsScore | None = PrivateAttr(default=None)
    _backend_lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @model_validator(mode="after")
    def _one_reranker(self) -> RerankConfig:
        given = [name for name in ("url", "model", "reranker") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of url, model or reranker (got {given or 'none'})")
        return self

    @property
    def source(self) -> str:
        """What reranks, for logs and responses: the URL, the model, or the object's model id."""
        if self.url:
            return self.url
        if self.model:
            return self.model
        return str(getattr(self.reranker, "model_id", "") or type(self.reranker).__name__)

    def backend(self) -> SupportsScore:
        """The reranker to call, built once: a client, an in-process model or the given object, cached.

        Raises:
            ConfigError: the model cannot be loaded in-process (or there is no ``loader`` for it).
        """
        with self._backend_lock:
            if self._backend is None:
                inner: SupportsScore
                if self.url:
                    inner = RerankClient(
                        self.url, api_key=self.api_key, timeout_s=self.timeout_s, max_retries=self.max_retries
                    )
                elif self.model:
                    loaded = self._load(self.model)
                    inner = loaded if isinstance(loaded, InProcessReranker) else InProcessReranker(loaded)
                else:
                    assert self.reranker is not None
                    inner = self.reranker
                self._backend = CachedReranker(inner, size=self.cache_size) if self.cache_size else inner
            return self._backend

    def _load(self, model: str) -> SupportsScore:
        if self.loader is None:
            raise ConfigError(
                f"rerank model {model!r}: this library does not load models; pass loader=rerank.load_in_process "
                "(pip install 'eshybrid[serve]'), reranker=<an object with score()>, or a service url",
                field="model",
            )
        try:
            return self.loader(model)
        except EshybridError:
            raise
        except Exception as e:  # noqa: BLE001 - any loader failure is a config problem: the search falls back
            raise ConfigError(f"cannot load reranker {model!r}: {e}", field="model") from e


def hit_id(hit: Any) -> str:
    """A hit's id: ``_id``/``id`` of a dict, or the ``id``/``_id`` attribute (``SearchHit``, ``FusedDoc``)."""
    if isinstance(hit, Mapping):
        value = hit.get("_id", hit.get("id"))
    else:
        value = getattr(hit, "id", None)
        value = getattr(hit, "_id", None) if value is None else value
    if value is None:
        raise ConfigError(f"cannot find the id of hit {hit!r} (expected _id or id)", field="hits")
    return str(value)


def hit_source(hit: Any) -> Mapping[str, Any] | None:
    """A hit's ``_source``/``source`` (dict key or attribute), or None."""
    if isinstance(hit, Mapping):
        value = hit.get("_source", hit.get("source"))
    else:
        value = getattr(hit, "source", None)
        value = getattr(hit, "_source", None) if value is None else value
    return value if isinstance(value, Mapping) else None


def document_text(
    source: Mapping[str, Any] | None,
    *,
    fields: Sequence[str] | None = None,
    template: str | None = None,
    max_chars: int | None = None,
) -> str:
    """The text the reranker reads for one document: :func:`connector.texts.build_text`, lenient.

    ``template`` wins (``"{title}\\n{text}"``, dotted names allowed; its fields are the
    ones it names); else the non-empty ``fields`` joined by newlines; else every string
    field at the top of ``_source``. The same text the embedding path renders for the
    same fields and template (lists joined with spaces), but never an error: a hit
    without ``_source`` or without any of the fields reads ``""``, a number reads as
    ``str``. Cut to ``max_chars``.

    Raises:
        ConfigError: a malformed template (unmatched brace, empty placeholder).
    """
    if template is not None:
        policy = _template_policy(template, max_chars)  # a bad template fails whatever the hit
        return build_text(source, policy, strict=False) if source else ""
    if not source:
        return ""
    names = tuple(fields) if fields else tuple(k for k, v in source.items() if isinstance(v, str) and v)
    if not names:
        return ""
    policy = TextPolicy(fields=names, max_text_chars=sys.maxsize if max_chars is None else max_chars)
    return build_text(source, policy, strict=False)


@functools.lru_cache(maxsize=64)
def _template_policy(template: str, max_chars: int | None) -> TextPolicy:
    # Built (and the template validated) once per template, not once per hit.
    validate_template(template, fields=template_fields(template))
    return TextPolicy(
        fields=tuple(template_fields(template)),
        template=template,
        max_text_chars=sys.maxsize if max_chars is None else max_chars,
    )


@dataclass(frozen=True)
class RerankOutcome(Generic[H]):
    """What :func:`apply_rerank` did.

    Attributes:
        hits: all hits, the reranked top k first (by rerank score), the rest after them in fused order.
        rerank_scores: aligned with ``hits``: the score, or None for hits outside the top k (or on fallback).
        fallback: the reranker failed or ran over budget; ``hits`` is the fused order unchanged.
        reason: why it fell back (None when it did not).
        reranked: how many hits were reranked.
        took_ms: time spent reranking.
    """

    hits: list[H]
    rerank_scores: list[float | None]
    fallback: bool = False
    reason: str | None = None
    reranked: int = 0
    took_ms: float = 0.0
    scores_by_id: dict[str, float] = field(default_factory=dict)


def rerank_texts(
    hits: Sequence[H],
    config: RerankConfig,
    *,
    sources: Mapping[str, Mapping[str, Any] | None] | None = None,
) -> list[str]:
    """The document texts of the top ``config.top_k`` of ``hits`` (pure: the reranker's input)."""
    return [
        document_text(
            sources.get(hit_id(hit)) if sources is not None else hit_source(hit),
            fields=config.fields,
            template=config.template,
            max_chars=config.max_chars_per_document,
        )
        for hit in list(hits)[: config.top_k]
    ]


def score_texts(
    config: RerankConfig, query: str, texts: list[str], reranker: SupportsScore | None = None
) -> list[float]:
    """The one I/O step of reranking: the scores of ``texts`` within ``config.timeout_s``.

    Raises:
        RerankError: the reranker failed or ran over budget.
        ConfigError: the reranker cannot be built (e.g. no loader for ``model``).
    """
    backend = reranker if reranker is not None else config.backend()
    return _score_within(backend, query, texts, config.timeout_s)


def rerank_outcome(
    hits: Sequence[H],
    config: RerankConfig,
    scores: Sequence[float] | BaseException,
    *,
    started: float,
) -> RerankOutcome[H]:
    """Reorder the top ``config.top_k`` of ``hits`` by ``scores`` (pure), or fall back on a failure.

    ``scores`` is what :func:`score_texts` returned, or the error it raised; a wrong count or a
    non-finite score is a failure too. ``started`` is the ``perf_counter`` when reranking began.
    """
    hits = list(hits)
    window = hits[: config.top_k]
    failure: BaseException | None = scores if isinstance(scores, BaseException) else None
    if failure is None:
        assert not isinstance(scores, BaseException)
        scores = list(scores)
        if len(scores) != len(window) or not all(math.isfinite(s) for s in scores):
            failure = RerankError(
                f"the reranker returned {len(scores)} scores (some not finite?) for {len(window)} hits"
            )
    if failure is not None:
        took_ms = round((time.perf_counter() - started) * 1000.0, 3)
        reason = f"{type(failure).__name__}: {failure}"
        logger.warning(
            "rerank via %s failed after %.1f ms, answering in fused order: %s", config.source, took_ms, reason
        )
        return RerankOutcome(hits, [None] * len(hits), fallback=True, reason=reason, took_ms=took_ms)
    assert not isinstance(scores, BaseException)
    order = sorted(range(len(window)), key=lambda i: (-scores[i], i))
    new_hits = [window[i] for i in order] + hits[len(window) :]
    new_scores: list[float | None] = [float(scores[i]) for i in order]
    new_scores += [None] * (len(hits) - len(window))
    return RerankOutcome(
        new_hits,
        new_scores,
        reranked=len(window),
        took_ms=round((time.perf_counter() - started) * 1000.0, 3),
        scores_by_id={hit_id(window[i]): float(scores[i]) for i in order},
    )


def apply_rerank(
    query: str,
    hits: Sequence[H],
    config: RerankConfig,
    reranker: SupportsScore | None = None,
    *,
    sources: Mapping[str, Mapping[str, Any] | None] | None = None,
) -> RerankOutcome[H]:
    """Rerank the top ``config.top_k`` of fused ``hits``; keep the rest after them in fused order.

    Never raises because of the reranker: when it is down, over ``config.timeout_s``,
    or answers nonsense, the outcome has the fused order, ``fallback=True`` and a
    ``reason``, and a WARNING is logged. (:func:`rerank_texts`, :func:`score_texts` and
    :func:`rerank_outcome` are its three steps, for a driver that does the I/O itself.)

    Args:
        query: the user's text.
        hits: fused hits, best first: dicts with ``_id``/``_source`` (or ``id``/``source``) or
            objects with those attributes (``SearchHit``).
        config: what to rerank and how.
        reranker: overrides ``config.backend()`` (anything with ``score(query, documents)``).
        sources: ``_source`` by id, for hits that do not carry their own (``FusedDoc``).

    Returns:
        A :class:`RerankOutcome` (the same hit objects, reordered).
    """
    started = time.perf_counter()
    hits = list(hits)
    if not hits[: config.top_k]:
        return RerankOutcome(hits, [None] * len(hits))
    texts = rerank_texts(hits, config, sources=sources)
    scores: list[float] | BaseException
    try:
        scores = score_texts(config, query, texts, reranker)
    except (RerankError, ConfigError) as e:
        scores = e
    return rerank_outcome(hits, config, scores, started=started)
