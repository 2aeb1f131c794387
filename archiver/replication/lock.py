"""One mirror at a time per target: a lock with an owner and a lease.

    with lock_target(target, wait=0):      # raises MirrorLocked (exit 3) if held
        ...mirror...

The lock is ``.archiver/mirror.lock`` at the target. It names its owner
(host, pid, run id) and a lease (``expires``), renewed by a background thread
every third of the lease while the run lasts. A lock is *stale*, and is taken
over with a warning, when its lease has expired, or when its owner is on this
host and is gone (directory: nobody holds its ``flock``; both kinds: the pid
no longer exists).

Directory targets: the lock file is created with ``O_CREAT|O_EXCL`` and the
owner holds an ``flock`` on it for the whole run; a takeover first takes that
flock and checks the file is still the stale one, so two takers cannot both
win. S3 targets: the lock object is created with a conditional PUT
(``If-None-Match: *``), renewed and taken over with ``If-Match: <ETag>``, so
of two writers exactly one succeeds. Leases compare the owner's clock with
the reader's: hosts must keep their clocks roughly in time (NTP).
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import socket
import threading
import time
import uuid
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable, Iterator

from archiver.clock import iso, parse_iso, utc_now
from archiver.errors import StorageError, UsageError

LOCK_FILE = ".archiver/mirror.lock"
LEASE_SECONDS = 120.0
POLL_SECONDS = 0.5
UNFINISHED_GRACE = 10.0  # seconds an empty lock file is left to its creator
log = logging.getLogger(__name__)


class MirrorLocked(StorageError):
    """Another live run holds the target's mirror lock (exit 3)."""


def new_owner(lease: float) -> dict[str, Any]:
    return {"host": socket.gethostname(), "pid": os.getpid(), "run_id": uuid.uuid4().hex,
            "acquired": iso(utc_now()), "expires": iso(utc_now() + timedelta(seconds=lease)),
            "lease_seconds": lease}


def describe(owner: dict[str, Any]) -> str:
    return (f"host {owner.get('host')}, pid {owner.get('pid')}, run {owner.get('run_id')}, "
            f"lease until {owner.get('expires')}")


