"""Reranking from the search path: the HTTP client, an in-process adapter, a score cache,
:class:`RerankConfig` and :func:`apply_rerank` (top-k reordering with a fused-order fallback).

Nothing here imports torch, transformers or ray at import time; the in-process
adapter imports :mod:`rerank` only when asked to load a model.

Every reranker here has ``score(query, documents, *, timeout_s=None) -> list[float]``
(one score per document, input order, higher is better), so each also fits
``connector.search.Reranker``.
"""

from __future__ import annotations

import concurrent.futures
import functools
import hashlib
import inspect
import logging
import math
import random
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

import httpx
from pydantic import Field, PrivateAttr, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from connector.errors import (
    ConfigError,
    RerankError,
    RerankOverloaded,
    RerankRequestError,
    RerankServiceUnavailable,
    RerankTimeout,
)
from connector.texts import TextPolicy, build_text, template_fields, validate_template

__all__ = [
    "SupportsScore",
    "RerankResult",
    "RerankReply",
    "RerankClient",
    "InProcessReranker",
    "CachedReranker",
    "RerankConfig",
    "RerankOutcome",
    "apply_rerank",
    "document_text",
    "hit_id",
    "hit_source",
]

logger = logging.getLogger(__name__)

H = TypeVar("H")
_MAX_BACKOFF_S = 2.0


@runtime_checkable
class SupportsScore(Protocol):
    """Anything that scores documents against a query (higher is more relevant)."""

    def score(self, query: str, documents: Sequence[str]) -> list[float]: ...


@dataclass(frozen=True)
class RerankResult:
    """One result of ``POST /v1/rerank``."""

    index: int
    relevance_score: float


@dataclass(frozen=True)
class RerankReply:
    """The service's answer: results sorted by score, the model, the tokens used."""

    results: list[RerankResult]
    model: str
    total_tokens: int


def _secret(value: str | SecretStr | None) -> SecretStr | None:
    if value is None or isinstance(value, SecretStr):
        return value
    return SecretStr(value)


def _error_from_response(response: httpx.Response, url: str) -> RerankError:
    try:
        error = response.json().get("error") or {}
    except (ValueError, AttributeError):
        error = {}
    message = str(error.get("message") or response.text[:200] or response.reason_phrase)
    status = response.status_code
    if status == 429:
        retry_after = response.headers.get("retry-after")
        retry_after_s = float(retry_after) if retry_after and retry_after.isdigit() else 1.0
        return RerankOverloaded(
            f"the rerank service is overloaded: {message}", status=status, url=url, retry_after_s=retry_after_s
        )
    if status >= 500:
        return RerankServiceUnavailable(f"the rerank service failed ({status}): {message}", status=status, url=url)
    return RerankRequestError(
        f"the rerank service rejected the request ({status}): {message}",
        status=status,
        url=url,
        param=error.get("param"),
    )


