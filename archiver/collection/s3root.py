"""A collection root on S3 (``s3://bucket/prefix``) as its readers see it.

The layout (agreed with the writer side, ``s3store.py``) under ``<prefix>/``::

    <bag>/<path>                          the bag's files, byte-identical to a local bag
    .archiver/claims/<bag>                a writer's claim on the name (the writer's business)
    .archiver/bags/<bag>.json             completion marker, written last
    .archiver/receipts/<bag>.json         a mirror receipt (an S3 mirror target is a collection too)
    .archiver/events/<time>Z-<writer>-<seq>.json   one event per object, never rewritten
    .archiver/events.jsonl                the legacy single-object log: read, never written

What readers may rely on:

- **Complete bags only.** A bag is part of the collection when its completion
  marker or a mirror receipt exists; keys of a bag with neither (being
  uploaded, or left by a crash) are invisible to every verb.
- **Events are merged**, never lost: every per-event object plus every line of
  the legacy log, sorted by (event time, key). An event that turns up late
  with an older time (a slow writer) is read like any other.
- **The catalogue is a local cache** (``S3CatalogSource``): a SQLite file under
  ``$XDG_CACHE_HOME/archiver/s3/<hash>/`` built by the same code as a local
  root's catalogue (``catalog_build``), brought up to date on every open from
  the markers and the event objects it has not seen yet (it remembers the keys
  it has read, not a position). It holds nothing authoritative: delete it and
  the next open rebuilds the same answers from S3 alone. It also keeps each
  event object's line as read (objects are never rewritten), so ``audit`` and
  ``mirror`` read the log through it (``cached_event_log``) with one GET per
  *new* event object, not one per event.

    >>> collection = S3Collection("s3://library/texts", endpoint_url="http://127.0.0.1:8333")
    >>> collection.complete_bags()
    ['essay-20261125T093000Z']
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator

from archiver.clock import parse_iso, utc_now
from archiver.collection.catalog_build import (BagRecord, catalog_file, connect, insert_bag, insert_event_rows,
                                               read_bag_record_from)
from archiver.collection.events import Event
from archiver.errors import StorageError
from archiver.replication.s3events import EventObjectNames
from archiver.replication.s3 import (S3Bag, S3Objects, S3Site, _client_errors, _is_missing, find_s3_bags, make_client,
                                     parse_s3_url)
from archiver.replication.target import EVENTS_FILE, RECEIPTS_DIR

MARKERS_DIR = ".archiver/bags"
CLAIMS_DIR = ".archiver/claims"
EVENTS_DIR = ".archiver/events"
READERS = 8  # objects read at once when catching up (markers' bags, event objects)
_LATEST = datetime.max.replace(tzinfo=timezone.utc)


def is_bag_name(name: str) -> bool:
    """A name a bag of the collection can have (one key segment, not hidden)."""
    return bool(name) and "/" not in name and not name.startswith(".")


def endpoint_from_env(endpoint_url: str | None) -> str | None:
    """The endpoint boto3 will use: the option, else AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL."""
    return endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


@dataclass(frozen=True)
class LoggedEvent:
    """One event as read from S3, with the key it sorts by (for a legacy line,
    ``.archiver/events.jsonl#<line number>``)."""

    key: str
    event: Event
    line: bytes  # exactly as stored (no newline)


@dataclass
class S3EventLog:
    events: list[LoggedEvent] = field(default_factory=list)
    torn: list[str] = field(default_factory=list)  # keys (or legacy lines) that are not whole events

    def sort(self) -> None:
        self.events.sort(key=lambda logged: (_when(logged.event.time), logged.key))

    def merged(self) -> "S3EventLog":
        """Sorted by (time, key), each event once (the first key that holds it)."""
        self.sort()
        seen: set[str] = set()
        events = []
        for logged in self.events:
            if logged.event.id not in seen:
                seen.add(logged.event.id)
                events.append(logged)
        return S3EventLog(events, sorted(self.torn))

    def add(self, key: str, line: bytes) -> None:
        """One stored event (an object's body, a legacy line): an event, or torn."""
        event = _parse_event(line)
        if event is None or b"\n" in line:
            self.torn.append(key)
        else:
            self.events.append(LoggedEvent(key, event, line))


def _when(text: str) -> datetime:
    try:
        return parse_iso(text)
    except (ValueError, TypeError):
        return _LATEST  # an unreadable time sorts last, by key


def _parse_event(data: bytes) -> Event | None:
    try:
        record = json.loads(data)
        return Event.from_dict(record) if isinstance(record, dict) else None
    except (ValueError, KeyError, TypeError):
        return None


# --------------------------------------------------------------------------- writing events (spec format)

_EVENT_NAMES = EventObjectNames()  # this process's writer id and sequence (a forked child gets its own)


def event_object_name() -> str:
    """``.archiver/events/<YYYYMMDDTHHMMSS.ffffff>Z-<writer>-<seq:06d>.json``."""
    return f"{EVENTS_DIR}/{_EVENT_NAMES.next_name()}"


# --------------------------------------------------------------------------- the collection

class S3Collection:
    """The collection at ``s3://bucket/prefix``, read side (and its event objects)."""

    def __init__(self, url: str, endpoint_url: str | None = None, client: Any = None,
                 checksum_when_required: bool = True) -> None:
        self.bucket, self.prefix = parse_s3_url(url)
        self.endpoint_url = endpoint_from_env(endpoint_url)
        self.client = client or make_client(endpoint_url, checksum_when_required)
        self.objects = S3Objects(self.client, self.bucket)
        self.location = f"s3://{self.bucket}/{self.prefix}".rstrip("/")

    def key(self, rel: str) -> str:
        return f"{self.prefix}/{rel}" if self.prefix else rel

    def site(self) -> S3Site:
        """The same place as a replication site (mirror target, repair side)."""
        return S3Site(self.client, self.location)

    def check_readable(self) -> None:
        """StorageError/TargetUnreachable (exit 3) when the bucket cannot be reached."""
        self.site().check_readable()

    # -- bags ----------------------------------------------------------------------------
    def _json_names(self, folder: str) -> set[str]:
        base = self.key(folder + "/")
        return {key[len(base):-5] for key in self.objects.list(base)
                if key.endswith(".json") and is_bag_name(key[len(base):-5])}

    def complete_bags(self) -> list[str]:
        """Every bag with a completion marker or a mirror receipt, sorted."""
        return sorted(self._json_names(MARKERS_DIR) | self._json_names(RECEIPTS_DIR))

    def is_complete(self, name: str) -> bool:
        return is_bag_name(name) and any(self._exists(self.key(f"{folder}/{name}.json"))
                                         for folder in (MARKERS_DIR, RECEIPTS_DIR))

    def _exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
            return True
        except _client_errors() as exc:
            if _is_missing(exc):
                return False
            raise StorageError(f"cannot read {self.objects.url(key)}: {exc}") from exc

    def reader(self, name: str) -> S3Bag:
        return S3Bag(self.client, self.bucket, self.key(name))

    def is_collection(self) -> bool:
        """True when anything of archiver's is under ``<prefix>/.archiver/`` (then
        only complete bags are visible; a prefix of bare bags is not a collection)."""
        try:
            listed = self.client.list_objects_v2(Bucket=self.bucket, Prefix=self.key(".archiver/"), MaxKeys=1)
        except _client_errors() as exc:
            raise StorageError(f"cannot list {self.location}: {exc}") from exc
        return bool(listed.get("Contents"))

    def in_progress(self) -> set[str]:
        """Bags a writer has claimed, whose lease has not expired, and that are not
        complete yet: being written now, so neither present nor missing."""
        base = self.key(CLAIMS_DIR + "/")
        claimed = {key[len(base):] for key in self.objects.list(base) if is_bag_name(key[len(base):])}
        complete = set(self.complete_bags())
        live = set()
        for name in sorted(claimed - complete):
            try:
                claim = json.loads(self.objects.get_bytes(base + name) or b"{}")
                if isinstance(claim, dict) and _when(str(claim.get("expires", ""))) > utc_now():
                    live.add(name)
            except ValueError:
                continue
        return live

    # -- events ----------------------------------------------------------------------------
    def event_keys(self) -> list[str]:
        """Keys (relative to the root) of every per-event object."""
        base = self.key("")
        return sorted(key[len(base):] for key in self.objects.list(self.key(EVENTS_DIR + "/"))
                      if key.endswith(".json"))

    def read_event_objects(self, keys: Iterable[str]) -> S3EventLog:
        """The per-event objects ``keys`` (relative), read a few at a time."""
        log = S3EventLog()
        keys = list(keys)
        with ThreadPoolExecutor(max_workers=READERS) as pool:
            bodies = list(pool.map(lambda k: self.objects.get_bytes(self.key(k)), keys))
        for key, body in zip(keys, bodies):
            if body is not None:  # None: deleted since listed
                log.add(key, body.rstrip(b"\n"))
        return log

    def legacy_log(self) -> tuple[bytes, str]:
        """The legacy ``events.jsonl`` object's bytes and ETag (b"", "" when absent)."""
        key = self.key(EVENTS_FILE)
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=key)
            return response["Body"].read(), str(response.get("ETag", ""))
        except _client_errors() as exc:
            if _is_missing(exc):
                return b"", ""
            raise StorageError(f"cannot read {self.objects.url(key)}: {exc}") from exc

    @staticmethod
    def legacy_events(data: bytes) -> S3EventLog:
        log = S3EventLog()
        for number, line in enumerate(data.split(b"\n"), start=1):
            if line.strip():
                log.add(f"{EVENTS_FILE}#{number:09d}", line)
        return log

    def read_events(self) -> S3EventLog:
        """Every event of the collection, merged and sorted by (time, key); an
        event held both as an object and as a legacy line is given once."""
        objects = self.read_event_objects(self.event_keys())
        legacy = self.legacy_events(self.legacy_log()[0])
        return S3EventLog(objects.events + legacy.events, objects.torn + legacy.torn).merged()

    def log_events(self, events: Iterable[Event]) -> None:
        """Store each event as an object of its own (never a shared object rewritten)."""
        for event in events:
            data = (event.to_json() + "\n").encode("utf-8")
            self.objects.put(self.key(event_object_name()), data, len(data))


