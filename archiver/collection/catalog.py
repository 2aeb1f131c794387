"""The collection's catalogue, ``<root>/.archiver/catalog.sqlite``: one row per
bag, an FTS5 index over title, author and text, and the re-checks of sources
("unchanged" capture events) that ``history`` shows.

The catalogue is *derived*. The truth is the bags (``data/metadata.json``,
``data/text.txt``, ``bag-info.txt``) and the event log; anything here can be
thrown away and rebuilt with ``rebuild_catalog``. ``open_catalog`` does that by
itself when the file is missing, has another schema version
(``PRAGMA user_version``), or is not a readable SQLite database; a query that
meets a corrupt page rebuilds and runs once more.

Concurrency, and why no reader ever sees a half-written catalogue:

- A rebuild writes a new file ``.archiver/.tmp-catalog-*.sqlite``, fsyncs it
  and ``os.replace``-s it over the old one. A reader that opened the old file
  keeps reading the old inode to the end; a reader opening after the rename
  gets the whole new file. Nobody sees the new file while it is being written.
- Incremental changes (``catalog_add_bag``, importing new events) are single
  SQLite transactions in rollback-journal mode, so readers see all of one or
  none of it. WAL is *not* used: a ``-wal`` file left beside the old database
  would be replayed into the renamed-in new one.
- Writers hold ``.archiver/catalog.write.lock`` (flock) for the length of one
  transaction; the rebuild takes it only for its final catch-up and rename, so
  a capture is never held up for the length of a rebuild, and no write can land
  in the old file after the rename. ``.archiver/catalog.rebuild.lock`` keeps
  two rebuilds from running at once (the second one waits, then finds a good
  catalogue and does nothing more than the first did).

Events are imported incrementally: the catalogue remembers how many bytes of
``events.jsonl`` it has read and imports the rest on the next open, so the
snapshot pipeline only needs to append its events.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import tempfile
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from archiver.collection.query import RANK_AT_MOST, HistoryEntry, SearchHit, fts_query, history_entries, search_hits
from archiver.collection.root import META_DIR, is_bag_dir, list_bag_dirs
from archiver.durable import TMP_PREFIX, fsync_dir, fsync_file
from archiver.errors import ArchiverError, StorageError, UsageError
from archiver.collection.events import Event, events_path

SCHEMA_VERSION = 2
CATALOG_NAME = "catalog.sqlite"
# Title matches outrank author matches, which outrank matches in the body.
RANK = "bm25(10.0, 5.0, 1.0)"
_CORRUPT_CODES = {11, 26}  # SQLITE_CORRUPT, SQLITE_NOTADB

OnProgress = Callable[..., None]
__all__ = ["BagRecord", "Catalog", "HistoryEntry", "NotInCatalog", "RebuildReport", "SearchHit",
           "build_catalog", "catalog_add_bag", "catalog_path", "fts_query", "open_catalog",
           "read_bag_record", "rebuild_catalog"]


class NotInCatalog(ArchiverError):
    """The bag or URL asked for is in no bag of the collection (exit 1)."""

    exit_code = 1


_SCHEMA = f"""
CREATE TABLE bags (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    url TEXT, final_url TEXT, title TEXT, subtitle TEXT, author TEXT,
    date TEXT, source TEXT, retrieved TEXT, text_sha256 TEXT,
    payload_bytes INTEGER, payload_files INTEGER, derived_from TEXT
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

_BAG_COLUMNS = ("name", "url", "final_url", "title", "subtitle", "author", "date", "source",
                "retrieved", "text_sha256", "payload_bytes", "payload_files", "derived_from")


@dataclass(frozen=True)
class BagRecord:
    """What the catalogue knows of one bag; ``text`` is indexed, not listed."""

    name: str
    url: str | None = None
    final_url: str | None = None
    title: str | None = None
    subtitle: str | None = None
    author: str | None = None
    date: str | None = None
    source: str | None = None
    retrieved: str | None = None
    text_sha256: str | None = None
    payload_bytes: int | None = None
    payload_files: int | None = None
    derived_from: str | None = None
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
    skipped: list[tuple[str, str]] | None = None  # (bag name, why) for bags that could not be read

    def to_dict(self) -> dict[str, Any]:
        return {"catalog": str(self.path), "bags": self.bags, "checks": self.checks,
                "skipped": [{"bag": b, "reason": r} for b, r in self.skipped or []]}


# --------------------------------------------------------------------------- reading bags

def _parse_payload_oxum(bag_info: str) -> tuple[int | None, int | None]:
    for line in bag_info.splitlines():
        label, _, value = line.partition(":")
        if label.strip().lower() == "payload-oxum":
            octets, _, count = value.strip().partition(".")
            if octets.isdigit() and count.isdigit():
                return int(octets), int(count)
    return None, None


def _text_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def read_bag_record(bag_dir: Path) -> BagRecord:
    """Read what the catalogue needs from a bag on disk. StorageError if its
    metadata or text cannot be read."""
    bag_dir = Path(bag_dir)
    if not (bag_dir / "data" / "metadata.json").exists() and (bag_dir / "bag-info.txt").is_file():
        return _foreign_bag_record(bag_dir)
    try:
        metadata = json.loads((bag_dir / "data" / "metadata.json").read_bytes())
        text = (bag_dir / "data" / "text.txt").read_bytes().decode("utf-8", errors="replace")
    except (OSError, ValueError) as exc:
        raise StorageError(f"cannot read bag {bag_dir.name}: {exc}") from exc
    if not isinstance(metadata, dict):
        raise StorageError(f"cannot read bag {bag_dir.name}: data/metadata.json is not an object")
    try:
        bag_info = (bag_dir / "bag-info.txt").read_text("utf-8", errors="replace")
    except OSError:
        bag_info = ""  # the size is a convenience; verify reports a missing bag-info.txt
    payload_bytes, payload_files = _parse_payload_oxum(bag_info)
    derived = metadata.get("derived_from")
    return BagRecord(
        name=bag_dir.name,
        url=_text_or_none(metadata.get("url")),
        final_url=_text_or_none(metadata.get("final_url")),
        title=_text_or_none(metadata.get("title")),
        subtitle=_text_or_none(metadata.get("subtitle")),
        author=_text_or_none(metadata.get("author")),
        date=_text_or_none(metadata.get("date")),
        source=_text_or_none(metadata.get("source")),
        retrieved=_text_or_none(metadata.get("retrieved")),
        text_sha256=_text_or_none(metadata.get("text_sha256")),
        payload_bytes=payload_bytes,
        payload_files=payload_files,
        derived_from=_text_or_none(derived.get("bag")) if isinstance(derived, dict) else None,
        text=text,
    )


def _foreign_bag_record(bag_dir: Path) -> BagRecord:
    """A bag made elsewhere (ingested): listed with its bag-info.txt's External-Description
    (as title), Source-Organization (as source) and Bagging-Date (as date)."""
    try:
        bag_info = (bag_dir / "bag-info.txt").read_text("utf-8", errors="replace")
    except OSError as exc:
        raise StorageError(f"cannot read bag {bag_dir.name}: {exc}") from exc
    info: dict[str, str] = {}
    for line in bag_info.splitlines():
        label, colon, value = line.partition(":")
        if colon and not line[:1].isspace():
            info.setdefault(label.strip().lower(), value.strip())
    payload_bytes, payload_files = _parse_payload_oxum(bag_info)
    return BagRecord(name=bag_dir.name, title=info.get("external-description"),
                     source=info.get("source-organization"), date=info.get("bagging-date"),
                     payload_bytes=payload_bytes, payload_files=payload_files)


# --------------------------------------------------------------------------- low-level writes

def catalog_path(root: Path) -> Path:
    return Path(root) / META_DIR / CATALOG_NAME


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


def _write_lock(root: Path) -> Any:
    return _flock(Path(root) / META_DIR / "catalog.write.lock")


def _rebuild_lock(root: Path) -> Any:
    return _flock(Path(root) / META_DIR / "catalog.rebuild.lock")


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, timeout=30.0)
    conn.row_factory = sqlite3.Row
    return conn


