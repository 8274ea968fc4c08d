"""The image embedding application: a CLIP-style dual encoder on Ray Serve, its own deployment.

``POST /v1/embeddings`` takes texts and images (shapes: :mod:`embedding_service.images`) and answers in the
OpenAI shape of the text service, so :class:`connector.services.embedding.EmbeddingClient` embeds queries through
the text tower unchanged. Images are fetched, decoded and preprocessed (resize, crop, normalise) on an I/O pool
(bounded), then batched (``@serve.batch``) into forward passes on one model thread, which does nothing else: the
next batch's decoding overlaps the current forward pass. Texts have their own batch queue.

Where a request's time goes (``bench/image_throughput.py`` prints it; 224 px JPEGs, a 4-layer ViT, one thread,
ms per image on a loaded 2-core machine): the client's base64 + JSON 0.01, the parse 0.01, base64 decode 0.01,
image decode 0.2, preprocess 0.7-1.5, forward 4-4.7. The wire's base64/JSON is under 1%, so the JSON ``data``
form stays the only one; preprocess (~15-25%) ran on the model thread before, between forward passes. The I/O
threads make no torch call (numpy rows, stacked on the model thread): with torch tensors made there, the overlap
ran at about half the serial rate in process (a torch thread pool per thread, contending with the forward); with
numpy rows it matched the serial rate on a loaded machine, where no core was free to overlap on.
``GET /info`` answers the text service's fields plus ``modalities`` and the image limits.
"""

# No ``from __future__ import annotations``: FastAPI must see the route annotations as real types.
import asyncio
import base64
import logging
import os
import secrets
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Any

import httpx
import numpy as np
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from ray import serve
from ray.serve.deployment import Application

from connector.observe.metrics import CountingMiddleware, ServiceMetrics
from connector.services.wire import error_body, error_reply, param_from_loc, replica_options
from embedding_service.api import render_embeddings
from embedding_service.errors import AuthError, EmbeddingServiceError, InvalidInputError
from embedding_service.image_settings import SUPPORTED_IMAGE_FORMATS, ImageEmbeddingSettings
from embedding_service.images import ImageEmbeddingRequest, ImageSource, read_image_source

__all__ = ["ImageEmbeddingDeployment", "build_app", "build_image_app", "image_deployment_options", "check_inputs"]

logger = logging.getLogger(__name__)

_api = FastAPI(
    title="eshybrid image embedding service",
    version="1",
    description="Image and text embeddings from a CLIP-style dual encoder (one vector space), batched on Ray Serve.",
)
# Prometheus series of this replica's process (GET /metrics).
_service_metrics = ServiceMetrics("image", routes=("/v1/embeddings", "/info", "/metrics", "/healthz"))
_api.add_middleware(CountingMiddleware, metrics=_service_metrics)
_bearer = HTTPBearer(auto_error=False, description="Required when the service has an api_key.")
# Parallel downloads/decodes per replica: enough to hide a slow image server, few enough not to flood it.
_IO_THREADS = 8


@_api.exception_handler(RequestValidationError)
async def _on_validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    first = max(errors, key=lambda e: len(e.get("loc", ())), default={"loc": (), "msg": "invalid request"})
    if any(e.get("type") == "json_invalid" or tuple(e.get("loc", ())) == ("body",) for e in errors):
        body = error_body("the body must be a JSON object", type_="invalid_request_error", code="json_invalid")
        return JSONResponse(body, status_code=400)
    loc = first.get("loc", ())
    # pydantic names union members in the location (``str``, ``list[union[...]]``, ``function-after[...]``).
    tags = [p for p in loc if isinstance(p, str) and (p == "str" or "[" in p)]
    param = param_from_loc(loc, union_tags=tags)
    body = error_body(
        f"{param or 'body'}: {first.get('msg')}",
        type_="invalid_request_error",
        param=param,
        code=str(first.get("type")),
    )
    return JSONResponse(body, status_code=422)


@_api.exception_handler(EmbeddingServiceError)
async def _on_service_error(_: Request, exc: EmbeddingServiceError) -> JSONResponse:
    reply = error_reply(exc, retry_after_s=1.0)
    return JSONResponse(reply.body, status_code=reply.status, headers=reply.headers)