def verifiable_bags(client: Any, url: str) -> tuple[list[S3Bag], list[str]]:
    """What ``verify s3://…`` reads: the bag at ``url`` if it is one, else every
    bag under it; inside a collection (anything under ``.archiver/``) only complete
    bags, every one of them (a complete bag that lost its bagit.txt too). Second:
    the names of bags left out for want of a marker or receipt."""
    bucket, prefix = parse_s3_url(url)
    bags = find_s3_bags(client, url)
    if len(bags) == 1 and bags[0].prefix == prefix:  # the location is one bag
        parent, _, name = prefix.rpartition("/")
        home = S3Collection(f"s3://{bucket}/{parent}", client=client)
        if home.is_collection() and not home.is_complete(name):
            return [], [bags[0].location]
        return bags, []
    collection = S3Collection(url, client=client)
    if not collection.is_collection():
        return bags, []
    complete = collection.complete_bags()
    found = {bag.prefix.rsplit("/", 1)[-1] for bag in bags}
    return ([collection.reader(name) for name in complete],
            [collection.reader(name).location for name in sorted(found - set(complete))])


def visible_bag_names(client: Any, url: str, listed: list[str]) -> list[str]:
    """``listed`` (bag folders found at a site) as a reader may see them: in a
    collection that has completion markers, only its complete bags (a bag being
    uploaded, or left by a crash, is never touched); elsewhere (a mirror target
    that keeps only receipts) as listed."""
    collection = S3Collection(url, client=client)
    if not collection.objects.list(collection.key(MARKERS_DIR + "/")):
        return listed
    return collection.complete_bags()


