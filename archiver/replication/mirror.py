"""Mirroring a collection: plan each bag, send what is missing in the safe
order, read everything back against the manifest, write the receipt last.

    >>> report = mirror_collection(Path("bags"), open_site("/mnt/other/bags"))
    >>> report.to_dict()["copied"]
    0

Per bag the outcome is one of ``present`` (already there: tag manifests
byte-identical, sizes equal, receipt present; nothing hashed), ``mirrored``
(sent as needed, every file read back and hashed, receipt written),
``unverified`` (sent with verification off: no receipt, so not counted
mirrored) or ``failed``. A bag whose read-back finds a mismatch has those
files sent once more and is checked again before it is called failed.
"""

from __future__ import annotations

import os
import multiprocessing
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator, Protocol

from archiver.bagit.reader import BagReader, LocalBag
from archiver.errors import StorageError, UsageError
from archiver.collection.events import Event, append_events, events_path
from archiver.replication.directory import file_sizes
from archiver.replication.lock import lock_target
from archiver.replication.fixity import Expected, FileFault, check_copy, reference_digests
from archiver.replication.plan import SourceBag, algorithm_of, plan_bag
from archiver.replication.site import Site
from archiver.replication.target import make_receipt, missing_event_lines

ProgressCallback = Callable[..., None]
EVENT_BATCH = 200
PARALLEL_PLANNING = 2000  # bags; below this, forking costs more than it saves


@dataclass
class BagResult:
    bag: str
    status: str  # present | mirrored | unverified | failed
    found: str  # what the target held before: new | present | incomplete | changed
    files_sent: int = 0
    bytes_sent: int = 0
    faults: list[FileFault] = field(default_factory=list)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"bag": self.bag, "status": self.status, "found": self.found,
                "files_sent": self.files_sent, "bytes_sent": self.bytes_sent,
                "faults": [f.to_dict() for f in self.faults], "error": self.error}


@dataclass
class MirrorReport:
    source: str
    target: str
    verify: bool
    bags: list[BagResult] = field(default_factory=list)
    events_appended: int = 0
    lock_taken_over: dict[str, Any] | None = None  # the stale mirror lock this run replaced

    def count(self, status: str) -> int:
        return sum(1 for b in self.bags if b.status == status)

    @property
    def ok(self) -> bool:
        return self.count("failed") == 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source, "target": self.target, "verify": self.verify,
            "ok": self.ok, "bags": len(self.bags),
            "present": self.count("present"), "mirrored": self.count("mirrored"),
            "unverified": self.count("unverified"), "failed": self.count("failed"),
            "copied": sum(1 for b in self.bags if b.files_sent),
            "files_copied": sum(b.files_sent for b in self.bags),
            "bytes_copied": sum(b.bytes_sent for b in self.bags),
            "events_appended": self.events_appended,
            "lock_taken_over": self.lock_taken_over,
            "results": [b.to_dict() for b in self.bags if b.status != "present"],
        }


def read_source_bag(bag_dir: Path) -> SourceBag:
    """Sizes of every file of a local bag and the bytes of its tag manifests."""
    folder = str(bag_dir)
    try:
        files = file_sizes(folder, allow_symlinks=False)
    except IsADirectoryError as exc:
        raise StorageError(f"{exc.filename} is a symbolic link; a bag to mirror holds only "
                           "regular files (run `archiver verify`)") from exc
    except OSError as exc:
        raise StorageError(f"cannot list {bag_dir}: {exc.strerror}") from exc
    tagmanifests = {}
    for path in files:
        if "/" not in path and path.startswith("tagmanifest-") and algorithm_of(path):
            try:
                with open(os.path.join(folder, path), "rb") as f:
                    tagmanifests[path] = f.read()
            except OSError as exc:
                raise StorageError(f"cannot read {bag_dir / path}: {exc.strerror}") from exc
    return SourceBag(bag_dir.name, files, tagmanifests)


class BagSource(Protocol):
    """One bag of a mirror's source collection (a local folder, a bag on S3)."""

    name: str
    location: str

    def read(self) -> SourceBag:
        """Its files with sizes and its tag manifests' bytes (StorageError if unreadable)."""

    def reader(self) -> BagReader: ...

    @contextmanager
    def open_file(self, path: str) -> Iterator[tuple[BinaryIO, int]]:
        """One file of the bag as a stream, with its size."""


class MirrorSource(Protocol):
    """A collection to mirror from: a local root (``LocalCollection``) or an S3
    root (``archiver.replication.s3source.S3Source``): complete bags only."""

    location: str

    def check(self) -> None:
        """Raise (StorageError, UsageError) when the source cannot be mirrored at all."""

    def bags(self) -> list[BagSource]: ...

    def triage(self, bags: list[BagSource], target: Site) -> tuple[set[str], set[str]]:
        """(bags already present at the target, candidates that are not bags)."""

    def log_events(self, events: list[Event]) -> None:
        """Record replication events in the source's own log."""

    def event_log(self) -> bytes:
        """The source's event log as ``events.jsonl`` bytes (to copy to the target)."""

    def extra_results(self, target: Site, verify: bool) -> list[BagResult]:
        """Anything else the source mirrors (a local root's serialised bags)."""


