"""Image vectors in a backfill: fetch each document's image, embed it through the image service's image tower.

:class:`ImageEmbedder` stands where the pipeline's text embedder stands (``embed_documents``): the "text" of a
document is the value of its image field, a URL (``http(s)://``) or a path. The job is incremental like a text
job, but what it hashes (with the model id) is the URL/path *and a validator of the bytes now behind it*
(:class:`ImageVersions`): a URL's ``ETag`` (else ``Last-Modified``, else the SHA-256 of the bytes) from a HEAD, a
file's mtime and size. A document is skipped when neither its URL/path nor its image changed.

Fetching: one bounded thread pool per job (``max_concurrency``), a timeout per try, a byte limit (checked on the
declared length and while streaming), a content-type check (``image/*``), retries with jittered backoff on
timeouts, connection errors and 5xx (never on 4xx). The image service decodes and checks format and pixels.
The next page's images download while the current page embeds (:mod:`connector.jobs.image_prefetch`: one page
ahead by default, bounded in images and bytes), and a page is embedded a request at a time as its images arrive,
so fetching overlaps embedding inside a page too.

A document whose image cannot be fetched or decoded raises :class:`ImageRejected` (an
:class:`~connector.errors.EmbeddingRequestError` with a ``reason_code``): the pipeline dead-letters that document
alone with the reason (``image_unreachable``, ``image_too_large``, ``image_not_an_image``, ``image_rejected``),
and the other documents of the page are written. The text vector is another field, written by the text job.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from connector.cluster.client import Cluster
from connector.errors import ConfigError, EmbeddingRequestError
from connector.jobs.backfill import BackfillConfig, run_backfill
from connector.jobs.common import JobSummary, find_property
from connector.jobs.image_prefetch import ImagePrefetch
from connector.jobs.settings import ClusterSpec
from connector.services.embedding import EmbeddingClient
from mappings.images import build_add_image_vector_field_body, image_vector_field

__all__ = [
    "ImageFetchSettings",
    "ImageFetcher",
    "ImageEmbedder",
    "ImageRejected",
    "ImageVersions",
    "add_image_vector_field",
    "http_validator",
    "run_image_backfill",
    "versioned_ref",
]

logger = logging.getLogger(__name__)


class ImageRejected(EmbeddingRequestError):
    """One document's image cannot be fetched or embedded; ``reason_code`` says why (dead-letter code)."""

    reason_code: str


@dataclass(frozen=True, kw_only=True)
class ImageFetchSettings:
    """How images are fetched. Attributes: ``timeout_s`` per try; ``max_bytes`` per image; ``max_concurrency``
    downloads at once; ``max_retries`` after the first try (5xx, timeouts, connection errors);
    ``path_root``: a relative path value is read under it (None: relative paths are refused);
    ``prefetch_images``: images downloaded ahead of the embed stage (None: one page of the job, 0: none);
    ``prefetch_bytes``: fetched bytes held ahead at most."""

    timeout_s: float = 10.0
    max_bytes: int = 10 * 1024 * 1024
    max_concurrency: int = 8
    max_retries: int = 3
    max_backoff_s: float = 5.0
    path_root: str | None = None
    prefetch_images: int | None = None
    prefetch_bytes: int = 256 * 1024 * 1024

    def __post_init__(self) -> None:
        if self.timeout_s <= 0 or self.max_bytes < 1 or self.max_concurrency < 1 or self.max_retries < 0:
            raise ConfigError(
                "image fetch: timeout_s, max_bytes and max_concurrency must be positive, max_retries >= 0",
                field="image_fetch",
            )
        if (self.prefetch_images is not None and self.prefetch_images < 0) or self.prefetch_bytes < 0:
            raise ConfigError(
                "image fetch: prefetch_images and prefetch_bytes must be >= 0 (0 turns prefetching off)",
                field="image_fetch",
            )


class _Transient(Exception):
    """A try that may succeed later (5xx, timeout, connection error)."""


def _retryable(err: BaseException) -> bool:
    return isinstance(err, _Transient)


