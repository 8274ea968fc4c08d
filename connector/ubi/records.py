"""UBI 1.x query and event records (pydantic), validated with errors that name the field.

Field names follow the User Behavior Insights specification, so UBI tools and dashboards read
what eshybrid writes:

- a **query record** (:class:`UbiQuery`, index ``ubi_queries``): ``query_id``, ``client_id``,
  ``session_id``, ``user_query``, ``timestamp``, ``query_response_hit_ids`` (the ids shown, in
  order), ``application``, and ``query_attributes`` where eshybrid says which configuration or
  experiment arm served the search (``configuration``, ``experiment``, ``arm``, and ``hit_arms``:
  the arm credited with each shown hit of an interleaved list);
- an **event record** (:class:`UbiEvent`, index ``ubi_events``): ``action_name`` (``impression``,
  ``click``, ``add_to_cart``, ``purchase``...), ``query_id``, ``client_id``, ``session_id``,
  ``timestamp``, ``event_attributes.object.object_id``, ``event_attributes.position.ordinal``
  (1 = the first hit shown).

Event records come from browsers, so only the documented fields are accepted (``extra="forbid"``:
no record chooses an index or a mapping) and every string is bounded.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Final, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator

from connector.errors import RecordValidationError

__all__ = [
    "ACTIONS",
    "EventAttributes",
    "EventObject",
    "EventPosition",
    "QueryAttributes",
    "UbiEvent",
    "UbiQuery",
    "parse_event",
    "parse_query",
    "query_record_from_response",
]

# The actions eshybrid's click models read; others are stored and ignored by them.
ACTIONS: Final = ("impression", "click", "add_to_cart", "purchase")

Id = Annotated[str, StringConstraints(min_length=1, max_length=100, strip_whitespace=True)]
ActionName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,100}$")]
ObjectId = Annotated[str, StringConstraints(min_length=1, max_length=256)]
Label = Annotated[str, StringConstraints(max_length=256)]

_MAX_HITS = 1000  # ids shown per search; a page of results, not a scan


def _utc(value: datetime) -> datetime:
    """UTC, to the millisecond (what is stored), so a record read back equals the one written."""
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def _now() -> datetime:
    return _utc(datetime.now(UTC))


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("timestamp", mode="after", check_fields=False)
    @classmethod
    def _as_utc(cls, value: datetime) -> datetime:
        return _utc(value)

    def to_doc(self) -> dict[str, Any]:
        """The JSON document (index or JSON lines): unset fields left out, the time as ISO 8601 UTC."""
        doc = self.model_dump(mode="json", exclude_none=True)
        doc["timestamp"] = _utc(self.timestamp).isoformat(timespec="milliseconds")  # type: ignore[attr-defined]
        return doc


class EventObject(BaseModel):
    """What the shopper acted on: ``object_id`` is the document id (``object_id_field`` names the field, if not ``_id``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    object_id: ObjectId
    object_id_field: Label | None = None


class EventPosition(BaseModel):
    """Where the object was shown: ``ordinal`` 1 is the first hit of the list."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    ordinal: int = Field(ge=1, le=10_000)


class EventAttributes(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    object: EventObject | None = None
    position: EventPosition | None = None


class UbiEvent(_Record):
    """One shopper action, joined to its search by ``query_id``."""

    action_name: ActionName
    query_id: Id | None = None
    client_id: Id
    session_id: Id | None = None
    timestamp: datetime = Field(default_factory=_now)
    application: Label | None = None
    message_type: Label | None = None
    message: Annotated[str, StringConstraints(max_length=1024)] | None = None
    event_attributes: EventAttributes | None = None

    @property
    def object_id(self) -> str | None:
        attrs = self.event_attributes
        return attrs.object.object_id if attrs is not None and attrs.object is not None else None

    @property
    def ordinal(self) -> int | None:
        attrs = self.event_attributes
        return attrs.position.ordinal if attrs is not None and attrs.position is not None else None


class QueryAttributes(BaseModel):
    """eshybrid's additions to a query record; other keys (from another UBI writer) are kept as they are."""

    model_config = ConfigDict(extra="allow", frozen=True)
    index: Label | None = None
    configuration: Annotated[str, StringConstraints(max_length=1024)] | None = None
    experiment: Label | None = None
    arm: Label | None = None
    hit_arms: list[Label] | None = Field(default=None, max_length=_MAX_HITS)


class UbiQuery(_Record):
    """One search: what was asked and the ids shown, in order."""

    query_id: Id
    client_id: Id | None = None
    session_id: Id | None = None
    user_query: Annotated[str, StringConstraints(max_length=4096)]
    timestamp: datetime = Field(default_factory=_now)
    query_response_id: Id | None = None
    query_response_hit_ids: list[ObjectId] = Field(default_factory=list, max_length=_MAX_HITS)
    application: Label | None = None
    query_attributes: QueryAttributes | None = None

    def model_post_init(self, context: Any, /) -> None:
        arms = self.query_attributes.hit_arms if self.query_attributes is not None else None
        if arms is not None and len(arms) != len(self.query_response_hit_ids):
            raise RecordValidationError(
                f"query_attributes.hit_arms has {len(arms)} entries for {len(self.query_response_hit_ids)} "
                "query_response_hit_ids; give one arm per shown hit",
                field="query_attributes.hit_arms",
            )


_R = TypeVar("_R", UbiQuery, UbiEvent)


def _field_of(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "record"


def _parse(model: type[_R], value: Any, *, record: int | None, where: str) -> _R:
    if isinstance(value, model):
        return value
    if not isinstance(value, Mapping):
        raise RecordValidationError(
            f"{where}: a record must be a JSON object, got {type(value).__name__}",
            field="record",
            **({"record": record} if record is not None else {}),
        )
    try:
        return model.model_validate(value)
    except ValidationError as e:
        first = e.errors()[0]
        cause = (first.get("ctx") or {}).get("error")
        if isinstance(cause, RecordValidationError):  # a check across fields names its own field
            raise RecordValidationError(
                f"{where}: {cause}", field=cause.field, **({"record": record} if record is not None else {})
            ) from e
        field = _field_of(tuple(first["loc"]))
        hint = "remove it (only the UBI fields are accepted)" if first["type"] == "extra_forbidden" else first["msg"]
        raise RecordValidationError(
            f"{where}: field {field!r}: {hint}",
            field=field,
            **({"record": record} if record is not None else {}),
        ) from e


def parse_event(value: Any, *, record: int | None = None) -> UbiEvent:
    """Validate one event record.

    Args:
        value: the decoded JSON object.
        record: its position in a request (named in the error).

    Raises:
        RecordValidationError: ``field`` names the first bad field.
    """
    where = "event" if record is None else f"event {record}"
    return _parse(UbiEvent, value, record=record, where=where)


def parse_query(value: Any, *, record: int | None = None) -> UbiQuery:
    """Validate one query record (see :func:`parse_event`)."""
    where = "query" if record is None else f"query {record}"
    return _parse(UbiQuery, value, record=record, where=where)


def query_record_from_response(
    response: Any,
    *,
    client_id: str | None = None,
    session_id: str | None = None,
    application: str | None = None,
    attributes: Mapping[str, Any] | None = None,
) -> UbiQuery:
    """The query record of a search response (read by attribute: ``query_id``, ``query``, ``ids``,
    ``index``, ``mode``, ``fusion``), so the search path needs no import of this module's callers.

    A response without a ``query_id`` gets a fresh uuid4; ``attributes`` (``experiment``, ``arm``,
    ``hit_arms``...) go into ``query_attributes`` beside the index and the configuration.
    """
    query_id = getattr(response, "query_id", None) or uuid.uuid4().hex
    ids = getattr(response, "ids", None)
    hit_ids = list(ids) if ids is not None else [str(h.id) for h in getattr(response, "hits", [])]
    fusion = getattr(response, "fusion", None)
    mode = str(getattr(response, "mode", "") or "")
    configuration = mode
    if fusion is not None and mode not in ("bm25", "knn"):
        configuration = f"{mode} {fusion.describe() if hasattr(fusion, 'describe') else fusion}"
    attrs: dict[str, Any] = {
        "index": str(getattr(response, "index", "") or "") or None,
        "configuration": configuration or None,
    }
    attrs.update(attributes or {})
    return UbiQuery(
        query_id=str(query_id),
        client_id=client_id,
        session_id=session_id,
        user_query=str(getattr(response, "query", "") or ""),
        query_response_hit_ids=hit_ids,
        application=application,
        query_attributes=QueryAttributes(**{k: v for k, v in attrs.items() if v is not None}),
    )