def check_inputs(
    request: ImageEmbeddingRequest, *, model_id: str, dims: int, max_items: int, max_chars: int
) -> list[str | ImageSource]:
    """The request's inputs in order (a text, or an image source), after the limits and model checks.

    Raises:
        InvalidInputError: with ``field`` naming the item (``input[3]``), ``model`` or ``dimensions``.
    """
    raw = [request.input] if isinstance(request.input, str) else list(request.input)
    if len(raw) > max_items:
        raise InvalidInputError(f"input has {len(raw)} items; at most {max_items} per request", field="input")
    items: list[str | ImageSource] = []
    for i, item in enumerate(raw):
        value: str | ImageSource | None = item if isinstance(item, str) else item.text or item.image
        assert value is not None  # InputItem holds exactly one
        if isinstance(value, str) and len(value) > max_chars:
            raise InvalidInputError(f"input[{i}] has {len(value)} characters; at most {max_chars}", field=f"input[{i}]")
        items.append(value)
    if request.model is not None and request.model not in (model_id, model_id.rsplit("/", 1)[-1]):
        raise InvalidInputError(f"model {request.model!r} is not served here; this serves {model_id!r}", field="model")
    if request.dimensions is not None and request.dimensions != dims:
        raise InvalidInputError(
            f"dimensions {request.dimensions} is not supported; the model has {dims}", field="dimensions"
        )
    return items