def http_validator(headers: Mapping[str, str]) -> str | None:
    """The validator of an HTTP answer's body: its ``ETag`` (weak ones too), else its ``Last-Modified`` with its
    ``Content-Length``; None when it has neither (the bytes must then be hashed)."""
    lower = {k.lower(): v for k, v in headers.items()}
    if lower.get("etag"):
        return f"etag:{lower['etag']}"
    if lower.get("last-modified"):
        return f"last-modified:{lower['last-modified']};length:{lower.get('content-length', '?')}"
    return None


def versioned_ref(ref: str, validator: str) -> str:
    """What the incremental check hashes for an image: the ref and the validator of its bytes."""
    return f"{ref}\n{validator}"


class ImageFetcher:
    """Fetch image bytes from URLs or paths, within the limits of :class:`ImageFetchSettings`."""

    def __init__(self, settings: ImageFetchSettings, *, transport: httpx.BaseTransport | None = None) -> None:
        self.settings = settings
        limits = httpx.Limits(max_connections=settings.max_concurrency + 2)
        self._http = httpx.Client(timeout=settings.timeout_s, follow_redirects=True, limits=limits, transport=transport)
        self._pool = ThreadPoolExecutor(settings.max_concurrency, thread_name_prefix="image-fetch")

    def fetch_many(self, refs: Sequence[str]) -> list[bytes | ImageRejected]:
        """Fetch every ref (bounded concurrency); each result is the bytes or why it failed, in input order."""
        return list(self._pool.map(self._fetch_or_error, refs))

    def submit(self, ref: str) -> Future[bytes | ImageRejected]:
        """Start fetching one ref on the pool; the future's result is the bytes or why it failed."""
        return self._pool.submit(self._fetch_or_error, ref)

    def fetch(self, ref: str) -> bytes:
        """The bytes of one image.

        Raises:
            ImageRejected: unreachable after the retries, a 4xx, not an image, too large, unreadable path.
        """
        if ref.startswith(("http://", "https://")):
            return self._download(ref)
        return self._read_file(ref)

    def validator(self, ref: str) -> str:
        """A string that changes when the bytes behind ``ref`` change, looked up cheaply.

        A URL: one HEAD (no retries): :func:`http_validator` of the answer; when it has no ETag nor
        Last-Modified, or HEAD is not allowed (405, 501), the image is downloaded and its SHA-256 is the validator.
        A path: its mtime (ns) and size. A ref that cannot be looked up answers ``unavailable:<why>``, which matches
        no stored hash: the document is embedded again, and dead-lettered if its image is really gone.
        """
        if not ref.startswith(("http://", "https://")):
            try:
                st = self._resolve_path(ref).stat()
            except (ImageRejected, OSError) as e:
                return f"unavailable:{type(e).__name__}"
            return f"file:mtime_ns={st.st_mtime_ns};size={st.st_size}"
        try:
            response = self._http.head(ref)
        except httpx.HTTPError as e:
            return f"unavailable:{type(e).__name__}"
        if response.status_code == 200:
            found = http_validator(response.headers)
            if found is not None:
                return found
        elif response.status_code not in (405, 501):
            return f"unavailable:HTTP {response.status_code}"
        try:
            return "sha256:" + hashlib.sha256(self.fetch(ref)).hexdigest()
        except ImageRejected as e:
            return f"unavailable:{e.reason_code}"

    def validators(self, refs: Sequence[str]) -> list[str]:
        """:meth:`validator` of every ref (bounded concurrency), in input order."""
        return list(self._pool.map(self.validator, refs))

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._http.close()

    # ----- internals -----

    def _fetch_or_error(self, ref: str) -> bytes | ImageRejected:
        try:
            return self.fetch(ref)
        except ImageRejected as e:
            return e

    def _download(self, url: str) -> bytes:
        s = self.settings

        def before_sleep(state: RetryCallState) -> None:
            err = state.outcome.exception() if state.outcome else None
            logger.warning("image fetch %s failed (%s); retry %s", url, err, state.attempt_number)

        retrying = Retrying(
            stop=stop_after_attempt(s.max_retries + 1),
            wait=wait_random_exponential(multiplier=0.2, max=s.max_backoff_s),
            retry=retry_if_exception(_retryable),
            before_sleep=before_sleep,
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    return self._download_once(url)
        except _Transient as e:
            raise ImageRejected(
                f"image {url} unreachable after {s.max_retries + 1} tries: {e}", reason_code="image_unreachable"
            ) from e
        raise AssertionError("unreachable")  # pragma: no cover  # Retrying either returns or raises

    def _download_once(self, url: str) -> bytes:
        limit = self.settings.max_bytes
        try:
            with self._http.stream("GET", url) as response:
                status = response.status_code
                if status >= 500 or status == 429:
                    raise _Transient(f"HTTP {status}")
                if status != 200:
                    raise ImageRejected(f"image {url} answered HTTP {status}", reason_code="image_unreachable")
                kind = response.headers.get("content-type", "")
                if kind and not kind.startswith(("image/", "application/octet-stream")):
                    raise ImageRejected(f"image {url} is {kind}, not an image", reason_code="image_not_an_image")
                if int(response.headers.get("content-length") or 0) > limit:
                    raise ImageRejected(
                        f"image {url} has {response.headers['content-length']} bytes; at most {limit}",
                        reason_code="image_too_large",
                    )
                chunks, total = [], 0
                for chunk in response.iter_bytes():
                    total += len(chunk)
                    if total > limit:
                        raise ImageRejected(f"image {url} has more than {limit} bytes", reason_code="image_too_large")
                    chunks.append(chunk)
                return b"".join(chunks)
        except (httpx.TimeoutException, httpx.TransportError) as e:
            raise _Transient(f"{type(e).__name__}: {e}") from e

    def _resolve_path(self, ref: str) -> Path:
        path = Path(ref.removeprefix("file://"))
        if not path.is_absolute():
            if self.settings.path_root is None:
                raise ImageRejected(
                    f"image path {ref!r} is relative and no image root is set", reason_code="image_unreachable"
                )
            path = Path(self.settings.path_root) / path
        return path

    def _read_file(self, ref: str) -> bytes:
        path = self._resolve_path(ref)
        try:
            size = path.stat().st_size
            if size > self.settings.max_bytes:
                raise ImageRejected(
                    f"image file {path} has {size} bytes; at most {self.settings.max_bytes}",
                    reason_code="image_too_large",
                )
            return path.read_bytes()
        except OSError as e:
            raise ImageRejected(
                f"cannot read image file {path}: {e.strerror or e}", reason_code="image_unreachable"
            ) from e


class ImageVersions:
    """The image job's :class:`~connector.jobs.backfill.TextVersion`: ``ref`` -> :func:`versioned_ref` of it.

    ``prepare(refs)`` looks up a page's validators at once on the fetcher's pool into a memo of the latest
    ``memo_size`` refs (an image shared by many documents is looked up once per page); ``__call__`` answers from
    it, or looks a ref up alone (a document re-read after a conflict).
    """

    def __init__(self, fetcher: ImageFetcher, *, memo_size: int = 20_000) -> None:
        self.fetcher = fetcher
        self.memo_size = memo_size
        self._lock = threading.Lock()
        self._found: dict[str, str] = {}

    def prepare(self, texts: Sequence[str]) -> None:
        refs = list(dict.fromkeys(texts))
        found = dict(zip(refs, self.fetcher.validators(refs)))
        with self._lock:
            for ref in refs:
                self._found.pop(ref, None)  # re-inserted last: the newest
            self._found.update(found)
            for old in list(self._found)[: max(0, len(self._found) - self.memo_size)]:
                del self._found[old]

    def __call__(self, text: str) -> str:
        with self._lock:
            validator = self._found.get(text)
        if validator is None:
            validator = self.fetcher.validator(text)
        return versioned_ref(text, validator)


class ImageEmbedder:
    """The pipeline's embedder for an image field: ``embed_documents(refs)`` fetches and embeds the images.

    ``prefetch(refs)`` (the pipeline's reader, once a page is classified) starts the downloads of pages to come,
    ``prefetch_images`` ahead at most. A page is cut into requests of the client's ``batch_size``, each sent
    as soon as its images are in, the client's ``max_concurrency`` at once. When some images fail, this raises
    :class:`ImageRejected`; the pipeline then splits the page to find the failing documents, and the vectors
    already computed are handed out from a small cache instead of fetching and embedding again.
    """

    def __init__(self, client: EmbeddingClient, fetcher: ImageFetcher, *, prefetch_images: int = 0) -> None:
        self.client = client
        self.fetcher = fetcher
        self.text_version = ImageVersions(fetcher)  # the backfill hashes ref + validator, not the ref alone
        self._prefetch = ImagePrefetch(
            fetcher.submit, max_images=prefetch_images, max_bytes=fetcher.settings.prefetch_bytes
        )
        self._requests = ThreadPoolExecutor(client.max_concurrency, thread_name_prefix="image-embed")
        self._lock = threading.Lock()
        self._done: dict[str, list[float] | ImageRejected] = {}

    def info(self) -> Any:
        return self.client.info()

    def check_compatible(self, index_meta_vector_field: Any) -> None:
        self.client.check_compatible(index_meta_vector_field)

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        """Vectors of the images the refs name, in order.

        Raises:
            ImageRejected: at least one image failed (the first failure, for a single ref its own reason).
        """
        with self._lock:
            todo = [ref for ref in dict.fromkeys(texts) if ref not in self._done]
        if todo:
            self._resolve(todo)
        with self._lock:
            results = [self._done[ref] for ref in texts]
            failed = next((r for r in results if isinstance(r, ImageRejected)), None)
            if failed is None or len(texts) == 1:
                for ref in texts:  # handed out: forget them, so the cache stays as small as a page
                    self._done.pop(ref, None)
        if failed is not None:
            raise failed
        return [r for r in results if not isinstance(r, ImageRejected)]

    def prefetch(self, texts: Sequence[str]) -> None:
        """Start downloading images that :meth:`embed_documents` will be asked for (pages to come)."""
        self._prefetch.prefetch(texts)

    def close(self) -> None:
        self._requests.shutdown(wait=True)
        self.fetcher.close()

    # ----- internals -----

    def _resolve(self, refs: list[str]) -> None:
        """Fetch (or take the prefetched) and embed ``refs``, a request as soon as its images are in."""
        futures = self._prefetch.take(refs)
        size = self.client.batch_size
        chunks = [(refs[i : i + size], futures[i : i + size]) for i in range(0, len(refs), size)]
        # Each request's results are kept as it ends, so a retried page redoes only the requests that failed.
        for _ in self._requests.map(self._resolve_chunk, chunks):
            pass

    def _resolve_chunk(self, chunk: tuple[list[str], list[Future[bytes | ImageRejected]]]) -> None:
        refs, futures = chunk
        fetched = [future.result() for future in futures]
        found: dict[str, list[float] | ImageRejected] = {
            ref: got for ref, got in zip(refs, fetched) if isinstance(got, ImageRejected)
        }
        loaded = [(ref, got) for ref, got in zip(refs, fetched) if isinstance(got, bytes)]
        found.update(self._embed_loaded(loaded))
        with self._lock:
            self._done.update(found)

    def _embed_loaded(self, loaded: list[tuple[str, bytes]]) -> dict[str, list[float] | ImageRejected]:
        """Embed fetched images; when the service refuses some (not decodable), split to find them."""
        if not loaded:
            return {}
        try:
            vectors = self.client.embed_images([{"data": base64.b64encode(raw).decode("ascii")} for _, raw in loaded])
        except EmbeddingRequestError as e:
            if len(loaded) == 1:
                return {loaded[0][0]: ImageRejected(f"image service refused the image: {e}", reason_code=_code(e))}
            mid = len(loaded) // 2
            return self._embed_loaded(loaded[:mid]) | self._embed_loaded(loaded[mid:])
        return {ref: vector for (ref, _), vector in zip(loaded, vectors)}


def _code(err: EmbeddingRequestError) -> str:
    status = getattr(err, "status", None)
    if status == 413:
        return "image_too_large"
    return "image_not_an_image" if "not an image" in str(err) or "format" in str(err) else "image_rejected"


def add_image_vector_field(
    cluster: Cluster, index: str, *, vector_field: str, image_field: str, dims: int, model_id: str
) -> bool:
    """Map the image vector field beside the text one (as migration 0001 adds a text vector), in place.

    Returns:
        True when it was added, False when it was already mapped (the mapping is left alone).

    Raises:
        ConfigError: the name is taken by another field, or (OpenSearch) the index has no ``index.knn``.
    """
    mapping = cluster.get_mapping(index)
    if find_property(mapping, vector_field) is not None:
        return False
    settings = next(iter(cluster.request("GET", f"/{index}/_settings").body.values()))["settings"]
    body = build_add_image_vector_field_body(
        cluster.capabilities,
        existing_mapping=mapping,
        vector_field=image_vector_field(vector_field, dims=dims, model_id=model_id, image_field=image_field),
        index_settings=settings,
    )
    cluster.put_mapping(index, body)
    logger.info("index %s: added image vector field %s (%s dims, %s)", index, vector_field, dims, model_id)
    return True


@dataclass(frozen=True)
class ImageEmbedderFactory:
    """Builds an :class:`ImageEmbedder` in the process that calls it (a Ray slice task): picklable, unlike the
    embedder itself (a thread pool and HTTP connections)."""

    url: str
    fetch: ImageFetchSettings
    prefetch_images: int = 0

    def __call__(self) -> ImageEmbedder:
        return ImageEmbedder(EmbeddingClient(self.url), ImageFetcher(self.fetch), prefetch_images=self.prefetch_images)


def run_image_backfill(
    cluster: Cluster,
    config: BackfillConfig,
    *,
    client: EmbeddingClient,
    fetch: ImageFetchSettings | None = None,
    cluster_spec: ClusterSpec | None = None,
) -> JobSummary:
    """Fill an image vector field from the image URL/path field ``config.fields[0]`` of each document.

    The field is mapped first when it is not (``modality: image`` in ``_meta``). Everything else is a backfill
    (:func:`connector.jobs.backfill.run_backfill`): resumable, incremental by the hash of the URL/path with the
    validator of its bytes (:class:`ImageVersions`) and the model id, catch-up of writes made meanwhile; a document whose image fails is dead-lettered with the reason.

    Args:
        config: ``fields`` = one image field, ``vector_field`` = the image vector field; with ``ray_address``
            the slices run as Ray tasks, each fetching and embedding its own images (``embed_url``: the image
            service; a ``path_root`` must be readable on every Ray node).
        client: an ``EmbeddingClient`` of the image service (``eshybrid serve image``).
        fetch: how images are downloaded or read (default :class:`ImageFetchSettings`).
        cluster_spec: how Ray tasks reach the cluster (needed with ``config.ray_address``).

    Raises:
        ConfigError: not exactly one field, or a template.
    """
    if len(config.fields) != 1 or config.template:
        raise ConfigError(
            "an image backfill reads one image URL/path field (--fields image_url), without --template",
            field="fields",
        )
    info = client.info()
    index = config.index
    add_image_vector_field(
        cluster,
        index,
        vector_field=config.vector_field,
        image_field=config.fields[0],
        dims=info.dims,
        model_id=info.model_id,
    )
    fetch = fetch or ImageFetchSettings()
    ahead = config.settings.page_size if fetch.prefetch_images is None else fetch.prefetch_images
    embedder = ImageEmbedder(client, ImageFetcher(fetch), prefetch_images=ahead)
    task_embedder = ImageEmbedderFactory(config.embed_url, fetch, ahead) if config.embed_url else None
    try:
        return run_backfill(cluster, config, embedder=embedder, cluster_spec=cluster_spec, task_embedder=task_embedder)
    finally:
        embedder.close()