class LocalBagSource:
    def __init__(self, bag_dir: Path) -> None:
        self.bag_dir = Path(bag_dir)
        self.name = self.bag_dir.name
        self.location = str(self.bag_dir)

    def read(self) -> SourceBag:
        return read_source_bag(self.bag_dir)

    def reader(self) -> BagReader:
        return LocalBag(self.bag_dir)

    @contextmanager
    def open_file(self, path: str) -> Iterator[tuple[BinaryIO, int]]:
        try:
            with open(self.bag_dir / path, "rb") as stream:
                yield stream, os.fstat(stream.fileno()).st_size
        except OSError as exc:
            raise StorageError(f"cannot read {self.bag_dir / path}: {exc.strerror}") from exc


def _send(bag: BagSource, target: Site, name: str, paths: list[str],
          delete: list[str], reference: dict[str, Expected]) -> tuple[int, int]:
    target.begin(name)
    sent = nbytes = 0
    for path in paths:
        want = reference[path]
        sha256 = want.digest if want.algorithm == "sha256" else None
        with bag.open_file(path) as (stream, size):
            target.put(name, path, stream, size, sha256)
        sent += 1
        nbytes += size
    for path in delete:
        target.delete(name, path)
    target.finish(name)
    return sent, nbytes


def mirror_bag(bag_dir: Path | BagSource, target: Site, verify: bool = True,
               source_location: str | None = None) -> BagResult:
    """Mirror one bag (a local folder, or any ``BagSource``) to ``target``.
    Never raises for a bag-level failure: the result says ``failed`` with the reason."""
    bag = LocalBagSource(bag_dir) if isinstance(bag_dir, Path) else bag_dir
    name = bag.name
    result = BagResult(name, "failed", "new")
    try:
        source = bag.read()
        plan = plan_bag(source, target.state(source))
        result.found = plan.status
        if plan.is_present:
            result.status = "present"
            return result
        reference = reference_digests(bag.reader(), source.files)
        sent, nbytes = _send(bag, target, name, plan.send, plan.delete, reference)
        result.files_sent, result.bytes_sent = sent, nbytes
        if not verify:
            result.status = "unverified"
            return result
        faults = check_copy(target.reader(name), reference, target.listing(name))
        if faults:
            # Same-size files with other bytes are only found by reading back:
            # send exactly those once more, then judge.
            resend = sorted({f.path for f in faults if f.kind != "extra"})
            extra = [f.path for f in faults if f.kind == "extra"]
            sent, nbytes = _send(bag, target, name, resend, extra, reference)
            result.files_sent += sent
            result.bytes_sent += nbytes
            faults = check_copy(target.reader(name), reference, target.listing(name))
        if faults:
            result.faults = faults
            result.error = (f"{len(faults)} file(s) at the target do not match the manifest "
                            "after sending twice (is the source bag intact? run `archiver verify`)")
            return result
        target.write_receipt(name, make_receipt(source, source_location or bag.location,
                                                len(source.files), source.bytes))
        result.status = "mirrored"
    except StorageError as exc:
        result.error = str(exc)
    return result


def _replication_event(result: BagResult, target: str) -> Event:
    outcome = {"mirrored": "success", "unverified": "unverifiable"}.get(result.status, "failure")
    detail = {"found": result.found, "files": result.files_sent, "bytes": result.bytes_sent,
              "verified": result.status == "mirrored"}
    if result.error:
        detail["reason"] = result.error
    if result.faults:
        detail["faults"] = [f.to_dict() for f in result.faults[:20]]
    return Event(type="replication", outcome=outcome, bag=result.bag, target=target, detail=detail)


def mirror_events(root: Path | MirrorSource, target: Site) -> int:
    """Append to the target's event log the source lines it lacks; return how many."""
    source_log = (LocalCollection(root) if isinstance(root, Path) else root).event_log()
    if not source_log:
        return 0
    lines = missing_event_lines(source_log, target.read_event_log())
    target.append_event_lines(lines)
    return len(lines)