def _insert_bag(conn: sqlite3.Connection, record: BagRecord) -> None:
    old = conn.execute("SELECT id FROM bags WHERE name = ?", (record.name,)).fetchone()
    if old is not None:
        conn.execute("DELETE FROM bag_text WHERE rowid = ?", (old[0],))
        conn.execute("DELETE FROM bags WHERE id = ?", (old[0],))
    values = [getattr(record, column) for column in _BAG_COLUMNS]
    cursor = conn.execute(
        f"INSERT INTO bags ({', '.join(_BAG_COLUMNS)}) VALUES ({', '.join('?' * len(_BAG_COLUMNS))})",
        values)
    conn.execute("INSERT INTO bag_text(rowid, title, author, text) VALUES (?, ?, ?, ?)",
                 (cursor.lastrowid, record.title or "", record.author or "", record.text))


def _capture_event_row(event: Event) -> tuple | None:
    """The ``capture_events`` row of a successful or unchanged capture, else None."""
    if event.type != "capture" or event.outcome not in ("success", "unchanged"):
        return None
    url = event.detail.get("url")
    if not url:
        return None
    return (event.id, event.outcome, str(url), event.time, event.bag,
            _text_or_none(event.detail.get("final_url")), _text_or_none(event.detail.get("text_sha256")),
            _text_or_none(event.detail.get("reason")))


