"""UBI records as JSON lines: one record a line, the UBI field names; no cluster needed.

A shop brings its logs from elsewhere with these files (``eshybrid events import``) and takes
them out again (``eshybrid events export``); ``eshybrid judgments`` reads them directly.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Literal, TypeVar, overload

from connector.errors import ConfigError, RecordValidationError
from connector.ubi.records import UbiEvent, UbiQuery, parse_event, parse_query

__all__ = ["read_events_jsonl", "read_jsonl", "read_queries_jsonl", "write_jsonl"]

Kind = Literal["query", "event"]


@overload
def read_jsonl(path: str | Path, kind: Literal["query"]) -> Iterator[UbiQuery]: ...
@overload
def read_jsonl(path: str | Path, kind: Literal["event"]) -> Iterator[UbiEvent]: ...
def read_jsonl(path: str | Path, kind: Kind) -> Iterator[UbiQuery] | Iterator[UbiEvent]:
    """Stream the records of a JSON-lines file, each validated.

    Args:
        path: the file (blank lines are skipped).
        kind: ``query`` (``ubi_queries`` records) or ``event`` (``ubi_events`` records).

    Raises:
        ConfigError: the file does not exist.
        RecordValidationError: a line is not JSON or not a valid record (``path``, ``line``, ``field``).
    """
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"{kind} records file not found: {file}", field=f"{kind}_jsonl", path=str(file))
    if kind == "query":
        return _read(file, parse_query)
    return _read(file, parse_event)


_R = TypeVar("_R", UbiQuery, UbiEvent)


def _read(file: Path, parse: Callable[[Any], _R]) -> Iterator[_R]:
    with file.open(encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except ValueError as e:
                raise RecordValidationError(
                    f"{file}:{number}: not a JSON object ({e})", field="record", path=str(file), line=number
                ) from e
            try:
                yield parse(value)
            except RecordValidationError as e:
                raise RecordValidationError(f"{file}:{number}: {e}", field=e.field, path=str(file), line=number) from e


def read_queries_jsonl(path: str | Path) -> Iterator[UbiQuery]:
    """``read_jsonl(path, "query")``."""
    return read_jsonl(path, "query")


def read_events_jsonl(path: str | Path) -> Iterator[UbiEvent]:
    """``read_jsonl(path, "event")``."""
    return read_jsonl(path, "event")


def write_jsonl(path: str | Path, records: Iterable[UbiQuery | UbiEvent]) -> int:
    """Write records as JSON lines (the file is replaced); returns how many were written."""
    file = Path(path)
    file.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    tmp = file.with_name(file.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record.to_doc(), ensure_ascii=False, separators=(",", ":")) + "\n")
            count += 1
    tmp.replace(file)
    return count