class LocalCollection:
    """``MirrorSource`` for a collection root on disk."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.location = str(self.root)

    def check(self) -> None:
        if not self.root.is_dir():
            raise StorageError(f"collection root {self.root} is not a directory")
        if (self.root / "bagit.txt").is_file():
            raise UsageError(f"{self.root} is a bag; mirror its collection root ({self.root.parent}) instead")

    def bags(self) -> list[BagSource]:
        return [LocalBagSource(folder) for folder in _folders(self.root)]

    def triage(self, bags: list[BagSource], target: Site) -> tuple[set[str], set[str]]:
        return triage([Path(bag.location) for bag in bags], target)

    def log_events(self, events: list[Event]) -> None:
        append_events(self.root, events)

    def event_log(self) -> bytes:
        try:
            return events_path(self.root).read_bytes()
        except FileNotFoundError:
            return b""
        except OSError as exc:
            raise StorageError(f"cannot read {events_path(self.root)}: {exc.strerror}") from exc

    def extra_results(self, target: Site, verify: bool) -> list[BagResult]:
        from archiver.exchange.mirror_archives import mirror_archives  # serialised bags: copied as files

        return mirror_archives(self.root, target, verify)


def _folders(root: Path) -> list[Path]:
    """Candidate bag folders under ``root``: not hidden, not symlinks. Whether
    each is a bag (has bagit.txt) is seen when it is listed anyway, which
    spares two stats per bag on a re-mirror."""
    try:
        with os.scandir(root) as entries:
            return sorted(Path(e.path) for e in entries
                          if not e.name.startswith(".") and e.is_dir(follow_symlinks=False))
    except OSError as exc:
        raise StorageError(f"cannot list collection root {root}: {exc.strerror}") from exc


def _triage(folders: list[Path], target: Site) -> tuple[set[str], set[str]]:
    """(bags already present at the target, folders that are not bags)."""
    present, not_bags = set(), set()
    for folder in folders:
        try:
            source = read_source_bag(folder)
            if "bagit.txt" not in source.files:
                not_bags.add(source.name)
            elif plan_bag(source, target.state(source)).is_present:
                present.add(source.name)
        except StorageError:
            pass  # judged again, and reported, when the bag itself is mirrored
    return present, not_bags


def triage(folders: list[Path], target: Site) -> tuple[set[str], set[str]]:
    """Which folders hold bags already present at the target (no hashing),
    and which are not bags at all.

    For a local target this is a stat-and-compare walk over both trees;
    on a large collection it is split over the machine's cores."""
    processes = min(os.cpu_count() or 1, 4)
    if not (target.parallel_planning and len(folders) >= PARALLEL_PLANNING
            and processes > 1 and "fork" in multiprocessing.get_all_start_methods()):
        return _triage(folders, target)
    chunks = [folders[i::processes] for i in range(processes)]
    context = multiprocessing.get_context("fork")
    present: set[str] = set()
    not_bags: set[str] = set()
    with ProcessPoolExecutor(max_workers=processes, mp_context=context) as pool:
        for chunk_present, chunk_not_bags in pool.map(_triage, chunks, [target] * processes):
            present |= chunk_present
            not_bags |= chunk_not_bags
    return present, not_bags


def mirror_collection(root: Path | MirrorSource, target: Site, verify: bool = True,
                      workers: int = 4, on_progress: ProgressCallback | None = None,
                      wait: float = 0.0, on_wait: Callable[[dict[str, Any]], None] | None = None) -> MirrorReport:
    """Mirror every bag of the collection at ``root`` (a local root, or any
    ``MirrorSource``: an S3 root's complete bags) to ``target``, then its
    event log. A ``replication`` event per bag that was not already present is
    appended to the source's log. Raises TargetUnreachable (exit 3) when the
    target cannot be used at all; per-bag failures are in the report."""
    source = LocalCollection(root) if isinstance(root, Path) else root
    source.check()
    target.check_reachable()
    # One run per target at a time (archiver.replication.lock): MirrorLocked, exit 3.
    with lock_target(target, wait, on_wait=on_wait) as lock:
        report = _mirror_all(source, target, verify, workers, on_progress)
        lock.ensure_held()
    report.lock_taken_over = lock.took_over
    return report


def _mirror_all(source: MirrorSource, target: Site, verify: bool, workers: int,
                on_progress: ProgressCallback | None) -> MirrorReport:
    target.scan()
    candidates = source.bags()
    report = MirrorReport(source.location, target.location, verify)
    progress = on_progress or (lambda *a, **k: None)
    progress(0, len(candidates))
    present, not_bags = source.triage(candidates, target)
    bags = [b for b in candidates if b.name not in not_bags]
    to_mirror = [b for b in bags if b.name not in present]
    report.bags.extend(BagResult(name, "present", "present") for name in sorted(present))
    progress(len(present), len(bags))
    pending: list[Event] = []
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = [pool.submit(mirror_bag, bag, target, verify) for bag in to_mirror]
        for done, future in enumerate(as_completed(futures), start=len(present) + 1):
            result = future.result()
            report.bags.append(result)
            if result.status != "present":
                pending.append(_replication_event(result, target.location))
            if len(pending) >= EVENT_BATCH:
                source.log_events(pending)
                pending = []
            progress(done, len(bags), result.bag)
    for result in source.extra_results(target, verify):
        report.bags.append(result)
        if result.status != "present":
            pending.append(_replication_event(result, target.location))
    if pending:
        source.log_events(pending)
    report.bags.sort(key=lambda b: b.bag)
    report.events_appended = mirror_events(source, target)
    return report