def _import_events(conn: sqlite3.Connection, root: Path) -> int:
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
    rows = []
    for line in whole.split(b"\n"):
        try:
            row = _capture_event_row(Event.from_dict(json.loads(line))) if line.strip() else None
        except (ValueError, KeyError, TypeError):
            continue  # torn line: read_events reports those
        if row is not None:
            rows.append(row)
    conn.executemany("INSERT OR IGNORE INTO capture_events (event_id, outcome, url, time, bag, final_url, "
                     "text_sha256, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
    conn.execute("INSERT OR REPLACE INTO state VALUES ('events_offset', ?)", (str(offset + len(whole)),))
    _index_logged_bags(conn, root, {row[4] for row in rows if row[1] == "success" and row[4]})
    return sum(row[1] == "unchanged" for row in rows)


def _index_logged_bags(conn: sqlite3.Connection, root: Path, names: set[str]) -> None:
    """Index bags whose capture was logged but never catalogued (a run killed
    between the event and ``catalog_add_bag``), so no bag on disk stays unlisted."""
    for name in sorted(names):
        if conn.execute("SELECT 1 FROM bags WHERE name = ?", (name,)).fetchone():
            continue
        bag_dir = root / name
        if "/" in name or name.startswith(".") or not is_bag_dir(bag_dir):
            continue
        try:
            _insert_bag(conn, read_bag_record(bag_dir))
        except StorageError:
            continue  # unreadable now; `archiver catalog rebuild` reports it


# --------------------------------------------------------------------------- building

def build_catalog(dest: Path, records: Iterable[BagRecord], *, total: int | None = None,
                  on_progress: OnProgress | None = None) -> int:
    """Write a new catalogue file at ``dest`` (which must not exist) holding
    ``records``; return how many. Fast bulk mode: no journal while building
    (the file is not anyone's catalogue yet), fsynced at the end. The caller
    renames it into place; ``rebuild_catalog`` is the usual caller."""
    count = 0
    conn = _connect(dest)
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
            _insert_bag(conn, record)
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


def _records_from_bags(bag_dirs: list[Path], skipped: list[tuple[str, str]]) -> Iterator[BagRecord]:
    for bag_dir in bag_dirs:
        try:
            yield read_bag_record(bag_dir)
        except StorageError as exc:
            skipped.append((bag_dir.name, str(exc)))


def _catch_up(conn: sqlite3.Connection, root: Path, skipped: list[tuple[str, str]]) -> int:
    """Add bags written since the scan began; return how many were added."""
    known = {row[0] for row in conn.execute("SELECT name FROM bags")}
    skipped_names = {name for name, _ in skipped}
    added = 0
    conn.execute("BEGIN")
    for bag_dir in list_bag_dirs(root):
        if bag_dir.name in known or bag_dir.name in skipped_names:
            continue
        try:
            _insert_bag(conn, read_bag_record(bag_dir))
            added += 1
        except StorageError as exc:
            skipped.append((bag_dir.name, str(exc)))
    conn.execute("COMMIT")
    return added


def rebuild_catalog(root: Path, on_progress: OnProgress | None = None) -> RebuildReport:
    """Rebuild ``<root>/.archiver/catalog.sqlite`` from the bags and the event
    log, into a temporary file that replaces the old one when complete.
    Bags whose metadata or text cannot be read are left out and listed in the
    report's ``skipped`` (``verify`` says what is wrong with them)."""
    root = Path(root)
    meta = root / META_DIR
    try:
        meta.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"cannot create {meta}: {exc.strerror}") from exc
    with _rebuild_lock(root):
        return _rebuild_locked(root, on_progress)


