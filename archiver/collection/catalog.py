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

import sqlite3
from pathlib import Path
from typing import Callable, TypeVar

from archiver.collection.catalog_build import (
    _BAG_COLUMNS, CATALOG_NAME, RANK, SCHEMA_VERSION, BagRecord, CatalogSource, LocalSource, OnProgress,
    RebuildReport, as_source, build_catalog, catalog_file, catalog_path, connect, import_events, insert_bag,
    read_bag_record, rebuild_catalog, rebuild_lock, rebuild_locked, write_lock)
from archiver.collection.query import RANK_AT_MOST, HistoryEntry, SearchHit, fts_query, history_entries, search_hits
from archiver.errors import ArchiverError, StorageError, UsageError

_CORRUPT_CODES = {11, 26}  # SQLITE_CORRUPT, SQLITE_NOTADB
T = TypeVar("T")
__all__ = ["CATALOG_NAME", "RANK", "SCHEMA_VERSION", "BagRecord", "Catalog", "CatalogSource", "HistoryEntry",
           "LocalSource", "NotInCatalog",
           "RebuildReport", "SearchHit", "build_catalog", "catalog_add_bag", "catalog_path", "fts_query",
           "open_catalog", "read_bag_record", "rebuild_catalog"]


class NotInCatalog(ArchiverError):
    """The bag or URL asked for is in no bag of the collection (exit 1)."""

    exit_code = 1



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
        conn = connect(path)
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        finally:
            conn.close()
    except sqlite3.Error:
        return False
    return version == SCHEMA_VERSION and {"bags", "capture_events", "state", "bag_text"} <= tables


def _ensure_usable(root: "Path | CatalogSource", on_progress: OnProgress | None = None) -> None:
    source = as_source(root)
    path = catalog_file(source)
    if _usable(path):
        return
    with rebuild_lock(source):
        if not _usable(path):  # another process may have rebuilt it while we waited
            rebuild_locked(source, on_progress)


def open_catalog(root: "Path | CatalogSource", on_progress: OnProgress | None = None) -> "Catalog":
    """Open the catalogue of the collection at ``root`` (a local root, or a
    ``CatalogSource`` such as an S3 collection's), rebuilding it first when
    it is missing, of an older schema, or unreadable; import new events."""
    if isinstance(root, (str, Path)) and not Path(root).is_dir():
        raise StorageError(f"collection root {root} does not exist")
    source = as_source(root)
    _ensure_usable(source, on_progress)
    catalog = Catalog(source)
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
            with write_lock(root):
                conn = connect(catalog_path(root))
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    insert_bag(conn, record)
                    import_events(conn, root)
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

    def __init__(self, root: "Path | CatalogSource") -> None:
        self.source = as_source(root)
        self.root = self.source.location  # as messages name the collection
        self.path = catalog_file(self.source)
        self._conn = connect(self.path)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> "Catalog":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self, query: Callable[[sqlite3.Connection], T]) -> T:
        try:
            return query(self._conn)
        except sqlite3.Error as exc:
            if not _is_corruption(exc):
                raise
            self._conn.close()
            rebuild_catalog(self.source)
            self._conn = connect(self.path)
            return query(self._conn)

    def sync_events(self) -> int:
        """Import capture events appended since the last import."""
        def sync(conn: sqlite3.Connection) -> int:
            with write_lock(self.source):
                conn.execute("BEGIN IMMEDIATE")
                try:
                    added = self.source.import_new(conn)
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
                return added
        try:
            return self._run(sync)
        except (sqlite3.OperationalError, StorageError):
            if not isinstance(self.source, LocalSource):
                raise  # a remote collection that cannot be read: never answer from a stale cache
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
