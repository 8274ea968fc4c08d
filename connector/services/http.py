"""One HTTP layer for the clients of our model services (embedding, rerank).

Both clients talk to their service through :class:`ServiceHttp`, and their async twins through
:class:`AsyncServiceHttp` (the same rules and errors; only the send and the retry loop differ): one ``httpx.Client`` with the bearer token,
the service's error body (``{"error": {"message", "param", ...}}``, :mod:`connector.services.wire`) turned into
that client's typed errors, and tenacity retries with jittered exponential backoff where a ``Retry-After`` from
the service wins. The rules are the same for both services:

- retried: connection errors, timeouts, 429 (the service's queue is full) and 502/503/504;
- not retried: other 4xx (the request is wrong) and 500 (a bug in the service);
- ``timeout_s`` is the time of ONE HTTP request (connect, send, wait for the answer); retries and their waits
  come on top, unless a call passes ``budget_s``, the time for the whole call: then each try waits at most what
  is left of it and no retry starts after it.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import SecretStr
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
    wait_random_exponential,
)
from tenacity.stop import stop_base

from connector.errors import ConfigError, EshybridError
from connector.observe.tracing import inject_trace_headers

__all__ = [
    "AsyncServiceHttp",
    "RETRY_STATUSES",
    "MAX_RETRY_AFTER_S",
    "ServiceErrors",
    "ServiceHttp",
    "error_fields",
    "retry_after_s",
]

logger = logging.getLogger(__name__)

# 429: the queue is full, try later; 502/503/504: a proxy or a replica is restarting. A 500 is a bug: not retried.
RETRY_STATUSES = frozenset({429, 502, 503, 504})
# A Retry-After longer than this is cut to it (a client waits, it does not sleep for an hour).
MAX_RETRY_AFTER_S = 60.0


@dataclass(frozen=True)
class ServiceErrors:
    """The typed errors of one service's client, and the name its messages give the service.

    Each class takes a message and keyword details that become attributes (``connector.errors`` roots).
    """

    service: str
    unavailable: type[EshybridError]
    """Unreachable, a 5xx, or an answer that is no JSON (``status``, ``url``, ``retryable``)."""
    overloaded: type[EshybridError]
    """429 (``status``, ``url``, ``retry_after_s``)."""
    rejected: type[EshybridError]
    """Another 4xx: the request is wrong (``status``, ``url``, ``param``)."""
    timeout: type[EshybridError]
    """No answer within the request's time (``url``, ``timeout_s``)."""


def retry_after_s(response: httpx.Response) -> float | None:
    """The answer's ``Retry-After`` in seconds (cut to :data:`MAX_RETRY_AFTER_S`), or None (absent, or a date)."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None  # an HTTP date; our own backoff decides
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


def error_fields(response: httpx.Response) -> tuple[str, str | None]:
    """``(message, param)`` of an error answer: the wire error body's, else the start of the raw text."""
    try:
        body = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, Mapping) else None
    fallback = response.text[:500] or response.reason_phrase
    if not isinstance(error, Mapping):
        return fallback, None
    param = error.get("param")
    return str(error.get("message") or fallback), param if isinstance(param, str) else None