def _rebuild_locked(root: Path, on_progress: OnProgress | None) -> RebuildReport:
    meta = root / META_DIR
    for stale in meta.glob(f"{TMP_PREFIX}catalog-*"):  # under the rebuild lock, only a crash leaves these
        stale.unlink(missing_ok=True)
    fd, name = tempfile.mkstemp(prefix=f"{TMP_PREFIX}catalog-", suffix=".sqlite", dir=meta)
    os.close(fd)
    tmp = Path(name)
    tmp.unlink()  # sqlite creates it; mkstemp only reserved a unique name
    skipped: list[tuple[str, str]] = []
    report = RebuildReport(path=catalog_path(root), skipped=skipped)
    try:
        bag_dirs = list_bag_dirs(root)
        report.bags = build_catalog(tmp, _records_from_bags(bag_dirs, skipped),
                                    total=len(bag_dirs), on_progress=on_progress)
        with _write_lock(root):
            conn = _connect(tmp)
            try:
                report.bags += _catch_up(conn, root, skipped)
                conn.execute("BEGIN")
                report.checks = _import_events(conn, root)
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


# --------------------------------------------------------------------------- opening

def _is_corruption(exc: sqlite3.Error) -> bool:
    return getattr(exc, "sqlite_errorcode", None) in _CORRUPT_CODES or (
        type(exc) is sqlite3.DatabaseError)


def _usable(path: Path) -> bool:
    """Whether ``path`` is a catalogue of the current schema (cheap checks only;
    deeper corruption is found, and repaired, when a query meets it)."""
    if not path.is_file():
        return False
    try:
        conn = _connect(path)
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        finally:
            conn.close()
    except sqlite3.Error:
        return False
    return version == SCHEMA_VERSION and {"bags", "capture_events", "state", "bag_text"} <= tables


def _ensure_usable(root: Path, on_progress: OnProgress | None = None) -> None:
    path = catalog_path(root)
    if _usable(path):
        return
    with _rebuild_lock(root):
        if not _usable(path):  # another process may have rebuilt it while we waited
            _rebuild_locked(root, on_progress)


def open_catalog(root: Path, on_progress: OnProgress | None = None) -> "Catalog":
    """Open the catalogue of the collection at ``root``, rebuilding it first when
    it is missing, of an older schema, or unreadable; import new events."""
    root = Path(root)
    if not root.is_dir():
        raise StorageError(f"collection root {root} does not exist")
    _ensure_usable(root, on_progress)
    catalog = Catalog(root)
    catalog.sync_events()
    return catalog


def catalog_add_bag(root: Path, bag_dir: Path) -> None:
    """Index a bag just written. Called by the snapshot pipeline after each bag.

    A missing, outdated or corrupt catalogue is rebuilt (which indexes this bag
    too). Raises StorageError only when the catalogue cannot be written at all;
    the bag itself is safe then, and ``archiver catalog rebuild`` indexes it
    later, so callers may report the error and carry on with the capture.
    """
    root = Path(root)
    record = read_bag_record(bag_dir)
    for attempt in (1, 2):
        _ensure_usable(root)
        try:
            with _write_lock(root):
                conn = _connect(catalog_path(root))
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    _insert_bag(conn, record)
                    _import_events(conn, root)
                    conn.execute("COMMIT")
                finally:
                    conn.close()
            return
        except sqlite3.Error as exc:
            if attempt == 2 or not _is_corruption(exc):
                raise StorageError(f"cannot add {record.name} to the catalogue: {exc}") from exc
            rebuild_catalog(root)


