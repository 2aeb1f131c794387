"""Writing a collection whose root is on S3: ``--root s3://bucket/prefix``.

S3 has no rename, so a bag is published in three steps, each a single PUT
(the agreed layout, all keys under ``<prefix>/``)::

    .archiver/claims/<bag>        1. the NAME CLAIM, created with If-None-Match: *
                                     (of two writers exactly one gets a name; the
                                     other takes the next free one, -2, -3…, as a
                                     local root does). Body {"owner", "expires"};
                                     its lease is renewed (If-Match) while uploading.
    <bag>/<path>                  2. the bag's files, payload first, each with its sha256
    .archiver/bags/<bag>.json     3. the COMPLETION MARKER, written last. Readers see a
                                     bag only once its marker (or a mirror receipt) exists.
    .archiver/events/<t>Z-<writer>-<seq>.json   one object per event, never rewritten

A claim whose lease has expired (or whose owner, on this host, is gone) and
whose bag has no marker is crash leftover: ``S3CollectionWriter.clean_leftovers``
takes the claim over (If-Match, so of two cleaners one wins and a stalled
writer's next renewal fails), deletes the bag's keys, then the claim. A claim
is never deleted once its bag is complete. A marker without a ``capture`` event
(a writer killed between the two) is logged as recovered, as for a local root.

The pipeline itself is unchanged: ``open_s3_collection`` gives a private local
*working root* bound to the S3 collection (``root.bind_remote``); bags are built
there, published by ``CaptureRecord.write`` through ``S3CollectionWriter.publish``, and
the working root is removed at the end. Leases compare clocks across hosts:
keep them in time (NTP).

    >>> with open_s3_collection("s3://library/texts", "http://127.0.0.1:8333") as root:
    ...     snapshot(["https://example.org/essay"], SnapshotOptions(root=root))
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import threading
import time
import uuid
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from archiver.clock import iso, utc_now
from archiver.durable import TMP_PREFIX, held_by_a_live_writer, make_temp_dir, release_temp_dir
from archiver.errors import StorageError, UsageError
from archiver.collection.s3root import cache_dir as cache_folder
from archiver.replication.lock import LEASE_SECONDS, S3Lock, _pid_gone, lease_expired
from archiver.replication.plan import send_order
from archiver.replication.s3 import S3Site, make_client
from archiver.replication.target import RECEIPTS_DIR

if TYPE_CHECKING:
    from archiver.collection.events import Event

CLAIMS_DIR = ".archiver/claims"
MARKERS_DIR = ".archiver/bags"
LEASE_ENV = "ARCHIVER_S3_LEASE"
MAX_NAME_TRIES = 10_000
_CHUNK = 1 << 20


def lease_seconds() -> float:
    """The claim lease: ``ARCHIVER_S3_LEASE`` seconds from the environment, else 120."""
    try:
        lease = float(os.environ.get(LEASE_ENV, LEASE_SECONDS))
    except ValueError:
        raise UsageError(f"{LEASE_ENV} must be a number of seconds") from None
    if not lease > 0:
        raise UsageError(f"{LEASE_ENV} must be a positive number of seconds")
    return lease


class BagClaim(S3Lock):
    """The claim of one bag name (``.archiver/claims/<bag>``): an S3 lock whose
    body is ``{"owner": "<host>:<pid>:<uuid4>", "expires": ...}``."""

    what = "bag name claim"

    def __init__(self, client: Any, bucket: str, prefix: str, name: str, lease: float) -> None:
        super().__init__(client, bucket, prefix, lease)
        self.name = name
        rel = f"{CLAIMS_DIR}/{name}"
        self.key = f"{prefix}/{rel}" if prefix else rel
        self.location = f"s3://{bucket}/{self.key}"
        self.owner_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4()}"

    def _body(self) -> bytes:
        return json.dumps({"owner": self.owner_id, "expires": self.owner["expires"]}).encode()

    def _is_mine(self, holder: dict[str, Any]) -> bool:
        return holder.get("owner") == self.owner_id

    def _stale(self, holder: dict[str, Any]) -> bool:
        host, _, rest = str(holder.get("owner", "")).rpartition(":")[0].rpartition(":")
        pid = int(rest) if rest.isdigit() else None
        return lease_expired(holder) or _pid_gone({"host": host, "pid": pid})

    def take(self) -> bool:
        """Create the claim if nobody holds the name; renew it from then on."""
        self.etag = self._put(IfNoneMatch="*")
        if self.etag:
            self.start_renewal()
        return bool(self.etag)

    def take_over(self) -> dict[str, Any] | None:
        """Take a stale (or missing) claim; the holder it replaced, or None if it is live."""
        holder, etag = self._holder()
        if etag is None:
            self.etag = self._put(IfNoneMatch="*")
            holder = {}
        elif self._stale(holder):
            self.etag = self._put(IfMatch=etag)
        else:
            return None
        if not self.etag:
            return None
        self.start_renewal()
        return holder

    def confirm(self) -> None:
        """Renew once, now, with If-Match (renewal paused): StorageError if no longer ours."""
        self.stop_renewal()
        self.ensure_held()
        self.owner["expires"] = iso(utc_now() + timedelta(seconds=self.lease))
        try:
            self._renew()
        except StorageError as exc:
            # Not provably ours any more: nothing of the bag may be deleted by us now
            # (a later run cleans it once the lease has expired).
            self.lost = str(exc)
            raise StorageError(f"the {self.what} {self.location} is no longer this run's ({exc}); "
                               "the bag was not published") from exc
        self.start_renewal()


class S3CollectionWriter:
    """The writer side of a collection root on S3 (``root.RemoteCollection``)."""

    def __init__(self, client: Any, url: str, working_root: Path, lease: float | None = None,
                 events_cache: Path | None = None) -> None:
        self.site = S3Site(client, url)
        self.client, self.bucket, self.prefix = client, self.site.bucket, self.site.prefix
        self.objects = self.site.objects
        self.location = self.site.location
        self.name = self.prefix.rsplit("/", 1)[-1] or self.bucket
        self.working_root = working_root
        self.lease = lease_seconds() if lease is None else lease
        self._held: dict[str, BagClaim] = {}
        self._complete: set[str] | None = None
        # Event objects already read (never rewritten, so never stale): this run's,
        # and those an earlier run on this machine kept in ``events_cache``.
        self.events_cache = events_cache
        self._events_read: dict[str, bytes] = _load_events_cache(events_cache)
        self._guard = threading.Lock()

    def _key(self, rel: str) -> str:
        return self.site._key(rel)

    def _claim_for(self, name: str) -> BagClaim:
        return BagClaim(self.client, self.bucket, self.prefix, name, self.lease)

    # ------------------------------------------------------------------ publishing a bag

    def publish(self, folder: Path, base: str) -> str:
        """Upload the complete bag built in ``folder`` under the first free name of
        ``base``, ``base-2``…; write its marker last; return the name. The claim stays
        renewed until ``release(name)``. On failure the bag's keys and the claim are
        removed (if still ours) and StorageError is raised."""
        files = {p.relative_to(folder).as_posix(): p.stat().st_size
                 for p in sorted(folder.rglob("*")) if p.is_file() and not p.is_symlink()}
        claim = self._take_free_name(base)
        try:
            for path in send_order(set(files)):
                claim.ensure_held()
                with open(folder / path, "rb") as stream:
                    self.site.put(claim.name, path, stream, files[path], _sha256(folder / path))
            marker = self._marker(claim.name, folder, files)
            claim.confirm()  # still ours, an instant before the bag becomes visible
            self.objects.put(self._key(f"{MARKERS_DIR}/{claim.name}.json"), marker, len(marker))
        except BaseException:
            self._withdraw(claim)
            raise
        with self._guard:
            self._held[claim.name] = claim
            if self._complete is not None:
                self._complete.add(claim.name)
        return claim.name

    def _take_free_name(self, base: str) -> BagClaim:
        for n in range(1, MAX_NAME_TRIES + 1):
            claim = self._claim_for(base if n == 1 else f"{base}-{n}")
            if not claim.take():
                continue
            if self.objects.list(self._key(claim.name + "/")):
                # A bag put there without a claim (a mirror target's): the name is taken;
                # our claim stays, to keep it so.
                claim.stop_renewal()
                continue
            return claim
        raise StorageError(f"no free bag name for {base} in {self.location} after {MAX_NAME_TRIES} tries")

    def _marker(self, name: str, folder: Path, files: dict[str, int]) -> bytes:
        from archiver.bagit.parse import parse_oxum
        from archiver.collection.record import BAG_INFO, METADATA, parse_bag_info

        info = parse_bag_info((folder / BAG_INFO).read_bytes()) if BAG_INFO in files else {}
        oxum = parse_oxum(info.get("Payload-Oxum", ""))
        try:
            metadata = json.loads((folder / METADATA).read_bytes()) if METADATA in files else None
        except ValueError:
            metadata = None
        tagmanifest = "tagmanifest-sha512.txt"
        record = {"bag": name, "completed": iso(utc_now()),
                  "payload_oxum": f"{oxum[0]}.{oxum[1]}" if oxum else None,
                  "tagmanifest_sha512": _digest(folder / tagmanifest, "sha512") if tagmanifest in files else None,
                  "files": files, "metadata": metadata if isinstance(metadata, dict) else None}
        return (json.dumps(record, ensure_ascii=False, indent=1, sort_keys=True) + "\n").encode("utf-8")

    def _withdraw(self, claim: BagClaim) -> None:
        """Undo a publication that failed: our keys, then our claim (never another's)."""
        claim.stop_renewal()
        if claim.lost:
            return
        try:
            for key in self.objects.list(self._key(claim.name + "/")):
                self.objects.delete(key)
        except StorageError:
            return  # left for a later run's clean-up, once the lease expires
        claim.release()

    def release(self, name: str) -> None:
        """The bag's capture event is logged: stop renewing its claim, drop the local copy."""
        with self._guard:
            claim = self._held.pop(name, None)
        if claim is not None:
            claim.stop_renewal()
        shutil.rmtree(self.working_root / name, ignore_errors=True)

    def release_all(self) -> None:
        for name in list(self._held):
            self.release(name)

    # ------------------------------------------------------------------ events and bags

    def append_events(self, events: "list[Event]") -> None:
        self.site.log_events(events)

    def read_event_lines(self) -> bytes:
        before = set(self._events_read)
        lines = self.site.read_event_log(self._events_read)
        _extend_events_cache(self.events_cache, {k: v for k, v in self._events_read.items() if k not in before})
        return lines

    def complete_bags(self) -> set[str]:
        """Names of the bags readers see: a marker or a mirror receipt."""
        with self._guard:
            if self._complete is not None:
                return set(self._complete)
        found = set()
        for folder in (MARKERS_DIR, RECEIPTS_DIR):
            base = self._key(folder + "/")
            found |= {k[len(base):-5] for k in self.objects.list(base) if k.endswith(".json")}
        with self._guard:
            self._complete = found
        return set(found)

    def has_bag(self, name: str) -> bool:
        return name in self.complete_bags()

    def _has_marker(self, name: str) -> bool:
        return self.objects.get_bytes(self._key(f"{MARKERS_DIR}/{name}.json")) is not None

    # ------------------------------------------------------------------ after a crash

    def clean_leftovers(self) -> list[str]:
        """Remove bags a crashed writer left unfinished (claim stale, no marker); return them."""
        base = self._key(CLAIMS_DIR + "/")
        complete = self.complete_bags()
        removed = []
        for key in sorted(self.objects.list(base)):
            name = key[len(base):]
            if not name or "/" in name or name in complete:
                continue
            claim = self._claim_for(name)
            if claim.take_over() is None:
                continue  # a live writer's
            if self._has_marker(name):
                claim.stop_renewal()  # completed after we listed: the claim stays
                continue
            self._withdraw(claim)
            removed.append(name)
        return removed

    def record_unlogged_bags(self) -> list[str]:
        """Log a recovered ``capture`` event for each bag with a marker but no
        capture event whose writer is gone (its claim is stale)."""
        from archiver.collection.capture_log import log_captured
        from archiver.collection.events import read_events
        from archiver.collection.record import CaptureRecord
        from archiver.collection.recovery import RECOVERED_NOTE

        def recorded() -> set[str]:
            return {e.bag for e in read_events(self.working_root).events if e.type == "capture" and e.bag}

        base = self._key(MARKERS_DIR + "/")
        markers = {k[len(base):-5] for k in self.objects.list(base) if k.endswith(".json")}
        unlogged = sorted(markers - recorded())
        logged = []
        for name in unlogged:
            claim = self._claim_for(name)
            if claim.take_over() is None:
                continue  # its writer lives and logs it
            try:
                if name in recorded():  # logged just before its writer ended
                    continue
                marker = json.loads(self.objects.get_bytes(self._key(f"{MARKERS_DIR}/{name}.json")) or b"{}")
                metadata = marker.get("metadata") if isinstance(marker, dict) else None
                if not isinstance(metadata, dict) or not metadata.get("url"):
                    continue
                log_captured(self.working_root, name, CaptureRecord(metadata, b""), recovered=RECOVERED_NOTE)
                logged.append(name)
            except ValueError:
                continue
            finally:
                claim.stop_renewal()
        return logged


def _load_events_cache(path: Path | None) -> dict[str, bytes]:
    """Event objects a run on this machine read before (a torn or foreign line is skipped)."""
    found: dict[str, bytes] = {}
    if path is None:
        return found
    try:
        raw = path.read_bytes()
    except OSError:
        return found
    for line in raw.splitlines():
        try:
            record = json.loads(line)
            found[str(record["key"])] = str(record["body"]).encode("utf-8")
        except (ValueError, KeyError, TypeError):
            continue
    return found


def _extend_events_cache(path: Path | None, new: dict[str, bytes]) -> None:
    """Append event objects to the local cache: one write of whole lines (O_APPEND),
    so runs on one machine never interleave inside a line. A cache that cannot be
    written is only slower next time."""
    if path is None or not new:
        return
    lines = []
    for key, body in new.items():
        try:
            lines.append(json.dumps({"key": key, "body": body.decode("utf-8")}).encode() + b"\n")
        except UnicodeDecodeError:
            continue  # not an event of archiver's: read from the store each time
    data = b"".join(lines)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
    except OSError:
        pass


def _sha256(path: Path) -> str:
    return _digest(path, "sha256")


def _digest(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


WORKING_ROOT_GRACE = 60.0  # seconds a new working root is left alone (created, not yet flocked)


def _remove_dead_working_roots(work: Path) -> None:
    """Remove working roots of runs that were killed: not held by a live process,
    and older than a minute (a run holds its own from a moment after creating it)."""
    for entry in work.iterdir():
        if not entry.name.startswith(TMP_PREFIX) or entry.is_symlink() or not entry.is_dir():
            continue
        try:
            young = time.time() - entry.stat().st_mtime < WORKING_ROOT_GRACE
        except FileNotFoundError:
            continue
        if not young and not held_by_a_live_writer(entry):
            shutil.rmtree(entry, ignore_errors=True)


@contextmanager
def open_s3_collection(url: str, endpoint_url: str | None = None, lease: float | None = None) -> Iterator[Path]:
    """A private local working root bound to the S3 collection at ``url``, for the
    capture pipeline; crash leftovers at ``url`` are cleaned first. StorageError /
    TargetUnreachable (exit 3) when the bucket cannot be reached."""
    from archiver.collection.root import bind_remote

    client = make_client(endpoint_url)
    site = S3Site(client, url)
    site.check_reachable()
    work = cache_folder(endpoint_url, site.bucket, site.prefix) / "work"
    try:
        work.mkdir(parents=True, exist_ok=True)
        _remove_dead_working_roots(work)
        working = make_temp_dir(work, "run")
    except OSError as exc:
        raise StorageError(f"cannot create a working folder in {work}: {exc.strerror or exc}") from exc
    collection = S3CollectionWriter(client, url, working, lease, events_cache=work.parent / "events-read.jsonl")
    bind_remote(working, collection)
    try:
        collection.clean_leftovers()
        yield working
    finally:
        bind_remote(working, None)
        collection.release_all()
        shutil.rmtree(working, ignore_errors=True)
        release_temp_dir(working)


__all__ = ["BagClaim", "S3CollectionWriter", "open_s3_collection", "cache_folder", "lease_seconds"]