def _pid_gone(owner: dict[str, Any]) -> bool:
    if owner.get("host") != socket.gethostname() or not isinstance(owner.get("pid"), int):
        return False
    try:
        os.kill(owner["pid"], 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


def lease_expired(owner: dict[str, Any]) -> bool:
    try:
        return parse_iso(str(owner["expires"])) < utc_now()
    except (KeyError, ValueError):
        return False  # unreadable: judged by the other signs


class _Lock:
    """What both kinds share: the owner record, the renewal thread, waiting."""

    location = ""
    what = "mirror lock"  # how messages name it (a bag-name claim reuses the S3 kind)

    def __init__(self, lease: float) -> None:
        self.lease = lease
        self.owner = new_owner(lease)
        self.lost: str | None = None
        self.took_over: dict[str, Any] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # subclasses: _try_acquire() -> holder dict[str, Any] | None (None: acquired), _renew(), _release()
    def _try_acquire(self) -> dict[str, Any] | None:
        raise NotImplementedError

    def _renew(self) -> None:
        raise NotImplementedError

    def _release(self) -> None:
        raise NotImplementedError

    def acquire(self, wait: float = 0.0, on_wait: Callable[[dict[str, Any]], None] | None = None) -> None:
        deadline = time.monotonic() + max(0.0, wait)
        told = False
        while True:
            holder = self._try_acquire()
            if holder is None:
                break
            if time.monotonic() >= deadline:
                waited = f" after waiting {wait:g}s" if wait > 0 else ""
                raise MirrorLocked(
                    f"another mirror to {self.location} is running ({describe(holder)}){waited}; "
                    "try again later, or pass --wait SECONDS")
            if on_wait and not told:
                on_wait(holder)
                told = True
            time.sleep(POLL_SECONDS)
        self.start_renewal()

    def start_renewal(self) -> None:
        """Renew the lease every third of it, in a background thread, until stopped."""
        self._thread = threading.Thread(target=self._keep, name="lock-lease", daemon=True)
        self._thread.start()

    def _keep(self) -> None:
        while not self._stop.wait(self.lease / 3):
            self.owner["expires"] = iso(utc_now() + timedelta(seconds=self.lease))
            try:
                self._renew()
            except StorageError as exc:
                self.lost = str(exc)
                log.warning("%s on %s lost: %s", self.what, self.location, exc)
                return
            except Exception as exc:  # a failed renewal is retried at the next turn
                log.warning("cannot renew the %s on %s: %s", self.what, self.location, exc)

    def ensure_held(self) -> None:
        """Raise StorageError if the lease was lost (taken over) during the run."""
        if self.lost:
            raise StorageError(f"the {self.what} on {self.location} was lost ({self.lost}); "
                               "stopping so two runs do not interleave")

    def stop_renewal(self) -> None:
        """Stop the renewal thread (it may be started again)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._stop = threading.Event()

    def release(self) -> None:
        self.stop_renewal()
        if not self.lost:
            self._release()

    def _stale(self, holder: dict[str, Any]) -> bool:
        return lease_expired(holder) or _pid_gone(holder)

    def _warn_takeover(self, holder: dict[str, Any]) -> None:
        self.took_over = holder
        log.warning("taking over a stale mirror lock on %s (%s)", self.location, describe(holder))


MirrorLock = _Lock  # the public name of what every kind of lock is


class DirectoryLock(_Lock):
    def __init__(self, root: Path, lease: float = LEASE_SECONDS) -> None:
        super().__init__(lease)
        self.path = Path(root) / LOCK_FILE
        self.location = str(root)
        self.fd: int | None = None

    def _body(self) -> bytes:
        return (json.dumps(self.owner, sort_keys=True) + "\n").encode()

    def _try_acquire(self) -> dict[str, Any] | None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o644)
        except FileExistsError:
            return self._judge_existing()
        except OSError as exc:
            raise StorageError(f"cannot create the mirror lock {self.path}: {exc.strerror}") from exc
        # Nobody can take it over while we hold the flock; we hold it from birth.
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, self._body())
        os.fsync(fd)
        self.fd = fd
        return None

    def _judge_existing(self) -> dict[str, Any] | None:
        """The holder of an existing lock file, or None after clearing a stale one."""
        try:
            fd = os.open(self.path, os.O_RDWR)
        except FileNotFoundError:
            return {"host": "?", "pid": "?", "run_id": "(just released)", "expires": "?"}
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise
                return _read_owner(fd)  # its owner runs on this host and lives
            holder = _read_owner(fd)
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                return holder  # replaced while we looked: judge again next turn
            if not holder.get("run_id") and time.time() - os.fstat(fd).st_mtime < UNFINISHED_GRACE:
                return {"run_id": "(being created)"}  # its creator has not yet flocked it
            on_this_host = holder.get("host") == socket.gethostname()
            if on_this_host or self._stale(holder) or not holder.get("run_id"):
                # The flock is free: an owner on this host is gone (or the
                # file was never completed); elsewhere, the lease decides.
                self._warn_takeover(holder)
                os.unlink(self.path)
                return self._try_acquire()
            return holder
        finally:
            os.close(fd)

    def _renew(self) -> None:
        assert self.fd is not None
        try:
            if os.fstat(self.fd).st_ino != os.stat(self.path).st_ino:
                raise StorageError("the lock file was replaced by another run")
        except FileNotFoundError as exc:
            raise StorageError("the lock file was removed") from exc
        body = self._body()
        os.pwrite(self.fd, body, 0)
        os.ftruncate(self.fd, len(body))
        os.fsync(self.fd)

    def _release(self) -> None:
        if self.fd is None:
            return
        try:
            if os.fstat(self.fd).st_ino == os.stat(self.path).st_ino:
                os.unlink(self.path)
        except FileNotFoundError:
            pass
        finally:
            os.close(self.fd)
            self.fd = None


def _read_owner(fd: int) -> dict[str, Any]:
    try:
        data = os.pread(fd, 65536, 0)
        owner = json.loads(data)
        return owner if isinstance(owner, dict) else {}
    except (OSError, ValueError):
        return {}


class S3Lock(_Lock):
    def __init__(self, client: Any, bucket: str, prefix: str, lease: float = LEASE_SECONDS) -> None:
        super().__init__(lease)
        self.client, self.bucket = client, bucket
        self.key = f"{prefix}/{LOCK_FILE}" if prefix else LOCK_FILE
        self.location = f"s3://{bucket}/{prefix}".rstrip("/")
        self.etag: str | None = None

    def _body(self) -> bytes:
        return json.dumps(self.owner, sort_keys=True).encode()

    def _put(self, **condition: str) -> str | None:
        """PUT the owner record under a condition; its ETag, or None if the condition failed."""
        from botocore.exceptions import BotoCoreError, ClientError

        body = self._body()
        try:
            answer = self.client.put_object(Bucket=self.bucket, Key=self.key, Body=body,
                                            ContentType="application/json", **condition)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in ("PreconditionFailed", "ConditionalRequestConflict") or status in (409, 412):
                return None
            if code == "NotImplemented":
                raise StorageError(f"{self.location} does not support conditional writes "
                                   f"(If-None-Match), so the {self.what} there cannot be coordinated") from exc
            raise StorageError(f"cannot write the {self.what} at {self.location}: {exc}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"cannot write the {self.what} at {self.location}: {exc}") from exc
        return answer["ETag"]

    def _holder(self) -> tuple[dict[str, Any], str | None]:
        from botocore.exceptions import ClientError

        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=self.key)
            data = answer["Body"].read(65536)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return {}, None
            raise StorageError(f"cannot read the {self.what} at {self.location}: {exc}") from exc
        try:
            owner = json.loads(data)
        except ValueError:
            owner = {}
        return (owner if isinstance(owner, dict) else {}), answer["ETag"]

    def _try_acquire(self) -> dict[str, Any] | None:
        self.etag = self._put(IfNoneMatch="*")
        if self.etag:
            return None
        holder, etag = self._holder()
        if etag is None:
            return {"run_id": "(just released)"}
        if self._stale(holder):
            # Of two takers, only one replaces exactly the stale version.
            self.etag = self._put(IfMatch=etag)
            if self.etag:
                self._warn_takeover(holder)
                return None
        return holder

    def _renew(self) -> None:
        etag = self._put(IfMatch=self.etag or "")
        if etag is None:
            raise StorageError("the lock object was replaced or removed by another run")
        self.etag = etag

    def _release(self) -> None:
        """Delete the lock object only if it is still the version we wrote
        (``If-Match``); a store without conditional deletes gets a check-then-delete."""
        from botocore.exceptions import ClientError

        try:
            self.client.delete_object(Bucket=self.bucket, Key=self.key, IfMatch=self.etag or "")
            return
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("NotImplemented", "InvalidArgument"):
                if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") != 412:
                    log.warning("cannot remove the %s at %s: %s", self.what, self.location, exc)
                return  # 412: another run's lock now; leave it
        except Exception as exc:  # the lease then expires on its own
            log.warning("cannot remove the %s at %s: %s", self.what, self.location, exc)
            return
        holder, _ = self._holder()
        if self._is_mine(holder):
            try:
                self.client.delete_object(Bucket=self.bucket, Key=self.key)
            except Exception as exc:
                log.warning("cannot remove the %s at %s: %s", self.what, self.location, exc)

    def _is_mine(self, holder: dict[str, Any]) -> bool:
        return bool(holder.get("run_id")) and holder.get("run_id") == self.owner["run_id"]


def lock_for(target: Any, lease: float | None = None) -> _Lock:
    """The mirror lock of a site (``Site.mirror_lock``); the lease defaults to
    ``ARCHIVER_MIRROR_LEASE`` seconds from the environment, else LEASE_SECONDS."""
    if lease is None:
        try:
            lease = float(os.environ.get("ARCHIVER_MIRROR_LEASE", LEASE_SECONDS))
        except ValueError:
            raise UsageError("ARCHIVER_MIRROR_LEASE must be a number of seconds") from None
        if not lease > 0:
            raise UsageError("ARCHIVER_MIRROR_LEASE must be a positive number of seconds")
    return target.mirror_lock(lease)  # each kind of site knows its own lock (Site.mirror_lock)


@contextmanager
def lock_target(target: Any, wait: float = 0.0, lease: float | None = None,
                on_wait: Callable[[dict[str, Any]], None] | None = None) -> Iterator[_Lock]:
    """Hold ``target``'s mirror lock for the body; raise MirrorLocked if another
    live run holds it after ``wait`` seconds."""
    lock = lock_for(target, lease)
    lock.acquire(wait, on_wait)
    try:
        yield lock
    finally:
        lock.release()
