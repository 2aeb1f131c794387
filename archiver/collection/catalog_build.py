"""The catalogue file, ``<root>/.archiver/catalog.sqlite``: its schema, reading
bags into rows, the locked writes, and building it anew (see ``catalog`` for
why no reader ever sees a half-written catalogue).

A bag that cannot be read as a capture (``CaptureRecord`` says why: a symbolic
link, a missing text…) is catalogued as *damaged*: listed with the reason, its
text not indexed, so ``search`` never shows words that are not a sound bag's.

Where the rows come from is a ``CatalogSource``: ``LocalSource`` (a folder of
bags and its ``events.jsonl``; the catalogue in its ``.archiver/``) or an S3
collection (``archiver.collection.s3root.S3CatalogSource``; the catalogue in a
local cache folder). Schema, locking and building are the same for both.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import tempfile
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Protocol

from archiver.bagit.parse import parse_oxum
from archiver.collection.events import Event, events_path
from archiver.bagit.reader import BagReader
from archiver.collection.record import CaptureRecord, DamagedCapture, ForeignBag
from archiver.collection.root import META_DIR, is_bag_dir, list_bag_dirs
from archiver.durable import TMP_PREFIX, fsync_dir, fsync_file
from archiver.errors import StorageError

SCHEMA_VERSION = 4  # 4: bags.date_iso (the text's date read as an ISO date, from metadata.json)
CATALOG_NAME = "catalog.sqlite"
# Title matches outrank author matches, which outrank matches in the body.
RANK = "bm25(10.0, 5.0, 1.0)"

OnProgress = Callable[..., None]


_SCHEMA = f"""
CREATE TABLE bags (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    url TEXT, final_url TEXT, title TEXT, subtitle TEXT, author TEXT,
    date TEXT, date_iso TEXT, source TEXT, retrieved TEXT, text_sha256 TEXT,
    payload_bytes INTEGER, payload_files INTEGER, derived_from TEXT,
    damaged TEXT  -- why the bag cannot be read as a capture; its text is then not indexed
);
CREATE INDEX bags_by_url ON bags(url, retrieved);
CREATE INDEX bags_by_final_url ON bags(final_url, retrieved);
CREATE INDEX bags_by_derived_from ON bags(derived_from);
CREATE TABLE capture_events (
    seq INTEGER PRIMARY KEY,  -- order in the event log: breaks ties between equal times
    event_id TEXT NOT NULL UNIQUE, outcome TEXT NOT NULL, url TEXT NOT NULL, time TEXT NOT NULL,
    bag TEXT, final_url TEXT, text_sha256 TEXT, reason TEXT
);
CREATE INDEX capture_events_by_url ON capture_events(url, time);
CREATE INDEX capture_events_by_final_url ON capture_events(final_url, time);
CREATE INDEX capture_events_by_bag ON capture_events(bag);
CREATE TABLE state (key TEXT PRIMARY KEY, value TEXT) WITHOUT ROWID;
CREATE VIRTUAL TABLE bag_text USING fts5(
    title, author, text, tokenize = 'unicode61 remove_diacritics 2'
);
INSERT INTO bag_text(bag_text, rank) VALUES ('rank', '{RANK}');
"""

_BAG_COLUMNS = ("name", "url", "final_url", "title", "subtitle", "author", "date", "date_iso", "source",
                "retrieved", "text_sha256", "payload_bytes", "payload_files", "derived_from", "damaged")


@dataclass(frozen=True)
class BagRecord:
    """What the catalogue knows of one bag; ``text`` is indexed, not listed.
    ``damaged`` is why the bag cannot be read as a capture (then only the name is known)."""

    name: str
    url: str | None = None
    final_url: str | None = None
    title: str | None = None
    subtitle: str | None = None
    author: str | None = None
    date: str | None = None
    date_iso: str | None = None  # ``date`` read as an ISO 8601 date, when it reads as one
    source: str | None = None
    retrieved: str | None = None
    text_sha256: str | None = None
    payload_bytes: int | None = None
    payload_files: int | None = None
    derived_from: str | None = None
    damaged: str | None = None
    text: str = ""

    def to_dict(self) -> dict[str, Any]:
        record = asdict(self)
        del record["text"]
        return record


@dataclass
class RebuildReport:
    path: Path
    bags: int = 0
    checks: int = 0
    damaged: list[tuple[str, str]] = field(default_factory=list)  # (bag, why): listed, not indexed

    def to_dict(self) -> dict[str, Any]:
        return {"catalog": str(self.path), "bags": self.bags, "checks": self.checks,
                "damaged": [{"bag": b, "reason": r} for b, r in self.damaged]}


# --------------------------------------------------------------------------- reading bags

def _text_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def read_bag_record(bag_dir: Path) -> BagRecord:
    """What the catalogue needs from a bag on disk, read through ``CaptureRecord``
    (never a byte outside the bag). A bag that cannot be read as a capture gives a
    *damaged* record: its name and the reason, nothing indexed."""
    bag_dir = Path(bag_dir)
    return _bag_record(bag_dir.name, lambda: CaptureRecord.read(bag_dir))


def read_bag_record_from(reader: BagReader, name: str) -> BagRecord:
    """``read_bag_record`` of a bag read through a ``BagReader`` (a bag on S3)."""
    return _bag_record(name, lambda: CaptureRecord.read_from(reader, name))


def _bag_record(name: str, read: Callable[[], CaptureRecord]) -> BagRecord:
    try:
        record = read()
    except ForeignBag as foreign:
        return _foreign_bag_record(name, foreign.bag_info)
    except DamagedCapture as exc:
        return BagRecord(name=name, damaged=str(exc))
    metadata = record.metadata
    oxum = record.payload_oxum
    derived = metadata.get("derived_from")
    return BagRecord(
        name=name,
        url=_text_or_none(metadata.get("url")),
        final_url=_text_or_none(metadata.get("final_url")),
        title=_text_or_none(metadata.get("title")),
        subtitle=_text_or_none(metadata.get("subtitle")),
        author=_text_or_none(metadata.get("author")),
        date=_text_or_none(metadata.get("date")),
        date_iso=_text_or_none(metadata.get("date_iso")),
        source=_text_or_none(metadata.get("source")),
        retrieved=_text_or_none(metadata.get("retrieved")),
        text_sha256=_text_or_none(metadata.get("text_sha256")),
        payload_bytes=oxum[0] if oxum else None,
        payload_files=oxum[1] if oxum else None,
        derived_from=_text_or_none(derived.get("bag")) if isinstance(derived, dict) else None,
        text=record.text.decode("utf-8", errors="replace"),
    )


def _foreign_bag_record(name: str, info: Mapping[str, str]) -> BagRecord:
    """A bag made elsewhere (ingested): listed with its bag-info.txt's External-Description
    (as title), Source-Organization (as source) and Bagging-Date (as date); nothing indexed."""
    oxum = parse_oxum(info.get("Payload-Oxum", ""))
    return BagRecord(name=name, title=info.get("External-Description"),
                     source=info.get("Source-Organization"), date=info.get("Bagging-Date"),
                     payload_bytes=oxum[0] if oxum else None, payload_files=oxum[1] if oxum else None)


# --------------------------------------------------------------------------- low-level writes

def catalog_path(root: Path) -> Path:
    return Path(root) / META_DIR / CATALOG_NAME


class CatalogSource(Protocol):
    """Where a catalogue's rows come from (the bags, the event log) and where
    the catalogue file and its locks live (``meta``)."""

    location: str  # the collection, as messages name it
    meta: Path     # the folder holding catalog.sqlite and its locks

    def bag_names(self) -> list[str]:
        """Every bag of the collection (sorted)."""

    def records(self, names: list[str]) -> Iterator[BagRecord]:
        """The catalogue row of each named bag, in order (damaged ones included)."""

    def import_new(self, conn: sqlite3.Connection) -> int:
        """Bring ``conn`` up to date with what the collection gained since the
        last import (inside the caller's transaction); return re-checks added."""


class LocalSource:
    """A collection root on disk: its bag folders and ``.archiver/events.jsonl``."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.location = str(self.root)
        self.meta = self.root / META_DIR

    def bag_names(self) -> list[str]:
        return [p.name for p in list_bag_dirs(self.root)]

    def records(self, names: list[str]) -> Iterator[BagRecord]:
        return (read_bag_record(self.root / name) for name in names)

    def import_new(self, conn: sqlite3.Connection) -> int:
        return import_events(conn, self.root)


def as_source(root: "Path | str | CatalogSource") -> CatalogSource:
    """A local root as a ``LocalSource``; a source as it is."""
    return LocalSource(root) if isinstance(root, (str, Path)) else root


def catalog_file(source: CatalogSource) -> Path:
    return source.meta / CATALOG_NAME


@contextmanager
def _flock(path: Path) -> Iterator[None]:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise StorageError(f"cannot open lock {path}: {exc.strerror}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def write_lock(root: "Path | CatalogSource") -> AbstractContextManager[None]:
    return _flock(as_source(root).meta / "catalog.write.lock")


def rebuild_lock(root: "Path | CatalogSource") -> AbstractContextManager[None]:
    return _flock(as_source(root).meta / "catalog.rebuild.lock")


def connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, timeout=30.0)
    conn.row_factory = sqlite3.Row
    return conn


def insert_bag(conn: sqlite3.Connection, record: BagRecord) -> None:
    old = conn.execute("SELECT id FROM bags WHERE name = ?", (record.name,)).fetchone()
    if old is not None:
        conn.execute("DELETE FROM bag_text WHERE rowid = ?", (old[0],))
        conn.execute("DELETE FROM bags WHERE id = ?", (old[0],))
    values = [getattr(record, column) for column in _BAG_COLUMNS]
    cursor = conn.execute(
        f"INSERT INTO bags ({', '.join(_BAG_COLUMNS)}) VALUES ({', '.join('?' * len(_BAG_COLUMNS))})",
        values)
    if record.damaged is None:  # a damaged bag's words are not a capture's: never searchable
        conn.execute("INSERT INTO bag_text(rowid, title, author, text) VALUES (?, ?, ?, ?)",
                     (cursor.lastrowid, record.title or "", record.author or "", record.text))


def _capture_event_row(event: Event) -> tuple[str | None, ...] | None:
    """The ``capture_events`` row of a successful or unchanged capture (or a sync's
    gone/unlisted finding), else None."""
    if event.type in ("gone", "unlisted"):  # sync: no longer listed by its site (shown by history)
        outcome = event.type
    elif event.type != "capture" or event.outcome not in ("success", "unchanged"):
        return None
    else:
        outcome = event.outcome
    url = event.detail.get("url")
    if not url:
        return None
    return (event.id, outcome, str(url), event.time, event.bag,
            _text_or_none(event.detail.get("final_url")), _text_or_none(event.detail.get("text_sha256")),
            _text_or_none(event.detail.get("reason")))


def import_events(conn: sqlite3.Connection, root: Path) -> int:
    """Import the events appended since the last import (inside the caller's
    transaction); return how many re-checks were added. A log shorter than what
    was read before was replaced, so it is read again from the start (rows are
    keyed by event id, so nothing doubles)."""
    path = events_path(root)
    row = conn.execute("SELECT value FROM state WHERE key = 'events_offset'").fetchone()
    offset = int(row[0]) if row else 0
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return 0
    except OSError as exc:
        raise StorageError(f"cannot read event log {path}: {exc.strerror}") from exc
    if size == offset:
        return 0
    if size < offset:
        offset = 0
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            chunk = f.read(size - offset)
    except OSError as exc:
        raise StorageError(f"cannot read event log {path}: {exc.strerror}") from exc
    whole = chunk[: chunk.rfind(b"\n") + 1]  # a line still being written is read next time
    events = []
    for line in whole.split(b"\n"):
        try:
            if line.strip():
                events.append(Event.from_dict(json.loads(line)))
        except (ValueError, KeyError, TypeError):
            continue  # torn line: read_events reports those
    rows = insert_event_rows(conn, events)
    conn.execute("INSERT OR REPLACE INTO state VALUES ('events_offset', ?)", (str(offset + len(whole)),))
    _index_logged_bags(conn, root, {row[4] for row in rows if row[1] == "success" and row[4]})
    return sum(row[1] == "unchanged" for row in rows)


def insert_event_rows(conn: sqlite3.Connection, events: Iterable[Event]) -> list[tuple[str | None, ...]]:
    """Add the catalogue rows of ``events`` (in this order; an event already
    there is kept as it was); return the rows of those that make one."""
    rows = [row for row in map(_capture_event_row, events) if row is not None]
    conn.executemany("INSERT OR IGNORE INTO capture_events (event_id, outcome, url, time, bag, final_url, "
                     "text_sha256, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
    return rows


def _index_logged_bags(conn: sqlite3.Connection, root: Path, names: set[str]) -> None:
    """Index bags whose capture was logged but never catalogued (a run killed
    between the event and ``catalog_add_bag``), so no bag on disk stays unlisted."""
    for name in sorted(names):
        if conn.execute("SELECT 1 FROM bags WHERE name = ?", (name,)).fetchone():
            continue
        bag_dir = root / name
        if "/" in name or name.startswith(".") or not is_bag_dir(bag_dir):
            continue
        insert_bag(conn, read_bag_record(bag_dir))


# --------------------------------------------------------------------------- building

def build_catalog(dest: Path, records: Iterable[BagRecord], *, total: int | None = None,
                  on_progress: OnProgress | None = None) -> int:
    """Write a new catalogue file at ``dest`` (which must not exist) holding
    ``records``; return how many. Fast bulk mode: no journal while building
    (the file is not anyone's catalogue yet), fsynced at the end. The caller
    renames it into place; ``rebuild_catalog`` is the usual caller."""
    count = 0
    conn = connect(dest)
    try:
        conn.execute("PRAGMA journal_mode = OFF")
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute("PRAGMA cache_size = -131072")  # 128 MiB
        conn.executescript(_SCHEMA)
        # Bulk load: merge index segments once at the end ('optimize') rather
        # than as they accumulate (a quarter less CPU); defaults restored after.
        conn.execute("INSERT INTO bag_text(bag_text, rank) VALUES ('automerge', 0)")
        conn.execute("INSERT INTO bag_text(bag_text, rank) VALUES ('crisismerge', 64)")
        conn.execute("BEGIN")
        for record in records:
            insert_bag(conn, record)
            count += 1
            if count % 1000 == 0:
                conn.execute("COMMIT")
                conn.execute("BEGIN")
                if on_progress:
                    on_progress(count, total, "bags")
        conn.execute("COMMIT")
        # One merged index segment makes queries on a large catalogue faster.
        conn.execute("INSERT INTO bag_text(bag_text) VALUES ('optimize')")
        conn.execute("INSERT INTO bag_text(bag_text, rank) VALUES ('automerge', 4)")
        conn.execute("INSERT INTO bag_text(bag_text, rank) VALUES ('crisismerge', 16)")
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("PRAGMA journal_mode = DELETE")
    except sqlite3.Error as exc:
        raise StorageError(f"cannot build catalogue {dest}: {exc}") from exc
    finally:
        conn.close()
    if on_progress:
        on_progress(count, total, "bags")
    fsync_file(dest)
    return count


def _records_from_bags(source: CatalogSource, names: list[str],
                       damaged: list[tuple[str, str]]) -> Iterator[BagRecord]:
    for record in source.records(names):
        if record.damaged:
            damaged.append((record.name, record.damaged))
        yield record


def _catch_up(conn: sqlite3.Connection, source: CatalogSource, damaged: list[tuple[str, str]]) -> int:
    """Add bags written since the scan began; return how many were added."""
    known = {row[0] for row in conn.execute("SELECT name FROM bags")}
    new = [name for name in source.bag_names() if name not in known]
    conn.execute("BEGIN")
    for record in _records_from_bags(source, new, damaged):
        insert_bag(conn, record)
    conn.execute("COMMIT")
    return len(new)


def rebuild_catalog(root: "Path | CatalogSource", on_progress: OnProgress | None = None) -> RebuildReport:
    """Rebuild the catalogue (``<root>/.archiver/catalog.sqlite`` for a local
    root) from the bags and the event log, into a temporary file that replaces
    the old one when complete. Bags that cannot be read as captures are
    catalogued as damaged (listed, not indexed) and named in the report's ``damaged``."""
    source = as_source(root)
    meta = source.meta
    try:
        meta.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"cannot create {meta}: {exc.strerror}") from exc
    with rebuild_lock(source):
        return rebuild_locked(source, on_progress)


def rebuild_locked(root: "Path | CatalogSource", on_progress: OnProgress | None) -> RebuildReport:
    source = as_source(root)
    meta = source.meta
    for stale in meta.glob(f"{TMP_PREFIX}catalog-*"):  # under the rebuild lock, only a crash leaves these
        stale.unlink(missing_ok=True)
    fd, name = tempfile.mkstemp(prefix=f"{TMP_PREFIX}catalog-", suffix=".sqlite", dir=meta)
    os.close(fd)
    tmp = Path(name)
    tmp.unlink()  # sqlite creates it; mkstemp only reserved a unique name
    report = RebuildReport(path=catalog_file(source))
    try:
        names = source.bag_names()
        report.bags = build_catalog(tmp, _records_from_bags(source, names, report.damaged),
                                    total=len(names), on_progress=on_progress)
        with write_lock(source):
            conn = connect(tmp)
            try:
                report.bags += _catch_up(conn, source, report.damaged)
                conn.execute("BEGIN")
                report.checks = source.import_new(conn)
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                raise StorageError(f"cannot build catalogue {tmp}: {exc}") from exc
            finally:
                conn.close()
            fsync_file(tmp)
            # Every writer holds the write lock, so a journal here was left by a
            # writer that crashed on the OLD file: SQLite would replay it into the new one.
            for leftover in ("-journal", "-wal"):
                Path(f"{report.path}{leftover}").unlink(missing_ok=True)
            os.replace(tmp, report.path)
            fsync_dir(meta)
    except OSError as exc:
        raise StorageError(f"cannot rebuild catalogue {report.path}: {exc.strerror}") from exc
    finally:
        tmp.unlink(missing_ok=True)
    return report

