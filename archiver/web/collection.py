"""Reading a collection for the web pages, and never writing to it.

- The catalogue (``.archiver/catalog.sqlite``) is opened with SQLite's
  ``mode=ro``: a request cannot change it. ``archiver serve`` opens it once
  the ordinary way at start (``open_catalog`` brings it up to date with the
  bags and the event log); after that, captures made while the server runs
  are indexed by the snapshot pipeline and seen here on the next request. A
  catalogue replaced by a rebuild is noticed by its inode and reopened.
- The event log is read incrementally (``EventIndex``): what a page needs of
  it (fixity checks, mirror copies, gone/unlisted sources) is kept in memory
  and only the lines appended since the last request are parsed.
- Bag files are reached only through ``bag_dir``: a name is accepted only if
  it looks like a bag folder name, is in the catalogue, and is a real folder
  directly under the root (not a symlink); files are then opened with
  ``LocalBag``, which refuses symlinks and any path that leaves the bag.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import stat
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.request import pathname2url

from archiver.bagit.reader import LocalBag
from archiver.clock import iso, utc_now
from archiver.collection.catalog import BagRecord, NotInCatalog, catalog_path
from archiver.collection.events import events_path
from archiver.collection.query import HistoryEntry, SearchHit, fts_query, history_entries, search_hits
from archiver.errors import StorageError, UsageError

BAG_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,250}$")
BAG_COLUMNS = ("name", "url", "final_url", "title", "subtitle", "author", "date", "source",
               "retrieved", "text_sha256", "payload_bytes", "payload_files", "derived_from")
MAX_TEXT_BYTES = 50 * 1024 * 1024


class BagUnavailable(StorageError):
    """A catalogued bag whose folder cannot be read safely (gone, a symlink, damaged)."""


@dataclass
class EventIndex:
    """What the pages need from the event log, kept up to date by ``refresh``.

    Lines are parsed as plain JSON objects, so event types this version does
    not know yet (``gone``, ``unlisted`` from sync) are kept too; a torn line
    is skipped (``archiver audit`` and ``read_events`` report those)."""

    path: Path
    offset: int = 0
    inode: int | None = None
    fixity: dict[str, list[dict]] = field(default_factory=dict)        # bag -> checks of this copy
    replication: dict[str, list[dict]] = field(default_factory=dict)   # bag -> mirror events
    targets: dict[str, dict] = field(default_factory=dict)             # target -> summary
    gone: dict[str, list[dict]] = field(default_factory=dict)          # url -> gone/unlisted events
    unchanged: int = 0
    captures: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def refresh(self) -> None:
        with self._lock:
            try:
                st = os.stat(self.path)
            except FileNotFoundError:
                return
            except OSError as exc:
                raise StorageError(f"cannot read event log {self.path}: {exc.strerror}") from exc
            if st.st_ino != self.inode or st.st_size < self.offset:
                self._reset(st.st_ino)
            if st.st_size == self.offset:
                return
            try:
                with open(self.path, "rb") as f:
                    f.seek(self.offset)
                    chunk = f.read(st.st_size - self.offset)
            except OSError as exc:
                raise StorageError(f"cannot read event log {self.path}: {exc.strerror}") from exc
            whole = chunk[: chunk.rfind(b"\n") + 1]
            self.offset += len(whole)
            for line in whole.split(b"\n"):
                if line.strip():
                    try:
                        event = json.loads(line)
                    except ValueError:
                        continue
                    if isinstance(event, dict) and isinstance(event.get("time"), str):
                        self._add(event)

    def _reset(self, inode: int) -> None:
        self.offset, self.inode = 0, inode
        self.fixity, self.replication, self.targets, self.gone = {}, {}, {}, {}
        self.unchanged = self.captures = 0

    def _add(self, event: dict) -> None:
        kind, bag, target = event.get("type"), event.get("bag"), event.get("target")
        raw_detail = event.get("detail")
        detail: dict[str, Any] = raw_detail if isinstance(raw_detail, dict) else {}
        if kind == "capture":
            if event.get("outcome") == "unchanged":
                self.unchanged += 1
            elif event.get("outcome") == "success":
                self.captures += 1
        elif kind == "fixity" and isinstance(bag, str) and not target:
            self.fixity.setdefault(bag, []).append(event)
        elif kind == "replication" and isinstance(bag, str) and isinstance(target, str):
            self.replication.setdefault(bag, []).append(event)
            summary = self.targets.setdefault(target, {"target": target, "bags": set(), "last_verified": None,
                                                      "last_event": None, "failures": 0})
            summary["last_event"] = max(summary["last_event"] or "", event["time"])
            if event.get("outcome") == "success":
                summary["bags"].add(bag)
                if detail.get("verified"):
                    summary["last_verified"] = max(summary["last_verified"] or "", event["time"])
            else:
                summary["failures"] += 1
        elif kind in ("gone", "unlisted"):
            url = detail.get("url") or bag
            if isinstance(url, str):
                self.gone.setdefault(url, []).append(event)

    def last_fixity(self, bag: str) -> dict | None:
        checks = self.fixity.get(bag)
        return checks[-1] if checks else None


class CollectionReader:
    """Read-only access to one collection for the web pages. Thread-safe:
    each thread gets its own read-only SQLite connection."""

    def __init__(self, root: Path, audit_window: timedelta = timedelta(days=90)) -> None:
        self.root = Path(root).absolute()
        self.audit_window = audit_window
        self.catalog = catalog_path(self.root)
        self.events = EventIndex(events_path(self.root))
        self._local = threading.local()
        self._cache: dict[Any, tuple[Any, Any]] = {}
        self._cache_lock = threading.Lock()

    def cached(self, key: Any, compute: Any, timed: bool = False) -> Any:
        """``compute()``, remembered until the catalogue file or the event log
        changes; ``timed`` values (which bags are due a check: the audit window
        moves with the clock) also when the hour turns."""
        self.events.refresh()
        try:
            st = os.stat(self.catalog)
        except OSError:
            return compute()
        state = (st.st_ino, st.st_mtime_ns, st.st_size, self.events.offset, self.events.inode,
                 iso(utc_now())[:13] if timed else None)
        with self._cache_lock:
            hit = self._cache.get(key)
            if hit is not None and hit[0] == state:
                return hit[1]
        value = compute()
        with self._cache_lock:
            if len(self._cache) > 1000:
                self._cache.clear()
            self._cache[key] = (state, value)
        return value

    # ----------------------------------------------------------------- catalogue

    def conn(self) -> sqlite3.Connection:
        try:
            inode = os.stat(self.catalog).st_ino
        except OSError as exc:
            raise StorageError(f"the collection {self.root} has no catalogue "
                               "(run `archiver catalog rebuild`)") from exc
        cached = getattr(self._local, "conn", None)
        if cached is not None and self._local.inode == inode:
            return cached
        if cached is not None:
            cached.close()
        uri = f"file:{pathname2url(str(self.catalog))}?mode=ro"
        conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        self._local.conn, self._local.inode = conn, inode
        return conn

    def close(self) -> None:
        cached = getattr(self._local, "conn", None)
        if cached is not None:
            cached.close()
            self._local.conn = None

    @staticmethod
    def record(row: sqlite3.Row) -> BagRecord:
        return BagRecord(**{column: row[column] for column in BAG_COLUMNS})

    def query(self, sql: str, params: tuple | list = ()) -> list[sqlite3.Row]:
        try:
            return self.conn().execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise StorageError(f"cannot read the catalogue {self.catalog}: {exc}") from exc

    def counts(self) -> dict[str, int]:
        return self.cached("counts", self._counts)

    def _counts(self) -> dict[str, int]:
        row = self.query("SELECT count(*) AS bags, count(DISTINCT url) AS sources, "
                         "sum(derived_from IS NULL) AS captures FROM bags")[0]
        unchanged = self.query("SELECT count(*) FROM capture_events WHERE outcome = 'unchanged'")[0][0]
        self.events.refresh()
        return {"sources": row["sources"] or 0, "bags": row["bags"] or 0, "captures": row["captures"] or 0,
                "unchanged": unchanged, "gone": len(self.events.gone)}

    def latest(self, limit: int) -> list[BagRecord]:
        cols = ", ".join(BAG_COLUMNS)
        return self.cached(("latest", limit), lambda: [self.record(r) for r in self.query(
            f"SELECT {cols} FROM bags ORDER BY retrieved DESC, name DESC LIMIT ?", (limit,))])

    def find(self, name: str) -> BagRecord:
        """The catalogue record of bag ``name``; NotInCatalog for anything else."""
        if not BAG_NAME.match(name or ""):
            raise NotInCatalog(f"{name!r} is not a bag name")
        rows = self.query(f"SELECT {', '.join(BAG_COLUMNS)} FROM bags WHERE name = ?", (name,))
        if not rows:
            raise NotInCatalog(f"no bag {name!r} in this collection")
        return self.record(rows[0])

    def captures_of(self, url: str) -> list[BagRecord]:
        cols = ", ".join(BAG_COLUMNS)
        return [self.record(r) for r in self.query(
            f"SELECT {cols} FROM bags WHERE url = ?1 OR final_url = ?1 ORDER BY retrieved, name", (url,))]

    def history(self, url: str) -> list[HistoryEntry]:
        try:
            return history_entries(self.conn(), url)
        except sqlite3.Error as exc:
            raise StorageError(f"cannot read the catalogue {self.catalog}: {exc}") from exc

    def search(self, text: str, limit: int) -> list[SearchHit]:
        match = fts_query(text)
        try:
            return search_hits(self.conn(), match, limit)
        except sqlite3.OperationalError as exc:
            raise UsageError(f"cannot search for {text!r}: {exc} (put words in double quotes "
                             "to search for them as written)") from exc

    def browse(self, site: str = "", author: str = "", since: str = "", until: str = "",
               status: str = "", offset: int = 0, limit: int = 50) -> tuple[int, list[dict]]:
        """Sources (one row per URL: its latest capture and how many bags it
        has), ordered by URL, filtered; (total, one page of rows). ``status``
        keeps sources with a bag in that fixity state (``ok``, ``failed``,
        ``due``) or that were recorded ``gone``."""
        where, params = self.browse_filter(site, author, since, until)
        if status:
            clause, extra = self.status_filter(status)
            where = f"{where} AND {clause}" if where else f"WHERE {clause}"
            params += extra
        total = self.cached(("browse-total", where, tuple(params)), lambda: self.query(
            f"SELECT count(DISTINCT url) FROM bags {where}", params)[0][0], timed=bool(status))
        # The page's URLs first (from the (url, retrieved) index alone when
        # unfiltered), then their rows: a deep page does not read every row before it.
        urls = [r[0] for r in self.query(f"SELECT DISTINCT url FROM bags {where} ORDER BY url LIMIT ? OFFSET ?",
                                         [*params, limit, offset])]
        cols = ", ".join(BAG_COLUMNS)
        rows = self.query(
            f"SELECT {cols}, max(retrieved) AS latest, count(*) AS bag_count FROM bags "
            f"WHERE url IN (SELECT value FROM json_each(?)) GROUP BY url ORDER BY url", [json.dumps(urls)])
        return total, [{"latest": self.record(r), "bags": r["bag_count"]} for r in rows]

    @staticmethod
    def browse_filter(site: str, author: str, since: str, until: str) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        if site:
            clauses.append("(url LIKE ? OR url LIKE ? OR url LIKE ? OR url LIKE ?)")
            host = site.strip().lower().removeprefix("https://").removeprefix("http://").strip("/")
            host = host.replace("%", "").replace("_", "")  # LIKE wildcards: a host has neither
            params += [f"{scheme}://{host}{end}%" for scheme in ("http", "https") for end in ("/", ":")]
        if author:
            clauses.append("author LIKE ?")
            params.append(f"%{author.strip()}%")
        if since:
            clauses.append("retrieved >= ?")
            params.append(since)
        if until:
            clauses.append("retrieved < ?")
            params.append(until + "\uffff")  # the whole of the last day
        return ("WHERE " + " AND ".join(clauses)) if clauses else "", params

    def status_filter(self, status: str) -> tuple[str, list[Any]]:
        self.events.refresh()
        if status == "gone":
            return "url IN (SELECT value FROM json_each(?))", [json.dumps(sorted(self.events.gone))]
        failed, fresh = self._fixity_sets()
        if status == "failed":
            return "name IN (SELECT value FROM json_each(?))", [json.dumps(failed)]
        if status == "ok":
            return "name IN (SELECT value FROM json_each(?))", [json.dumps(fresh)]
        if status == "due":
            return "name NOT IN (SELECT value FROM json_each(?))", [json.dumps(failed + fresh)]
        raise UsageError(f"unknown status {status!r} (one of ok, failed, due, gone)")

    def _fixity_sets(self, now: datetime | None = None) -> tuple[list[str], list[str]]:
        """(bags whose last check failed, bags with a good check within the audit window)."""
        cutoff = iso((now or utc_now()) - self.audit_window)
        failed, fresh = [], []
        for bag, checks in self.events.fixity.items():
            last = checks[-1]
            if last.get("outcome") != "success":
                failed.append(bag)
            elif last["time"] >= cutoff:
                fresh.append(bag)
        return failed, fresh

    # ----------------------------------------------------------------- health

    def health(self, names: list[str], now: datetime | None = None) -> dict[str, str]:
        """Fixity state of each named bag: ``ok`` (good check within the audit
        window), ``failed`` (its last check failed), ``due`` (never checked,
        or its last good check is older than the window)."""
        self.events.refresh()
        cutoff = iso((now or utc_now()) - self.audit_window)
        states = {}
        for name in names:
            last = self.events.last_fixity(name)
            if last is None:
                states[name] = "due"
            elif last.get("outcome") != "success":
                states[name] = "failed"
            else:
                states[name] = "ok" if last["time"] >= cutoff else "due"
        return states

    def attention(self, limit: int) -> dict[str, Any]:
        """Bags whose last fixity check failed, and bags due a check."""
        return self.cached(("attention", limit), lambda: self._attention(limit), timed=True)

    def _attention(self, limit: int, now: datetime | None = None) -> dict[str, Any]:
        self.events.refresh()
        known_failed, fresh = self._fixity_sets(now)
        failed = []
        for bag in known_failed:
            last = self.events.fixity[bag][-1]
            failed.append({"bag": bag, "time": last["time"], "outcome": last.get("outcome"),
                           "detail": last.get("detail") or {}})
        cols = ", ".join(BAG_COLUMNS)
        skip = set(fresh) | set(known_failed)
        checked = self.query("SELECT count(*) FROM bags WHERE name IN (SELECT value FROM json_each(?))",
                             (json.dumps(sorted(skip)),))[0][0]
        due_count = self.query("SELECT count(*) FROM bags")[0][0] - checked
        due: list[BagRecord] = []
        try:
            for row in self.conn().execute(f"SELECT {cols} FROM bags ORDER BY retrieved, name"):
                if len(due) >= limit:
                    break
                if row["name"] not in skip:
                    due.append(self.record(row))
        except sqlite3.Error as exc:
            raise StorageError(f"cannot read the catalogue {self.catalog}: {exc}") from exc
        failed.sort(key=lambda f: f["time"], reverse=True)
        return {"audit_window_days": self.audit_window.days, "failed": failed, "due_count": due_count,
                "due": due}

    def mirrors(self) -> list[dict[str, Any]]:
        self.events.refresh()
        return [{"target": t["target"], "bags": len(t["bags"]), "last_verified": t["last_verified"],
                 "last_event": t["last_event"], "failures": t["failures"]}
                for t in sorted(self.events.targets.values(), key=lambda t: t["target"])]

    # ----------------------------------------------------------------- bag files

    def bag_dir(self, name: str) -> LocalBag:
        """The bag folder of catalogued bag ``name``, checked to be a real folder
        directly under the root (never a symlink to somewhere else)."""
        self.find(name)
        path = self.root / name
        try:
            mode = os.lstat(path).st_mode
        except OSError as exc:
            raise BagUnavailable(f"bag {name} is catalogued but its folder cannot be read: "
                                 f"{exc.strerror}") from exc
        if not stat.S_ISDIR(mode):
            raise BagUnavailable(f"bag {name} is not a plain folder in the collection "
                                 "(a symbolic link is never followed)")
        return LocalBag(path)

    def read_file(self, name: str, relpath: str, max_bytes: int = MAX_TEXT_BYTES) -> bytes:
        bag = self.bag_dir(name)
        try:
            with bag.open(relpath) as f:
                data = f.read(max_bytes + 1)
        except FileNotFoundError as exc:
            raise BagUnavailable(f"bag {name} has no {relpath}") from exc
        except OSError as exc:
            raise BagUnavailable(f"cannot read {relpath} of bag {name}: {exc.strerror}") from exc
        if len(data) > max_bytes:
            raise BagUnavailable(f"{relpath} of bag {name} is larger than {max_bytes:,} bytes")
        return data

    def text(self, name: str) -> str:
        return self.read_file(name, "data/text.txt").decode("utf-8", errors="replace")

    def metadata(self, name: str) -> dict[str, Any]:
        try:
            value = json.loads(self.read_file(name, "data/metadata.json"))
        except ValueError as exc:
            raise BagUnavailable(f"data/metadata.json of bag {name} is not JSON") from exc
        return value if isinstance(value, dict) else {}

    def bag_info(self, name: str) -> list[tuple[str, str]]:
        """bag-info.txt as (label, value) pairs, continuation lines joined."""
        pairs: list[tuple[str, str]] = []
        for line in self.read_file(name, "bag-info.txt", 1 << 20).decode("utf-8", "replace").splitlines():
            if line[:1] in (" ", "\t") and pairs:
                pairs[-1] = (pairs[-1][0], pairs[-1][1] + " " + line.strip())
            elif ":" in line:
                label, _, value = line.partition(":")
                pairs.append((label.strip(), value.strip()))
        return pairs

    def files(self, name: str) -> list[dict[str, Any]]:
        """Every file of the bag with its size and the sha256 its manifest gives."""
        bag = self.bag_dir(name)
        digests: dict[str, str] = {}
        for manifest in ("manifest-sha256.txt", "tagmanifest-sha256.txt"):
            try:
                with bag.open(manifest) as f:
                    lines = f.read(8 << 20).decode("utf-8", "replace").splitlines()
            except (OSError, StorageError):
                continue
            for line in lines:
                digest, _, path = line.strip().partition(" ")
                if path:
                    digests[path.strip().lstrip("*")] = digest
        return [{"path": entry.path, "size": entry.size, "sha256": digests.get(entry.path),
                 "symlink": entry.is_symlink} for entry in bag.list_files()]


def parse_day(text: str) -> str:
    """A ``YYYY-MM-DD`` filter value, or UsageError."""
    text = (text or "").strip()
    if not text:
        return ""
    try:
        return datetime.strptime(text, "%Y-%m-%d").strftime("%Y-%m-%d")
    except ValueError as exc:
        raise UsageError(f"{text!r} is not a date like 2026-11-30") from exc


__all__ = ["BAG_NAME", "BagUnavailable", "CollectionReader", "EventIndex", "NotInCatalog", "parse_day"]