def put_event_objects(client: Any, bucket: str, prefix: str, events: Iterable[Event]) -> None:
    """``S3Collection.log_events`` for a site that knows only its client, bucket and prefix."""
    collection = S3Collection(f"s3://{bucket}/{prefix}", client=client)
    collection.log_events(events)


# --------------------------------------------------------------------------- the catalogue cache

def cache_dir(endpoint_url: str | None, bucket: str, prefix: str) -> Path:
    """The local cache of an S3 collection (nothing in it is authoritative):
    ``$XDG_CACHE_HOME/archiver/s3/<16 hex of sha256("<endpoint or aws>|<bucket>|<prefix>")>/``
    (``~/.cache`` when XDG_CACHE_HOME is unset or not absolute)."""
    endpoint = endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or "aws"
    digest = hashlib.sha256(f"{endpoint}|{bucket}|{prefix}".encode("utf-8")).hexdigest()[:16]
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "archiver" / "s3" / digest


# Every event object (and legacy line) read so far, as stored: the keys say what is
# new on the next open; the lines let audit and mirror read the log without a GET each.
_SEEN_TABLE = ("CREATE TABLE IF NOT EXISTS s3_seen (key TEXT PRIMARY KEY, event_id TEXT, line BLOB) "
               "WITHOUT ROWID")


