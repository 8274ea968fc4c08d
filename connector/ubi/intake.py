"""``POST /events``: what browsers send, checked and handed to the :class:`~connector.ubi.logger.UbiLogger`.

Browsers write to this endpoint, so it trusts nothing:

- the body is capped (``max_body_bytes``, 413) and holds one event object, a JSON array of them, or
  ``{"events": [...]}``; at most ``max_records`` records (413);
- each record is validated on its own (only the documented UBI event fields; no record chooses an
  index or a mapping): a bad record is reported by its position and field and never fails the
  good ones beside it;
- a per-address and a per-``client_id`` token bucket (``rate_per_s``, ``burst``) refuse the records
  over the rate (429);
- a full logger queue refuses what it cannot take (429, counted): backpressure, not a crash.

The answer: 202 with ``{"accepted": n, "rejected": [{"record", "status", "field", "message"}]}``
when at least one record was accepted; otherwise 400 (every record invalid), 429 (refused for
rate or queue), 413 or 400 for the body itself. Never 5xx for bad input. :class:`EventIntake` is
framework-free (the FastAPI route in :mod:`connector.search.app` only reads the body).
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from connector.errors import RecordValidationError
from connector.ubi.records import UbiEvent, parse_event

__all__ = ["EventIntake", "EventIntakeSettings", "IntakeAnswer", "IntakeCounts", "TokenBuckets"]


class EventIntakeSettings(BaseModel):
    """Limits of ``POST /events`` (every field bounded; units in the names)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    max_body_bytes: int = Field(256 * 1024, ge=1024, le=16 * 1024 * 1024, description="largest request body")
    max_records: int = Field(500, ge=1, le=10_000, description="records per request")
    rate_per_s: float = Field(200.0, gt=0, le=1_000_000, description="records per second per client_id and per address")
    burst: int = Field(1000, ge=1, le=1_000_000, description="records a client_id or address may send at once")
    tracked_keys: int = Field(100_000, ge=100, le=10_000_000, description="clients/addresses whose rate is tracked")


class _Sink(Protocol):
    def offer(self, records: list[UbiEvent]) -> int: ...  # the UbiLogger


class TokenBuckets:
    """One token bucket per key (``client_id`` or address), the least recently seen forgotten first."""

    def __init__(self, rate_per_s: float, burst: int, max_keys: int) -> None:
        self.rate_per_s = rate_per_s
        self.burst = float(burst)
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, key: str, n: int = 1, *, now: float | None = None) -> int:
        """Take up to ``n`` tokens for ``key``; returns how many were granted."""
        t = time.monotonic() if now is None else now
        with self._lock:
            tokens, last = self._buckets.pop(key, (self.burst, t))
            tokens = min(self.burst, tokens + (t - last) * self.rate_per_s)
            granted = min(n, int(tokens))
            self._buckets[key] = (tokens - granted, t)
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
            return granted


@dataclass
class IntakeCounts:
    """Records seen by the endpoint since it started."""

    received: int = 0
    accepted: int = 0
    invalid: int = 0
    rate_limited: int = 0
    overloaded: int = 0
    bodies_refused: int = 0

    def to_json(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass
class IntakeAnswer:
    """The HTTP status and JSON body to answer."""

    status: int
    body: dict[str, Any] = field(default_factory=dict)


def _body_error(status: int, type_: str, message: str, field_name: str) -> IntakeAnswer:
    return IntakeAnswer(status, {"error": {"type": type_, "message": message, "field": field_name}})


class EventIntake:
    """Validates, rate-limits and queues the records of one ``POST /events`` body."""

    def __init__(self, sink: _Sink, settings: EventIntakeSettings | None = None) -> None:
        self.sink = sink
        self.settings = settings or EventIntakeSettings()
        self.counts = IntakeCounts()
        self._lock = threading.Lock()
        s = self.settings
        self._per_client = TokenBuckets(s.rate_per_s, s.burst, s.tracked_keys)
        self._per_address = TokenBuckets(s.rate_per_s, s.burst, s.tracked_keys)

    def _records(self, body: bytes) -> list[Any] | IntakeAnswer:
        if len(body) > self.settings.max_body_bytes:
            return _body_error(
                413, "too_large", f"the body is over {self.settings.max_body_bytes} bytes; send fewer records", "body"
            )
        try:
            value = json.loads(body)
        except ValueError as e:
            return _body_error(400, "invalid_request", f"the body is not JSON ({e})", "body")
        if isinstance(value, dict) and set(value) == {"events"}:
            value = value["events"]
        records = value if isinstance(value, list) else [value]
        if len(records) > self.settings.max_records:
            return _body_error(
                413,
                "too_large",
                f"{len(records)} records in one request; send at most {self.settings.max_records}",
                "events",
            )
        return records

    def handle(self, body: bytes, *, address: str) -> IntakeAnswer:
        """Answer one request body from ``address`` (never raises for bad input)."""
        records = self._records(body)
        if isinstance(records, IntakeAnswer):
            with self._lock:
                self.counts.bodies_refused += 1
            return records
        rejected: list[dict[str, Any]] = []
        valid: list[tuple[int, UbiEvent]] = []
        for i, value in enumerate(records):
            try:
                valid.append((i, parse_event(value, record=i)))
            except RecordValidationError as e:
                rejected.append({"record": i, "status": 400, "field": e.field, "message": str(e)})
        allowed = self._per_address.take(address, len(valid))
        kept: list[tuple[int, UbiEvent]] = []
        for n, (i, event) in enumerate(valid):
            over = "address" if n >= allowed else None if self._per_client.take(event.client_id) else "client_id"
            if over:
                rejected.append({"record": i, "status": 429, "field": over, "message": f"over the {over} rate limit"})
            else:
                kept.append((i, event))
        accepted = self.sink.offer([event for _, event in kept]) if kept else 0
        for i, _ in kept[accepted:]:
            rejected.append({"record": i, "status": 429, "field": None, "message": "the event queue is full"})
        self._count(len(records), accepted, rejected)
        rejected.sort(key=lambda r: r["record"])
        body_out: dict[str, Any] = {"accepted": accepted, "rejected": rejected}
        if accepted:
            return IntakeAnswer(202, body_out)
        if rejected and all(r["status"] == 400 for r in rejected):
            first = rejected[0]
            body_out["error"] = {"type": "invalid_request", "message": first["message"], "field": first["field"]}
            return IntakeAnswer(400, body_out)
        if not records:
            return _body_error(400, "invalid_request", "no event in the body", "events")
        body_out["error"] = {"type": "overloaded", "message": "no record accepted; retry later", "field": None}
        return IntakeAnswer(429, body_out)

    def _count(self, received: int, accepted: int, rejected: list[dict[str, Any]]) -> None:
        with self._lock:
            c = self.counts
            c.received += received
            c.accepted += accepted
            c.invalid += sum(r["status"] == 400 for r in rejected)
            c.rate_limited += sum(r["status"] == 429 and r["field"] is not None for r in rejected)
            c.overloaded += sum(r["status"] == 429 and r["field"] is None for r in rejected)
