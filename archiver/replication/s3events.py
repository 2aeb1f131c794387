"""The event log of an S3 site or collection as objects: one object per event,
``.archiver/events/<UTC time to µs>Z-<writer>-<seq>.json``, never rewritten
(``EventObjectNames``), merged with the legacy single ``events.jsonl`` by
(event time, key) when read (``merge_event_lines``)."""

from __future__ import annotations

import json
import os
import threading
import uuid
from datetime import datetime, timezone

from archiver.clock import iso, parse_iso


class EventObjectNames:
    """Names of one writer's event objects: ``<UTC time to µs>Z-<writer>-<seq>.json``,
    the writer 12 random hex digits per run, so no two writers ever pick one name."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._start()

    def _start(self) -> None:
        self.pid = os.getpid()
        self.writer = uuid.uuid4().hex[:12]
        self.seq = 0

    def next_name(self) -> str:
        with self._lock:
            if self.pid != os.getpid():  # a forked child is a writer of its own
                self._start()
            self.seq += 1
            seq = self.seq
        return f"{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%S.%f')}Z-{self.writer}-{seq:06d}.json"


def merge_event_lines(legacy: bytes, objects: list[tuple[str, bytes]]) -> bytes:
    """The legacy log's lines and the event objects' lines as one log, sorted by
    (event time, key); a line without a readable time (a torn one) keeps its place
    after the line before it."""
    entries: list[tuple[str, str, int, bytes]] = []
    when = ""
    for number, line in enumerate(legacy.split(b"\n")):
        if line.strip():
            when = _event_time(line) or when
            entries.append((when, "", number, line))
    for key, body in objects:
        for number, line in enumerate(body.split(b"\n")):
            if line.strip():
                entries.append((_event_time(line) or "", key, number, line))
    entries.sort(key=lambda e: e[:3])
    return b"".join(line + b"\n" for *_, line in entries)


def _event_time(line: bytes) -> str | None:
    try:
        record = json.loads(line)
    except ValueError:
        return None
    value = record.get("time") if isinstance(record, dict) else None
    if not isinstance(value, str):
        return None
    try:
        return iso(parse_iso(value))
    except ValueError:
        return None