class S3CatalogSource:
    """``catalog_build.CatalogSource`` for an S3 collection: rows from the
    complete bags and the merged events, the file in the local cache folder."""

    def __init__(self, collection: S3Collection, meta: Path | None = None) -> None:
        self.collection = collection
        self.location = collection.location
        self.meta = meta or cache_dir(collection.endpoint_url, collection.bucket, collection.prefix)

    def bag_names(self) -> list[str]:
        return self.collection.complete_bags()

    def records(self, names: list[str]) -> Iterator[BagRecord]:
        def read(name: str) -> BagRecord:
            return read_bag_record_from(self.collection.reader(name), name)

        with ThreadPoolExecutor(max_workers=READERS) as pool:
            yield from pool.map(read, names)

    def import_new(self, conn: sqlite3.Connection) -> int:
        conn.execute(_SEEN_TABLE)
        self._sync_bags(conn)
        return self._import_events(conn)

    def _sync_bags(self, conn: sqlite3.Connection) -> None:
        """Index bags completed since the last open; drop bags no longer complete;
        read damaged ones again (on S3 a read can fail for a moment: a cache must
        not keep a passing error as the bag's state)."""
        complete = set(self.bag_names())
        known = {row[0]: row[1] for row in conn.execute("SELECT name, id FROM bags")}
        damaged = {row[0] for row in conn.execute("SELECT name FROM bags WHERE damaged IS NOT NULL")}
        for name in sorted(set(known) - complete):
            conn.execute("DELETE FROM bag_text WHERE rowid = ?", (known[name],))
            conn.execute("DELETE FROM bags WHERE id = ?", (known[name],))
        for record in self.records(sorted((complete - set(known)) | (damaged & complete))):
            insert_bag(conn, record)

    def _import_events(self, conn: sqlite3.Connection) -> int:
        """Read every event object (and legacy line) not seen before, whatever
        its time; add their rows; keep the log's order (time, key) in ``seq``."""
        seen = {row[0] for row in conn.execute("SELECT key FROM s3_seen")}
        log = self.collection.read_event_objects(k for k in self.collection.event_keys() if k not in seen)
        etag_row = conn.execute("SELECT value FROM state WHERE key = 's3_legacy_etag'").fetchone()
        data, etag = self.collection.legacy_log()
        if data and (not etag or etag != (etag_row[0] if etag_row else "")):  # no ETag: read it again
            legacy = self.collection.legacy_events(data)
            log.events += [item for item in legacy.events if item.key not in seen]
            log.torn += [key for key in legacy.torn if key not in seen]
            conn.execute("INSERT OR REPLACE INTO state VALUES ('s3_legacy_etag', ?)", (etag,))
        log.sort()
        conn.executemany("INSERT OR IGNORE INTO s3_seen VALUES (?, ?, ?)",
                         [(item.key, item.event.id, item.line) for item in log.events]
                         + [(key, None, None) for key in log.torn])
        before = conn.execute("SELECT count(*) FROM capture_events").fetchone()[0]
        rows = insert_event_rows(conn, (item.event for item in log.events))
        if rows and before:
            _renumber(conn)
        return sum(row[1] == "unchanged" for row in rows)


def _renumber(conn: sqlite3.Connection) -> None:
    """Number ``capture_events.seq`` in log order, (time, key): an event read
    late takes its place among the others, as a fresh build would put it."""
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS s3_order (event_id TEXT PRIMARY KEY, n INTEGER)")
    conn.execute("DELETE FROM s3_order")
    conn.execute("INSERT INTO s3_order SELECT event_id, row_number() OVER (ORDER BY time, k, event_id) FROM "
                 "(SELECT c.event_id, c.time, min(s.key) AS k FROM capture_events c "
                 "LEFT JOIN s3_seen s ON s.event_id = c.event_id GROUP BY c.event_id)")
    conn.execute("UPDATE capture_events SET seq = -seq")
    conn.execute("UPDATE capture_events SET seq = (SELECT n FROM s3_order o WHERE o.event_id = capture_events.event_id)")


def cached_event_log(collection: S3Collection) -> S3EventLog:
    """``S3Collection.read_events`` through the local cache: the cache is brought up
    to date (reading only objects it has not seen), then the log is read from it.
    Event objects are never rewritten, so a copy read once stays true; a torn
    object is reported by key. StorageError (exit 3) when S3 cannot be read."""
    source = S3CatalogSource(collection)
    open_s3_catalog(collection, source=source).close()
    conn = connect(catalog_file(source))
    try:
        rows = conn.execute("SELECT key, line FROM s3_seen").fetchall()
    except sqlite3.Error as exc:
        raise StorageError(f"cannot read the event cache {catalog_file(source)}: {exc}") from exc
    finally:
        conn.close()
    log = S3EventLog()
    for key, line in rows:
        if line is None:
            log.torn.append(key)
        else:
            log.add(key, bytes(line))
    return log.merged()


def open_s3_catalog(collection: S3Collection, on_progress: Any = None,
                    source: "S3CatalogSource | None" = None) -> Any:
    """The collection's catalogue, brought up to date (``catalog.open_catalog``
    on an ``S3CatalogSource``). StorageError (exit 3) when S3 cannot be read:
    never an answer from a stale cache."""
    from archiver.collection.catalog import open_catalog

    collection.check_readable()
    return open_catalog(source or S3CatalogSource(collection), on_progress)
