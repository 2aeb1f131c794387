"""Ingest: taking in bags made elsewhere (folders, tar/tar.gz/zip, or on S3).

Each bag is verified in full first (RFC 8493, plus any profiles). An invalid
bag is refused with its problems and nothing is added. A valid one is copied
into ``.tmp-*`` in the collection root, file by file (from a folder, an S3
bag, or the archive's entries: only regular files under its one top folder,
which verification has already checked), the copy is verified again and must
have byte-identical tag manifests, then it is fsynced and renamed into place,
an ``ingestion`` event is logged and the bag is catalogued. A bag whose name
is taken is ``present`` when its tag manifests are the same, and refused
(``name-taken``) when they differ: nothing is ever overwritten.

    >>> report = ingest(Path("bags"), ["incoming/partner-0001.tar"])
    >>> [r.status for r in report.results]
    ['ingested']
"""

from __future__ import annotations

import hashlib
import os
import shutil
import zipfile
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO, Callable

from archiver.bagit.parse import TAG_MANIFEST_NAME
from archiver.bagit.reader import BagReader, LocalBag, split_safe_relpath
from archiver.bagit.verify import BagReport, looks_like_bag, verify_bag
from archiver.collection.events import Event, append_event
from archiver.collection.root import open_collection
from archiver.durable import fsync_path, fsync_tree, make_temp_dir, release_temp_dir, renamed_held_dir
from archiver.errors import ArchiverError, StorageError, UsageError
from archiver.exchange.archive_reader import (CHUNK, ArchiveSource, Scan, ScannedBag, _clean_name, archive_kind,
                                               drain, open_tar_stream, scan_archive)
from archiver.exchange.check import s3_archive, verify_any, verify_scanned
from archiver.exchange.profiles import Profile


@dataclass
class IngestResult:
    source: str
    bag: str | None
    status: str                   # ingested | present | refused | failed
    problems: list[dict[str, str]] = field(default_factory=list)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "bag": self.bag, "status": self.status,
                "problems": self.problems, "error": self.error}


@dataclass
class IngestReport:
    root: str
    results: list[IngestResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r.status in ("ingested", "present") for r in self.results)

    def to_dict(self) -> dict[str, Any]:
        counts = {s: sum(1 for r in self.results if r.status == s)
                  for s in ("ingested", "present", "refused", "failed")}
        return {"root": self.root, "ok": self.ok, **counts, "results": [r.to_dict() for r in self.results]}


def _sources(given: str, endpoint_url: str | None) -> list[Any]:
    """Bags named by one argument: a folder bag, a folder of bags and archives,
    an archive, an s3:// bag or prefix, or an s3:// archive."""
    if given.startswith("s3://"):
        if archive_kind(given):
            return [s3_archive(given, endpoint_url)]
        from archiver.replication import open_bag_readers
        return list(open_bag_readers(given, endpoint_url))
    path = Path(given)
    if path.is_file():
        return [ArchiveSource.local(path)]
    if looks_like_bag(path):
        return [path]
    if path.is_dir():
        return [p if p.is_dir() else ArchiveSource.local(p) for p in sorted(path.iterdir())
                if not p.name.startswith(".") and (looks_like_bag(p) or (p.is_file() and archive_kind(p.name)))]
    raise UsageError(f"{given} does not exist")


def ingest(root: Path, sources: list[str], profiles: list[Profile] | None = None,
           endpoint_url: str | None = None, on_progress: Callable[..., None] | None = None) -> IngestReport:
    root = open_collection(root)
    report = IngestReport(str(root))
    for given in sources:
        try:
            bags = _sources(given, endpoint_url)
        except ArchiverError as exc:
            report.results.append(IngestResult(given, None, "failed", error=str(exc)))
            continue
        for bag in bags:
            location = str(getattr(bag, "location", bag))
            try:
                report.results.append(_ingest_one(root, bag, profiles or [], on_progress))
            except ArchiverError as exc:
                report.results.append(IngestResult(location, None, "failed", error=str(exc)))
    return report