class _ServiceHttpRules:
    """What the sync and async HTTP layers share: options, the retry rules, the typed errors (no I/O here)."""

    def __init__(
        self,
        base_url: str,
        *,
        errors: ServiceErrors,
        timeout_s: float,
        max_retries: int,
        initial_backoff_s: float,
        max_backoff_s: float,
        api_key: str | SecretStr | None = None,
        max_connections: int | None = None,
        transport: httpx.BaseTransport | httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ConfigError(
                f"{errors.service} url must start with http:// or https://, got {base_url!r}", field="url"
            )
        if timeout_s <= 0 or max_retries < 0 or initial_backoff_s < 0 or max_backoff_s < 0:
            raise ConfigError(
                "timeout_s must be > 0; max_retries, initial_backoff_s and max_backoff_s >= 0",
                field="timeout_s",
                timeout_s=timeout_s,
                max_retries=max_retries,
            )
        self.base_url = base_url.rstrip("/")
        self.errors = errors
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.initial_backoff_s = initial_backoff_s
        self.max_backoff_s = max_backoff_s
        options = self._client_options(api_key, max_connections)
        # each driver's client class takes its own kind of transport (sync or async)
        self._http: Any = self._client_class(transport=transport, **options)  # type: ignore[arg-type]

    _client_class: type[httpx.Client] | type[httpx.AsyncClient]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.base_url!r})"

    def _client_options(self, api_key: str | SecretStr | None, max_connections: int | None) -> dict[str, Any]:
        """The options of the ``httpx`` client (sync or async): base URL, bearer token, timeout, limits."""
        secret = api_key.get_secret_value() if isinstance(api_key, SecretStr) else api_key
        limits = (
            httpx.Limits()
            if max_connections is None
            else httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        )
        return {
            "base_url": self.base_url,
            "headers": {"Authorization": f"Bearer {secret}"} if secret else {},
            "timeout": _timeout(self.timeout_s),
            "limits": limits,
        }

    def _stop(self, budget_s: float | None) -> stop_base:
        stop: stop_base = stop_after_attempt(self.max_retries + 1)
        if budget_s is not None:
            stop = stop | stop_before_delay(budget_s)
        return stop

    def _try_timeout_s(self, url: str, deadline: float | None) -> float:
        """The time one try may take: the client's, cut to what is left of the call's budget."""
        timeout_s = self.timeout_s
        if deadline is not None:
            timeout_s = min(timeout_s, deadline - time.monotonic())
            if timeout_s <= 0:
                raise self.errors.timeout(
                    f"the {self.errors.service} at {url} did not answer within the call's budget",
                    url=url,
                    timeout_s=0.0,
                )
        return timeout_s

    def _no_answer(self, err: httpx.HTTPError, url: str, timeout_s: float) -> EshybridError:
        if isinstance(err, httpx.TimeoutException):
            return self.errors.timeout(
                f"the {self.errors.service} at {url} did not answer within {timeout_s:g}s",
                url=url,
                timeout_s=timeout_s,
            )
        # refused, reset, dropped connections
        return self.errors.unavailable(
            f"cannot reach the {self.errors.service} at {url}: {type(err).__name__}: {err}", url=url
        )

    def _json(self, response: httpx.Response, method: str, path: str) -> Any:
        try:
            return response.json()
        except ValueError as e:
            raise self.errors.unavailable(
                f"the {self.errors.service} answered {method} {path} with something that is no JSON",
                status=response.status_code,
                url=str(response.request.url),
                retryable=False,
            ) from e

    def _checked(self, response: httpx.Response) -> httpx.Response:
        if response.status_code >= 400:
            raise self._error(response)
        return response

    def _error(self, response: httpx.Response) -> EshybridError:
        status = response.status_code
        message, param = error_fields(response)
        url = str(response.request.url)
        where = f"{response.request.method} {url}"
        service = self.errors.service
        if status == 429:
            return self.errors.overloaded(
                f"the {service} is overloaded (429) on {where}: {message}",
                status=status,
                url=url,
                retry_after_s=retry_after_s(response),
            )
        if status >= 500:
            return self.errors.unavailable(
                f"the {service} answered {status} on {where}: {message}",
                status=status,
                url=url,
                retry_after_s=retry_after_s(response),
                retryable=status in RETRY_STATUSES,
            )
        return self.errors.rejected(
            f"the {service} rejected the request ({status}) on {where}: {message}",
            status=status,
            url=url,
            param=param,
        )

    def _retryable(self, exc: BaseException) -> bool:
        kinds = (self.errors.overloaded, self.errors.unavailable, self.errors.timeout)
        return isinstance(exc, kinds) and bool(getattr(exc, "retryable", True))

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        retry_after = getattr(exc, "retry_after_s", None)
        if retry_after is not None:
            # The service knows when it will have room; jitter so that clients do not return in lockstep.
            return float(retry_after) + random.uniform(0.0, max(0.1, 0.25 * float(retry_after)))
        backoff = wait_random_exponential(multiplier=self.initial_backoff_s, max=self.max_backoff_s)
        return float(backoff(state))

    def _log_retry(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        sleep = state.next_action.sleep if state.next_action is not None else 0.0
        logger.warning(
            "%s request failed (%s); retry %s/%s in %.2fs",
            self.errors.service,
            exc,
            state.attempt_number,
            self.max_retries,
            sleep,
        )


class ServiceHttp(_ServiceHttpRules):
    """HTTP to one model service: bearer token, typed errors, retries (see the module docstring for the rules).

    Args:
        base_url, errors, api_key, timeout_s, max_retries, initial_backoff_s, max_backoff_s: see
            :class:`AsyncServiceHttp` (the same options and rules, awaited).
        max_connections: connections kept to the service (default: httpx's).
        transport: an httpx transport (tests only).

    Raises:
        ConfigError: the URL has no http(s) scheme, or a number is out of range.
    """

    _client_class = httpx.Client
    _http: httpx.Client

    def close(self) -> None:
        """Close the connections."""
        self._http.close()

    def request(self, method: str, path: str, *, json: Any = None, budget_s: float | None = None) -> httpx.Response:
        """Send ``method path`` with retries; the answer when its status is below 400.

        Args:
            json: the request body.
            budget_s: time for the whole call (tries and waits); None: ``max_retries`` bounds it.

        Raises:
            The ``errors`` classes: ``rejected`` (4xx but 429, never retried), ``overloaded`` (429),
            ``unavailable`` (unreachable or 5xx), ``timeout`` (a try got no answer in time), each after
            the retries the rules allow.
        """
        deadline = None if budget_s is None else time.monotonic() + budget_s
        retrying = Retrying(
            stop=self._stop(budget_s),
            wait=self._wait,
            retry=retry_if_exception(self._retryable),
            before_sleep=self._log_retry,
            reraise=True,
        )
        for attempt in retrying:
            with attempt:
                return self._send(method, path, json, deadline)
        raise AssertionError("unreachable: tenacity re-raises the last error")

    def call(self, method: str, path: str, *, json: Any = None, budget_s: float | None = None) -> Any:
        """:meth:`request`, then the answer's JSON body.

        Raises:
            As :meth:`request`; ``unavailable`` (not retried) when the answer is no JSON.
        """
        return self._json(self.request(method, path, json=json, budget_s=budget_s), method, path)

    def _send(self, method: str, path: str, json: Any, deadline: float | None) -> httpx.Response:
        url = self.base_url + path
        timeout_s = self._try_timeout_s(url, deadline)
        try:
            response = self._http.request(
                method, path, json=json, timeout=_timeout(timeout_s), headers=inject_trace_headers({})
            )
        except (httpx.TimeoutException, httpx.TransportError) as e:
            raise self._no_answer(e, url, timeout_s) from e
        return self._checked(response)


class AsyncServiceHttp(_ServiceHttpRules):
    """:class:`ServiceHttp` for async code: one ``httpx.AsyncClient``, the same errors and retry rules, awaited.

    Args:
        base_url: the service's base URL, route prefix included (``http://host:8000/embed``).
        errors: the typed errors to raise.
        api_key: bearer token, when the service requires one.
        timeout_s: time of one HTTP request (each try), in seconds; connecting gets at most 10 s of it.
        max_retries: retries after the first try.
        initial_backoff_s: scale of the jittered exponential backoff.
        max_backoff_s: cap of that backoff (a ``Retry-After`` from the service wins).
        max_connections: connections kept to the service (default: httpx's).
        transport: an httpx async transport (tests only).

    Raises:
        ConfigError: the URL has no http(s) scheme, or a number is out of range.
    """

    _client_class = httpx.AsyncClient
    _http: httpx.AsyncClient

    async def close(self) -> None:
        """Close the connections."""
        await self._http.aclose()

    async def request(
        self, method: str, path: str, *, json: Any = None, budget_s: float | None = None
    ) -> httpx.Response:
        """:meth:`ServiceHttp.request`, awaited (tenacity's ``AsyncRetrying``: the waits are ``asyncio.sleep``)."""
        deadline = None if budget_s is None else time.monotonic() + budget_s
        retrying = AsyncRetrying(
            stop=self._stop(budget_s),
            wait=self._wait,
            retry=retry_if_exception(self._retryable),
            before_sleep=self._log_retry,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await self._send(method, path, json, deadline)
        raise AssertionError("unreachable: tenacity re-raises the last error")

    async def call(self, method: str, path: str, *, json: Any = None, budget_s: float | None = None) -> Any:
        """:meth:`request`, then the answer's JSON body (errors as :meth:`ServiceHttp.call`)."""
        return self._json(await self.request(method, path, json=json, budget_s=budget_s), method, path)

    async def _send(self, method: str, path: str, json: Any, deadline: float | None) -> httpx.Response:
        url = self.base_url + path
        timeout_s = self._try_timeout_s(url, deadline)
        try:
            response = await self._http.request(
                method, path, json=json, timeout=_timeout(timeout_s), headers=inject_trace_headers({})
            )
        except (httpx.TimeoutException, httpx.TransportError) as e:
            raise self._no_answer(e, url, timeout_s) from e
        return self._checked(response)


def _timeout(timeout_s: float) -> httpx.Timeout:
    return httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0))
