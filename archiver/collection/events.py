"""The collection's append-only event log, ``<root>/.archiver/events.jsonl``.

One JSON object a line, PREMIS-like::

    {"id": "…uuid…", "type": "capture", "time": "2026-11-25T09:30:00Z",
     "agent": "archiver/0.1.0", "bag": "essay-20261125T093000Z",
     "target": null, "outcome": "success", "detail": {...}}

Types: capture, validation, fixity, replication, repair, deletion; ingestion
(a bag taken in from elsewhere: where from, digests, the verifier's result);
and from ``sync``: seen (a text listed by its site; ``detail.lastmod`` as
listed), gone (no longer listed, and answering 404/410), unlisted (no longer
listed but still served).
Outcomes: success, failure, unverifiable (and, for captures, unchanged);
``server-attested`` for a fixity check that rests, for some files, on the
checksums an S3 server stores rather than on reading them
(``archiver.replication.server_fixity``: ``detail.method``, ``detail.attested``,
``detail.read``). It is never a ``success``: only reading every byte is.

Each append is a single ``write`` of one whole line on a file opened with
O_APPEND, then fsynced, so concurrent writers never interleave inside a line.
A torn last line left by a crash is skipped by ``read_events`` and reported
in ``EventLogRead.torn``; it is never fatal.

A collection on S3 is written through a local working root bound to it
(``root.remote_of``): there each event is one object of its own, never a
shared object rewritten (``collection/s3store.py``).
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from archiver import AGENT
from archiver.clock import iso, utc_now
from archiver.collection.root import remote_of
from archiver.errors import StorageError

EVENT_TYPES = ("capture", "validation", "fixity", "replication", "repair", "deletion", "ingestion",
               "seen", "gone", "unlisted")
OUTCOMES = ("success", "failure", "unverifiable", "unchanged", "server-attested")


@dataclass
class Event:
    type: str
    outcome: str
    bag: str | None = None
    target: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    time: str = field(default_factory=lambda: iso(utc_now()))
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    agent: str = AGENT

    def __post_init__(self) -> None:
        if self.type not in EVENT_TYPES:
            raise ValueError(f"unknown event type {self.type!r}")
        if self.outcome not in OUTCOMES:
            raise ValueError(f"unknown event outcome {self.outcome!r}")

    def to_json(self) -> str:
        record = {
            "id": self.id,
            "type": self.type,
            "time": self.time,
            "agent": self.agent,
            "bag": self.bag,
            "target": self.target,
            "outcome": self.outcome,
            "detail": self.detail,
        }
        return json.dumps(record, ensure_ascii=False, sort_keys=False)

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> "Event":
        return cls(
            type=record["type"],
            outcome=record["outcome"],
            bag=record.get("bag"),
            target=record.get("target"),
            detail=record.get("detail") or {},
            time=record["time"],
            id=record["id"],
            agent=record.get("agent", ""),
        )


@dataclass
class EventLogRead:
    events: list[Event]
    torn: list[int]  # 1-based line numbers that were not whole JSON events


def events_path(root: Path) -> Path:
    return Path(root) / ".archiver" / "events.jsonl"


def append_events(root: Path, events: Iterable[Event]) -> None:
    """Append events to the log of the collection at ``root``, one write each
    (a remote collection's working root: one object each, see ``root.remote_of``)."""
    remote = remote_of(root)
    if remote is not None:
        remote.append_events(list(events))
        return
    path = events_path(root)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    except OSError as exc:
        raise StorageError(f"cannot open event log {path}: {exc.strerror}") from exc
    try:
        _heal_torn_tail(fd, path)
        for event in events:
            line = (event.to_json() + "\n").encode("utf-8")
            written = os.write(fd, line)
            if written != len(line):  # pragma: no cover - regular files write whole
                raise StorageError(f"short write to event log {path}")
        os.fsync(fd)
    except OSError as exc:
        raise StorageError(f"cannot append to event log {path}: {exc.strerror}") from exc
    finally:
        os.close(fd)


def append_event(root: Path, event: Event) -> None:
    append_events(root, [event])


def _heal_torn_tail(fd: int, path: Path) -> None:
    """If a crash left a last line without its newline, end it so the next
    event starts on a line of its own (the torn line stays, and is reported
    as torn by readers)."""
    size = os.fstat(fd).st_size
    if size == 0:
        return
    with open(path, "rb") as f:
        f.seek(size - 1)
        if f.read(1) != b"\n":
            os.write(fd, b"\n")


def read_events(root: Path) -> EventLogRead:
    """Every whole event in the log, oldest first; torn lines are listed, not fatal."""
    path = events_path(root)
    events: list[Event] = []
    torn: list[int] = []
    remote = remote_of(root)
    try:
        raw = remote.read_event_lines() if remote is not None else path.read_bytes()
    except FileNotFoundError:
        return EventLogRead(events, torn)
    except OSError as exc:
        raise StorageError(f"cannot read event log {path}: {exc.strerror}") from exc
    for number, line in enumerate(raw.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            events.append(Event.from_dict(json.loads(line)))
        except (ValueError, KeyError, TypeError):
            torn.append(number)
    return EventLogRead(events, torn)