def _ingest_one(root: Path, bag: Any, profiles: list[Profile], on_progress: Callable[..., None] | None
                ) -> IngestResult:
    location = str(getattr(bag, "location", bag))
    if isinstance(bag, ArchiveSource):
        scan = scan_archive(bag, on_progress)  # one pass serves the verdict, the name and the tags
        verdict = verify_scanned(bag, scan, "full", profiles)
        files: _Files = _ArchiveFiles(bag, scan)
    else:
        verdict = verify_any(bag, "full", None, on_progress, profiles)
        files = _Files.of(bag)
    if not verdict.valid:
        return IngestResult(location, None, "refused", [p.to_dict() for p in verdict.problems])
    name = files.name
    if not name or name.startswith(".") or "/" in name:
        return IngestResult(location, name, "refused", error=f"unusable bag name {name!r}")
    final = root / name
    if final.exists():
        if _tag_manifests(LocalBag(final)) == _tag_manifests(files.tags_reader()):
            return IngestResult(location, name, "present")
        return IngestResult(location, name, "refused", [{
            "code": "name-taken", "path": name,
            "message": f"the collection already holds a different bag named {name}; nothing was changed"}])
    tmp = make_temp_dir(root, f"ingest-{name}")
    try:
        files.copy_into(tmp)
        copy = verify_bag(tmp, "full")
        if not copy.valid or _tag_manifests(LocalBag(tmp)) != _tag_manifests(files.tags_reader()):
            raise StorageError(f"the copy of {location} does not verify: "
                               + "; ".join(f"{p.code} {p.path}" for p in copy.problems[:5]))
        fsync_tree(tmp)
        if final.exists():
            raise StorageError(f"{final} appeared while ingesting; nothing was changed")
        os.rename(tmp, final)
        renamed_held_dir(tmp, final)
        fsync_path(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        release_temp_dir(tmp)
        raise
    release_temp_dir(final)
    where_from = location if "://" in location else str(Path(location).resolve())
    append_event(root, Event("ingestion", "success", bag=name, detail={
        "from": where_from, "digests": _tag_manifests_digests(LocalBag(final)),
        "source_sha256": files.source_sha256, "verifier": _summary(verdict),
        "profiles": [p.name for p in profiles]}))
    _catalogue(root, final)
    return IngestResult(location, name, "ingested")


def _summary(report: BagReport) -> dict[str, Any]:
    return {"valid": report.valid, "mode": report.mode, "version": report.version, "files": report.files,
            "bytes": report.bytes, "warnings": [w.to_dict() for w in report.warnings][:100]}


def _catalogue(root: Path, bag: Path) -> None:
    from archiver.collection.catalog import catalog_add_bag
    try:
        catalog_add_bag(root, bag)
    except ArchiverError:
        pass  # the bag and its event are safe; `archiver catalog rebuild` indexes it later


def _tag_manifests(reader: BagReader) -> dict[str, bytes]:
    found = {}
    for entry in reader.list_files():
        if TAG_MANIFEST_NAME.match(entry.path):
            with reader.open(entry.path) as stream:
                found[entry.path] = stream.read()
    return found


def _tag_manifests_digests(reader: BagReader) -> dict[str, str]:
    return {name: "sha256:" + hashlib.sha256(raw).hexdigest() for name, raw in _tag_manifests(reader).items()}


class _Files:
    """Copies a verified bag's files, whatever holds them."""

    def __init__(self, name: str, bag: Any) -> None:
        self.name = name
        self.bag = bag
        self.source_sha256: str | None = None

    @classmethod
    def of(cls, bag: Any) -> "_Files":
        if isinstance(bag, Path):
            return cls(bag.name, LocalBag(bag))
        return cls(bag.location.rstrip("/").rsplit("/", 1)[-1], bag)

    def tags_reader(self) -> BagReader:
        return self.bag

    def copy_into(self, dest: Path) -> None:
        for entry in self.bag.list_files():
            _write(dest, entry.path, self.bag.open(entry.path))


def _write(dest: Path, path: str, stream: BinaryIO) -> None:
    try:
        parts = split_safe_relpath(path)
    except ValueError as exc:
        stream.close()
        raise StorageError(f"refusing to copy {path!r}: {exc}") from exc
    target = dest.joinpath(*parts)
    target.parent.mkdir(parents=True, exist_ok=True)
    with stream, open(target, "xb") as out:
        while chunk := stream.read(CHUNK):
            out.write(chunk)


class _ArchiveFiles(_Files):
    def __init__(self, source: ArchiveSource, scan: Scan) -> None:
        super().__init__(scan.top or "", source)
        self.source = source
        self.scan = scan

    def tags_reader(self) -> BagReader:
        return ScannedBag(self.source.location, self.scan)

    def copy_into(self, dest: Path) -> None:
        """Only regular files under the top folder (verification refused anything else)."""
        digest = hashlib.sha256()
        with self.source.open() as raw:
            hashing = _Hashing(raw, digest)
            if self.source.kind == "zip":
                with zipfile.ZipFile(raw) as archive:
                    for info in archive.infolist():
                        self._take(dest, info.filename, not info.is_dir(), partial(archive.open, info))
                raw.seek(0)
                while chunk := raw.read(CHUNK):
                    digest.update(chunk)
            else:
                tar, stream = open_tar_stream(hashing, self.source.kind == "tar.gz")  # type: ignore[arg-type]
                with tar:
                    for member in tar:
                        self._take(dest, member.name, member.isreg(), partial(tar.extractfile, member))
                drain(stream)
                drain(hashing)  # type: ignore[arg-type]
        self.source_sha256 = "sha256:" + digest.hexdigest()

    def _take(self, dest: Path, name: str, regular: bool, open_entry: Callable[[], Any]) -> None:
        clean = _clean_name(name)
        if clean is None or not regular:
            return
        top, _, rest = clean.partition("/")
        if top != self.name or not rest:
            return
        _write(dest, rest, open_entry())


class _Hashing:
    """A read-only stream that hashes what passes through (the archive's own digest)."""

    def __init__(self, raw: BinaryIO, digest: Any) -> None:
        self.raw = raw
        self.digest = digest

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.digest.update(data)
        return data