class RerankClient:
    """Sync HTTP client of the rerank service (``POST /v1/rerank``, ``GET /info``, ``GET /healthz``).

    Args:
        base_url: the app's URL, route prefix included (``http://host:8000/rerank``).
        api_key: bearer token, when the service requires one.
        timeout_s: total time budget of one call, retries included (override per call).
        max_retries: retries of 429, 5xx and connection errors (jittered backoff, within the budget).
            0 suits the search path, where the fused order is the fallback.
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | SecretStr | None = None,
        timeout_s: float = 10.0,
        max_retries: int = 0,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ConfigError(f"rerank url must start with http:// or https://, got {base_url!r}", field="url")
        if timeout_s <= 0 or max_retries < 0:
            raise ConfigError("timeout_s must be > 0 and max_retries >= 0", field="timeout_s")
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self._api_key = _secret(api_key)
        headers = {"Authorization": f"Bearer {self._api_key.get_secret_value()}"} if self._api_key else {}
        self._http = httpx.Client(base_url=self.base_url, headers=headers)
        self._info: dict[str, Any] | None = None
        self._model_id: str | None = None

    def __repr__(self) -> str:
        return f"RerankClient({self.base_url!r})"

    def __enter__(self) -> RerankClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    @property
    def model_id(self) -> str:
        """The served model (from the last answer, else ``GET /info``)."""
        if self._model_id is None:
            self._model_id = str(self.info()["model_id"])
        return self._model_id

    def info(self) -> dict[str, Any]:
        """``GET /info`` (cached): model, kind, max_length, limits..."""
        if self._info is None:
            info = self._request("GET", "/info")
            if not isinstance(info, dict) or "model_id" not in info:
                raise RerankServiceUnavailable(
                    f"{self.base_url}/info did not answer with a model_id", url=self.base_url
                )
            self._info = info
        return self._info

    def healthy(self, *, timeout_s: float | None = None) -> bool:
        """Whether ``GET /healthz`` answers ok."""
        try:
            return bool(self._request("GET", "/healthz", timeout_s=timeout_s).get("status") == "ok")
        except RerankError:
            return False

    def rerank(
        self, query: str, documents: Sequence[str], *, top_n: int | None = None, timeout_s: float | None = None
    ) -> RerankReply:
        """Results sorted by score (highest first), at most ``top_n``.

        Raises:
            RerankTimeout: no answer within the budget.
            RerankServiceUnavailable: connection failed, 5xx, or a malformed answer.
            RerankOverloaded: 429 (after the retries, if any).
            RerankRequestError: other 4xx (``status``, ``param``).
        """
        body: dict[str, Any] = {"query": query, "documents": list(documents)}
        if top_n is not None:
            body["top_n"] = top_n
        data = self._request("POST", "/v1/rerank", body=body, timeout_s=timeout_s)
        try:
            results = [RerankResult(int(r["index"]), float(r["relevance_score"])) for r in data["results"]]
            reply = RerankReply(results, str(data["model"]), int((data.get("usage") or {}).get("total_tokens", 0)))
        except (KeyError, TypeError, ValueError) as e:
            raise RerankServiceUnavailable(f"malformed rerank answer: {e}", url=self.base_url) from e
        expected = len(documents) if top_n is None else min(top_n, len(documents))
        indices = {r.index for r in results}
        if len(results) != expected or len(indices) != expected or not indices <= set(range(len(documents))):
            raise RerankServiceUnavailable(
                f"the rerank service answered {len(results)} results for {len(documents)} documents",
                url=self.base_url,
            )
        self._model_id = reply.model
        return reply

    def score(self, query: str, documents: Sequence[str], *, timeout_s: float | None = None) -> list[float]:
        """One score per document, in input order (same errors as :meth:`rerank`)."""
        if not documents:
            return []
        scores = [0.0] * len(documents)
        for result in self.rerank(query, documents, timeout_s=timeout_s).results:
            scores[result.index] = result.relevance_score
        return scores

    def _request(
        self, method: str, path: str, *, body: Mapping[str, Any] | None = None, timeout_s: float | None = None
    ) -> Any:
        budget = self.timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + budget
        url = f"{self.base_url}{path}"
        for attempt in range(self.max_retries + 1):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                response = self._http.request(method, path, json=body, timeout=httpx.Timeout(remaining))
            except httpx.TimeoutException as e:
                raise RerankTimeout(f"{url} did not answer within {budget:g}s", url=url, timeout_s=budget) from e
            except httpx.TransportError as e:
                error: RerankError = RerankServiceUnavailable(f"cannot reach the rerank service at {url}: {e}", url=url)
                error.__cause__ = e
            else:
                if response.status_code < 400:
                    try:
                        return response.json()
                    except ValueError as e:
                        raise RerankServiceUnavailable(f"{url} answered non-JSON", url=url) from e
                error = _error_from_response(response, url)
            if isinstance(error, RerankRequestError) or attempt >= self.max_retries:
                raise error
            # Full jitter, capped; a 429's Retry-After is a floor when the budget allows it.
            delay = random.uniform(0.0, min(_MAX_BACKOFF_S, 0.05 * 2**attempt))
            delay = max(delay, getattr(error, "retry_after_s", 0.0))
            if time.monotonic() + delay >= deadline:
                raise error
            logger.warning(
                "rerank request to %s failed (%s); retry %s/%s in %.2fs",
                url,
                error,
                attempt + 1,
                self.max_retries,
                delay,
            )
            time.sleep(delay)
        raise RerankTimeout(f"{url} did not answer within {budget:g}s", url=url, timeout_s=budget)


class InProcessReranker:
    """Runs a reranker in this process (small setups: no Ray, no HTTP).

    With ``timeout_s`` the call runs on a worker thread and is abandoned when the
    budget runs out (PyTorch cannot be interrupted: the computation finishes in the
    background and the next call waits for it).

    Args:
        reranker: anything with ``score(query, documents)``, e.g. ``rerank.models.load_reranker(...)``.
        model_id: the name used in cache keys (default: ``reranker.model_id`` or its class name).
    """

    def __init__(self, reranker: SupportsScore, *, model_id: str | None = None) -> None:
        self._reranker = reranker
        self.model_id = model_id or str(getattr(reranker, "model_id", "") or type(reranker).__name__)
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"InProcessReranker({self.model_id!r})"

    @classmethod
    def from_model(cls, model: str, **settings: Any) -> InProcessReranker:
        """Load a cross-encoder or LLM reranker (local folder or hub id) with ``rerank.RerankSettings`` options.

        Raises:
            ConfigError: the ``[serve]`` extra is missing, or the model or settings are invalid.
        """
        try:
            from rerank.errors import RerankServiceError  # noqa: PLC0415 - torch only when asked
            from rerank.models import load_reranker  # noqa: PLC0415
            from rerank.settings import RerankSettings  # noqa: PLC0415
        except ImportError as e:
            raise ConfigError(
                "in-process reranking needs torch and transformers (pip install 'eshybrid[serve]'); "
                "or point rerank at a service URL",
                field="model",
            ) from e
        try:
            return cls(load_reranker(RerankSettings(model=model, **settings)))
        except (RerankServiceError, ValidationError) as e:
            raise ConfigError(f"cannot load reranker {model!r}: {e}", field="model") from e

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
            ConfigError: the model cannot be loaded in-process.
        """
        with self._backend_lock:
            if self._backend is None:
                inner: SupportsScore
                if self.url:
                    inner = RerankClient(
                        self.url, api_key=self.api_key, timeout_s=self.timeout_s, max_retries=self.max_retries
                    )
                elif self.model:
                    inner = InProcessReranker.from_model(self.model)
                else:
                    assert self.reranker is not None
                    inner = self.reranker
                self._backend = CachedReranker(inner, size=self.cache_size) if self.cache_size else inner
            return self._backend


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
    ``reason``, and a WARNING is logged.

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
    window = hits[: config.top_k]
    if not window:
        return RerankOutcome(hits, [None] * len(hits))
    texts = [
        document_text(
            sources.get(hit_id(hit)) if sources is not None else hit_source(hit),
            fields=config.fields,
            template=config.template,
            max_chars=config.max_chars_per_document,
        )
        for hit in window
    ]
    try:
        backend = reranker if reranker is not None else config.backend()
        scores = _score_within(backend, query, texts, config.timeout_s)
        if len(scores) != len(window) or not all(math.isfinite(s) for s in scores):
            raise RerankError(f"the reranker returned {len(scores)} scores (some not finite?) for {len(window)} hits")
    except (RerankError, ConfigError) as e:
        took_ms = round((time.perf_counter() - started) * 1000.0, 3)
        reason = f"{type(e).__name__}: {e}"
        logger.warning(
            "rerank via %s failed after %.1f ms, answering in fused order: %s", config.source, took_ms, reason
        )
        return RerankOutcome(hits, [None] * len(hits), fallback=True, reason=reason, took_ms=took_ms)
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