# --------------------------------------------------------------------------- queries

class Catalog:
    """An open catalogue. Methods rebuild and retry once if they meet corruption."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.path = catalog_path(self.root)
        self._conn = _connect(self.path)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> "Catalog":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self, query: Callable[[sqlite3.Connection], Any]) -> Any:
        try:
            return query(self._conn)
        except sqlite3.Error as exc:
            if not _is_corruption(exc):
                raise
            self._conn.close()
            rebuild_catalog(self.root)
            self._conn = _connect(self.path)
            return query(self._conn)

    def sync_events(self) -> int:
        """Import capture events appended since the last import."""
        def sync(conn: sqlite3.Connection) -> int:
            with _write_lock(self.root):
                conn.execute("BEGIN IMMEDIATE")
                try:
                    added = _import_events(conn, self.root)
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
                return added
        try:
            return self._run(sync)
        except (sqlite3.OperationalError, StorageError):
            return 0  # a read-only collection: query what is there

    @staticmethod
    def _record(row: sqlite3.Row) -> BagRecord:
        return BagRecord(**{column: row[column] for column in _BAG_COLUMNS})

    def list_bags(self) -> list[BagRecord]:
        """Every bag, oldest retrieval first."""
        rows = self._run(lambda c: c.execute(
            f"SELECT {', '.join(_BAG_COLUMNS)} FROM bags ORDER BY retrieved, name").fetchall())
        return [self._record(row) for row in rows]

    def count(self) -> int:
        return self._run(lambda c: c.execute("SELECT count(*) FROM bags").fetchone()[0])

    def show(self, bag_or_url: str) -> BagRecord:
        """A bag by folder name (or path), else the latest capture of a URL."""
        name = Path(bag_or_url.rstrip("/")).name if "://" not in bag_or_url else bag_or_url
        columns = ", ".join(_BAG_COLUMNS)
        row = self._run(lambda c: c.execute(
            f"SELECT {columns} FROM bags WHERE name = ?", (name,)).fetchone()
            or c.execute(f"SELECT {columns} FROM bags WHERE url = ? OR final_url = ? "
                         "ORDER BY retrieved DESC, name DESC LIMIT 1",
                         (bag_or_url, bag_or_url)).fetchone())
        if row is None:
            raise NotInCatalog(f"no bag or captured URL {bag_or_url!r} in {self.root}")
        return self._record(row)

    def derived_from(self, name: str) -> list[BagRecord]:
        """Bags rebuilt from bag ``name``."""
        rows = self._run(lambda c: c.execute(
            f"SELECT {', '.join(_BAG_COLUMNS)} FROM bags WHERE derived_from = ? ORDER BY name",
            (name,)).fetchall())
        return [self._record(row) for row in rows]

    def search(self, query: str, limit: int = 20, rank_at_most: int = RANK_AT_MOST) -> list[SearchHit]:
        """Bags matching ``query`` (see ``fts_query``), best first, with a
        snippet; how they are ranked is said in ``search_hits``."""
        if limit < 1:
            raise UsageError("--limit must be at least 1")
        match = fts_query(query)
        try:
            return self._run(lambda c: search_hits(c, match, limit, rank_at_most))
        except sqlite3.OperationalError as exc:
            raise UsageError(f"cannot search for {query!r}: {exc} (put words in double quotes "
                             "to search for them as written)") from exc

    def history(self, url: str) -> list[HistoryEntry]:
        """Every capture (bag) and every unchanged re-check of ``url`` (as given
        or as finally redirected to), oldest first."""
        return self._run(lambda c: history_entries(c, url))
