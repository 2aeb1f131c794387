"""Repairing a damaged copy of a collection (or of one bag) from a good copy.

    >>> report = repair("s3://library-b/texts", "bags", endpoint_url="http://127.0.0.1:8333")
    >>> [b.status for b in report.bags]
    ['intact', 'repaired']

TARGET and SOURCE are each a collection root or a single bag, a directory or
``s3://bucket/prefix``. For every bag at TARGET, every file is read back and
hashed against the manifests *of the SOURCE bag*; a file that is missing,
truncated or differs is damaged. A damaged file is taken from SOURCE only if
SOURCE's copy matches the manifest; if any damaged file of a bag has no good
copy, nothing of that bag is changed and the report says so. Each good file is
staged (a staging area on the target), hashed again there, then swapped in
atomically (rename on disk, a server-side copy on S3); the whole bag is then
checked again and a ``repair`` event is logged at the target. When the target
is a mirror (it keeps receipts) a bag found intact but without its receipt,
or repaired, gets its receipt back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from archiver.bagit.verify import verify_bag
from archiver.collection.events import Event
from archiver.errors import StorageError
from archiver.replication.fixity import (Expected, FileFault, Readable, check_copy, read_tagmanifests,
                                        reference_digests, stream_digest)
from archiver.replication.plan import SourceBag
from archiver.replication.site import Site, SiteOptions, open_site
from archiver.replication.target import make_receipt


@dataclass
class BagRepair:
    bag: str
    status: str  # intact | repaired | would-repair | unrepairable | failed
    damaged: list[FileFault] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    receipt_restored: bool = False
    valid_after: bool | None = None  # verify_bag's verdict after a repair
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"bag": self.bag, "status": self.status,
                "damaged": [f.to_dict() for f in self.damaged], "replaced": self.replaced,
                "receipt_restored": self.receipt_restored, "valid_after": self.valid_after,
                "message": self.message}


@dataclass
class RepairReport:
    target: str
    source: str
    dry_run: bool
    bags: list[BagRepair] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(b.status in ("intact", "repaired", "would-repair") for b in self.bags)

    def to_dict(self) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for b in self.bags:
            counts[b.status] = counts.get(b.status, 0) + 1
        return {"target": self.target, "source": self.source, "dry_run": self.dry_run,
                "ok": self.ok, "bags": len(self.bags), "counts": counts,
                "results": [b.to_dict() for b in self.bags]}


def open_side(location: str | Path, options: SiteOptions) -> tuple[Site, list[str] | None]:
    """A collection root or one bag, as (site, [bag name]) or (site, None = every bag).
    StorageError/TargetUnreachable (exit 3) when it cannot be read at all."""
    site = open_site(location, options.endpoint_url, options.checksum_when_required, options.client)
    site.check_readable()
    one_bag = site.locate_bag()
    if one_bag is not None:
        parent, name = one_bag
        if name not in parent.bag_names():  # on S3: a bag being uploaded, or left by a crash
            raise StorageError(f"{location} is not one of the bags of {parent.location} (on S3: it has no "
                               "completion marker or receipt; on disk: a link or a partial copy); "
                               "it is never read or changed")
        return parent, [name]
    return site, None


def _matches(reader: Readable, path: str, want: Expected) -> bool:
    """Does ``path`` as read through ``reader`` match the manifest?"""
    try:
        digest, size = stream_digest(reader, path, want.algorithm)
    except (FileNotFoundError, StorageError, OSError):
        return False
    return digest == want.digest and (want.size is None or size == want.size)


def repair_bag(target: Site, name: str, source: Site, source_name: str, dry_run: bool,
               is_mirror: bool) -> BagRepair:
    """Check one bag at ``target`` against ``source`` and repair what it can."""
    result = BagRepair(name, "failed")
    source_files = source.listing(source_name)
    if not source_files:
        result.status, result.message = "unrepairable", f"no copy of {name} at {source.location}"
        result.damaged = check_copy(target.reader(name), {}, target.listing(name))
        return result
    reference = reference_digests(source.reader(source_name), source_files)
    # The source's manifests are the yardstick, so they must themselves agree
    # with its tag manifests before any file is judged by them.
    unsound = [p for p in source_files if "/" not in p and p.startswith("manifest-")
               and not _matches(source.reader(source_name), p, reference[p])]
    if unsound:
        result.status = "unrepairable"
        result.message = (f"the copy at {source.location} is not sound: {', '.join(unsound)} does not "
                          "match its tag manifest; nothing was changed")
        return result
    faults = check_copy(target.reader(name), reference, target.listing(name))
    result.damaged = faults
    damaged = sorted(f.path for f in faults if f.kind != "extra")
    missing_receipt = is_mirror and not target.has_receipt(name)
    if not damaged and not missing_receipt:
        result.status = "intact"
        if faults:
            result.message = "files not in the bag were left untouched"
        return result
    without_good_copy = [p for p in damaged if not _matches(source.reader(source_name), p, reference[p])]
    if without_good_copy:
        result.status = "unrepairable"
        result.message = (f"no good copy at {source.location} of: {', '.join(without_good_copy)}; "
                          "nothing was changed")
        return result
    if dry_run:
        result.status = "would-repair"
        result.replaced = damaged
        result.message = "receipt would be restored" if missing_receipt else ""
        return result
    try:
        for path in damaged:
            with source.reader(source_name).open(path) as stream:
                target.stage(name, path, stream)
            if not _matches(target.staged_reader(name), path, reference[path]):
                raise StorageError(f"staged copy of {path} does not match the manifest")
            target.swap(name, path)
            result.replaced.append(path)
    except StorageError as exc:
        result.message = f"repair stopped: {exc}"
        return result
    finally:
        target.discard_staging(name)
    after = [f for f in check_copy(target.reader(name), reference, target.listing(name))
             if f.kind != "extra"]
    if after:
        result.message = f"still damaged after repair: {', '.join(f.path for f in after)}"
        return result
    # Last, the verifier's own full check of the repaired bag, as `verify` would run it.
    report = verify_bag(target.reader(name))
    result.valid_after = report.valid
    if not report.valid:
        codes = sorted({p.code for p in report.problems})
        result.message = (f"files restored, but the bag does not verify: {', '.join(codes)}"
                          + (" (files not in the bag were left untouched)"
                              if any(f.kind == "extra" for f in faults) else ""))
        return result
    if is_mirror:
        source_bag = SourceBag(name, source_files, read_tagmanifests(source.reader(source_name), source_files))
        target.write_receipt(name, make_receipt(source_bag, source.location, len(source_files),
                                                source_bag.bytes))
        result.receipt_restored = missing_receipt
    result.status = "repaired"
    return result


def repair(target_location: str | Path, source_location: str | Path, dry_run: bool = False,
           endpoint_url: str | None = None, client: Any = None,
           on_progress: Callable[..., None] | None = None,
           checksum_when_required: bool = True) -> RepairReport:
    """Repair every damaged bag at ``target_location`` from ``source_location``.

    Raises StorageError/TargetUnreachable (exit 3) when either side cannot be
    read at all; per-bag outcomes are in the report."""
    options = SiteOptions(endpoint_url, checksum_when_required, client)
    target, target_names = open_side(target_location, options)
    source, source_names = open_side(source_location, options)
    names = target_names if target_names is not None else target.bag_names()
    is_mirror = target.keeps_receipts()
    report = RepairReport(str(target_location), str(source_location), dry_run)
    progress = on_progress or (lambda *a, **k: None)
    events: list[Event] = []
    for done, name in enumerate(names, start=1):
        source_name = source_names[0] if source_names and len(source_names) == 1 else name
        try:
            result = repair_bag(target, name, source, source_name, dry_run, is_mirror)
        except StorageError as exc:
            result = BagRepair(name, "failed", message=str(exc))
        report.bags.append(result)
        if not dry_run and result.status in ("repaired", "unrepairable", "failed"):
            outcome = "success" if result.status == "repaired" else "failure"
            events.append(Event(type="repair", outcome=outcome, bag=name, target=target.location,
                                detail={"source": source.location, "status": result.status,
                                        "replaced": result.replaced,
                                        "receipt_restored": result.receipt_restored,
                                        "valid_after": result.valid_after,
                                        "damaged": [f.to_dict() for f in result.damaged[:20]],
                                        "message": result.message}))
        progress(done, len(names), name)
    target.log_events(events)
    return report