@serve.ingress(_api)
class ImageEmbeddingDeployment:
    """One replica: the dual encoder, an I/O pool for images, two batch queues (images, texts) and the routes."""

    def __init__(self, settings: ImageEmbeddingSettings) -> None:
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        import torch

        from embedding_service.clip import ClipEmbedder

        self._settings = settings
        threads = settings.torch_threads or max(1, int(settings.num_cpus_per_replica))
        torch.set_num_threads(threads)
        self._embedder = ClipEmbedder.load(
            settings.model, model_id=settings.model_id, device=settings.device, dtype=settings.dtype
        )
        # One model thread: forward passes never run on the event loop, nor two at once.
        self._model_thread = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="image-forward", initializer=torch.set_num_threads, initargs=(threads,)
        )
        self._io = ThreadPoolExecutor(max_workers=_IO_THREADS, thread_name_prefix="image-fetch")
        self._http = httpx.Client(timeout=settings.fetch_timeout_s, follow_redirects=True)
        self._api_key = settings.api_key.get_secret_value() if settings.api_key else None
        self._image_batch = serve.batch(
            max_batch_size=settings.max_batch_size, batch_wait_timeout_s=settings.batch_wait_timeout_s
        )(self._embed_image_batch)
        self._text_batch = serve.batch(
            max_batch_size=settings.max_batch_size, batch_wait_timeout_s=min(settings.batch_wait_timeout_s, 0.002)
        )(self._embed_text_batch)
        e = self._embedder
        self._info: dict[str, Any] = {
            "model_id": e.model_id,
            "revision": e.revision,
            "dims": e.dims,
            "max_length": e.max_length,
            "pooling": "clip",
            "normalized": True,
            "device": e.device,
            "dtype": e.dtype,
            "query_prefix": "",
            "document_prefix": "",
            "max_items_per_request": settings.max_items_per_request,
            "max_chars_per_item": settings.max_chars_per_item,
            "backend": "torch",
            "quantization": "none",
            "replicas": settings.replicas,
            "threads_per_replica": threads,
            "modalities": ["text", "image"],
            "max_image_bytes": settings.max_image_bytes,
            "max_image_pixels": settings.max_image_pixels,
            "image_formats": list(SUPPORTED_IMAGE_FORMATS),
        }
        logger.info("image embedding replica ready: %s", self._info)

    # ----- Python (deployment handle) API -----

    async def embed_images(self, images: list[bytes]) -> np.ndarray:
        """Embed encoded image files; float32 ``[len(images), dims]`` in input order.

        Raises:
            InvalidInputError / ImageTooLargeError: an item is not a supported image or is over the limits.
        """
        sources: list[str | ImageSource] = [ImageSource(data=base64.b64encode(raw).decode("ascii")) for raw in images]
        return await self._embed(sources)

    async def info(self) -> dict[str, Any]:
        return dict(self._info)

    # ----- HTTP routes -----

    @_api.get("/healthz")
    async def healthz(self) -> dict[str, str]:
        return {"status": "ok"}

    @_api.get("/info")
    async def http_info(
        self, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)] = None
    ) -> dict[str, Any]:
        self._check_auth(credentials)
        return dict(self._info)

    @_api.get("/metrics")
    async def http_metrics(
        self, request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)] = None
    ) -> Response:
        """This replica's Prometheus series (text format, or OpenMetrics when the Accept header asks for it)."""
        self._check_auth(credentials)
        body, content_type = _service_metrics.exposition(request.headers.get("accept"))
        return Response(content=body, media_type=content_type)

    @_api.post("/v1/embeddings")
    async def embeddings(
        self,
        body: ImageEmbeddingRequest,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)] = None,
    ) -> Response:
        self._check_auth(credentials)
        s = self._settings
        items = check_inputs(
            body,
            model_id=self._info["model_id"],
            dims=self._info["dims"],
            max_items=s.max_items_per_request,
            max_chars=s.max_chars_per_item,
        )
        vectors = await self._embed(items)
        content = render_embeddings(
            vectors,
            model_id=self._info["model_id"],
            token_counts=[0] * len(items),
            encoding_format=body.encoding_format,
        )
        return Response(content=content, media_type="application/json")

    # ----- internals -----

    def _check_auth(self, credentials: HTTPAuthorizationCredentials | None) -> None:
        if self._api_key is None:
            return
        given = credentials.credentials if credentials is not None else ""
        if not secrets.compare_digest(given.encode(), self._api_key.encode()):
            raise AuthError("missing or wrong bearer token (Authorization: Bearer <api_key>)")

    def _read(self, source: ImageSource, field: str) -> np.ndarray:
        """One image's ``pixel_values`` row (``[3, H, W]``): fetched/decoded and preprocessed here, on the I/O
        pool, so that the model thread runs forward passes only (numpy: no torch thread pool on this thread)."""
        s = self._settings
        image = read_image_source(
            source,
            field=field,
            client=self._http,
            roots=s.image_roots,
            max_bytes=s.max_image_bytes,
            max_pixels=s.max_image_pixels,
        )
        return self._embedder.preprocess_row(image)

    async def _embed(self, items: list[str | ImageSource]) -> np.ndarray:
        loop = asyncio.get_running_loop()
        # Read every image first (in parallel, bounded by the pool): a bad one fails the request before any forward.
        reads = {
            i: loop.run_in_executor(self._io, self._read, item, f"input[{i}].image")
            for i, item in enumerate(items)
            if isinstance(item, ImageSource)
        }
        images = dict(zip(reads, await asyncio.gather(*reads.values())))
        results = await asyncio.gather(
            *(
                self._text_batch(item) if isinstance(item, str) else self._image_batch(images[i])
                for i, item in enumerate(items)
            )
        )
        if len(results) != len(items):  # the contract: one vector per input, in order
            raise RuntimeError(f"got {len(results)} vectors for {len(items)} inputs")
        return np.stack(results) if results else np.zeros((0, self._embedder.dims), dtype=np.float32)

    async def _embed_image_batch(self, pixels: list[np.ndarray]) -> list[np.ndarray]:
        _service_metrics.observe_batch(len(pixels))
        vectors = await asyncio.get_running_loop().run_in_executor(
            self._model_thread, self._embedder.forward_pixel_rows, pixels
        )
        return list(vectors)

    async def _embed_text_batch(self, texts: list[str]) -> list[np.ndarray]:
        _service_metrics.observe_batch(len(texts))
        vectors = await asyncio.get_running_loop().run_in_executor(
            self._model_thread, self._embedder.encode_texts, texts
        )
        return list(vectors)


def image_deployment_options(settings: ImageEmbeddingSettings, *, cluster_gpus: float) -> dict[str, Any]:
    """Ray Serve options (pure): placement and backpressure as the text service, a fixed replica count."""
    options = replica_options(settings, name="ImageEmbeddingDeployment", cluster_gpus=cluster_gpus)
    options["num_replicas"] = settings.replicas
    return options


def build_image_app(settings: ImageEmbeddingSettings, *, cluster_gpus: float | None = None) -> Application:
    """The image embedding application, ready for ``serve.run(app, name=..., route_prefix=...)``."""
    import ray

    if cluster_gpus is None:
        cluster_gpus = float(ray.cluster_resources().get("GPU", 0)) if ray.is_initialized() else 0.0
    options = image_deployment_options(settings, cluster_gpus=cluster_gpus)
    return serve.deployment(**options)(ImageEmbeddingDeployment).bind(settings)


# ``eshybrid serve image`` builds services by module (``<module>.build_app(settings)``).
build_app = build_image_app
