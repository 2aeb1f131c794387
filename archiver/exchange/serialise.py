"""Serialising bags (RFC 8493 §4): one tar, tar.gz or zip archive per bag.

Each archive holds one top-level folder named as the bag. Entries come in a
stable order, the tag files first (``bagit.txt``, ``bag-info.txt``, the
manifests, other tag files) and then ``data/`` sorted by name, so a streaming
reader knows the manifests' algorithms before it meets the payload. Files keep
their modification times; owners are dropped (uid/gid 0, no names) and modes are
0644 for files and 0755 for folders. Tar is POSIX pax (ustar headers, a pax
header only where a name or size needs it), read by GNU tar, bsdtar, Python and
7-Zip; gzip headers carry no name or time; zip entries are deflated, Unix
modes set, ZIP64 where needed.

An archive is written to ``.tmp-<name>-*`` in the output folder, fsynced,
verified in place (``verify_archive``), then renamed; an existing archive of the
same name is never overwritten.

    >>> result = export_bag(Path("bags/essay-20261125T093000Z"), Path("out"), "tar.gz")
    >>> result.archive.name
    'essay-20261125T093000Z.tar.gz'
"""

from __future__ import annotations

import gzip
import os
import stat
import tarfile
import time
import uuid
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Callable

from archiver.bagit.parse import MANIFEST_NAME, TAG_MANIFEST_NAME
from archiver.bagit.reader import LocalBag
from archiver.durable import TMP_PREFIX, fsync_path
from archiver.errors import StorageError, UsageError
from archiver.exchange.archive_reader import ArchiveSource

FORMATS = {"tar": ".tar", "tar.gz": ".tar.gz", "zip": ".zip"}
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
CHUNK = 1 << 20


@dataclass
class ExportResult:
    bag: str
    archive: Path
    status: str                    # exported | exists | failed
    files: int = 0
    bytes: int = 0
    problems: list[dict[str, str]] = field(default_factory=list)
    derived_from: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"bag": self.bag, "archive": str(self.archive), "status": self.status, "files": self.files,
                "bytes": self.bytes, "problems": self.problems, "derived_from": self.derived_from}


@dataclass(frozen=True)
class _Member:
    name: str          # inside the archive: "<bag>/<path>"
    source: Path | None  # None: a folder
    mtime: float
    size: int


def _order_key(path: str) -> tuple[int, str]:
    if path == "bagit.txt":
        return (0, path)
    if path == "bag-info.txt":
        return (1, path)
    if MANIFEST_NAME.match(path):
        return (2, path)
    if TAG_MANIFEST_NAME.match(path):
        return (4, path)
    if path.startswith("data/"):
        return (5, path)
    return (3, path)


def bag_members(bag: Path, top: str | None = None) -> list[_Member]:
    """The archive entries of a bag folder, in archive order. StorageError for a
    symbolic link or special file (never followed, never serialised)."""
    top = top or bag.name
    files = LocalBag(bag).list_files()
    members: list[_Member] = []
    folders: set[str] = set()
    for entry in sorted(files, key=lambda e: _order_key(e.path)):
        full = bag / entry.path
        info = os.lstat(full)
        if entry.is_symlink or not stat.S_ISREG(info.st_mode):
            raise StorageError(f"{bag}: {entry.path} is not a regular file; refusing to serialise it")
        parts = entry.path.split("/")[:-1]
        for depth in range(1, len(parts) + 1):
            folder = "/".join(parts[:depth])
            if folder not in folders:
                folders.add(folder)
                members.append(_Member(f"{top}/{folder}", None, os.stat(bag / folder).st_mtime, 0))
        members.append(_Member(f"{top}/{entry.path}", full, info.st_mtime, info.st_size))
    root = _Member(top, None, os.stat(bag).st_mtime, 0)
    return [root] + members


def _tar_info(member: _Member) -> tarfile.TarInfo:
    info = tarfile.TarInfo(member.name)
    info.mtime = int(member.mtime)
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if member.source is None:
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
    else:
        info.size = member.size
        info.mode = 0o644
    return info


def _write_tar(members: list[_Member], raw: BinaryIO, gz: bool) -> None:
    target: Any = gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6) if gz else raw
    try:
        with tarfile.open(fileobj=target, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for member in members:
                info = _tar_info(member)
                if member.source is None:
                    tar.addfile(info)
                else:
                    with open(member.source, "rb") as stream:
                        if os.fstat(stream.fileno()).st_size != member.size:
                            raise StorageError(f"{member.source} changed while it was being exported")
                        tar.addfile(info, stream)
    finally:
        if gz:
            target.close()


def _write_zip(members: list[_Member], raw: BinaryIO) -> None:
    with zipfile.ZipFile(raw, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as archive:
        for member in members:
            when = time.gmtime(member.mtime)[:6]
            when = max(when, ZIP_EPOCH)
            if member.source is None:
                info = zipfile.ZipInfo(member.name + "/", when)
                info.external_attr = (stat.S_IFDIR | 0o755) << 16 | 0x10
                info.create_system = 3
                archive.writestr(info, b"")
                continue
            info = zipfile.ZipInfo(member.name, when)
            info.external_attr = (stat.S_IFREG | 0o644) << 16
            info.create_system = 3
            info.compress_type = zipfile.ZIP_DEFLATED
            info.file_size = member.size
            with open(member.source, "rb") as stream, archive.open(info, "w", force_zip64=member.size > 2**31) as dest:
                while chunk := stream.read(CHUNK):
                    dest.write(chunk)


def write_bag_tar(bag: Path, raw: BinaryIO) -> None:
    """The bag as the same pax tar ``export --format tar`` writes, to a stream (the
    web UI's download). StorageError for a symbolic link or special file in the bag."""
    _write_tar(bag_members(bag), raw, gz=False)


def write_archive(members: list[_Member], dest: Path, fmt: str) -> None:
    """Write ``members`` to ``dest`` atomically: temp file beside it, fsync, rename.
    FileExistsError if ``dest`` exists."""
    if fmt not in FORMATS:
        raise UsageError(f"unknown archive format {fmt!r}; use tar, tar.gz or zip")
    tmp = dest.parent / f"{TMP_PREFIX}{dest.name}-{uuid.uuid4().hex[:12]}"
    try:
        with open(tmp, "xb") as raw:
            if fmt == "zip":
                _write_zip(members, raw)
            else:
                _write_tar(members, raw, fmt == "tar.gz")
            raw.flush()
            os.fsync(raw.fileno())
        os.link(tmp, dest)  # fails if dest exists: never overwrite
        os.unlink(tmp)
        fsync_path(dest.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def export_bag(bag: Path, out: Path, fmt: str, name: str | None = None,
               on_progress: Callable[..., None] | None = None, profiles: list[Any] | None = None) -> ExportResult:
    """Serialise one bag folder into ``out``; the archive is verified in place (RFC 8493
    and ``profiles``) before it is given its final name. ``name``: the bag name to use
    (default the folder's)."""
    from archiver.exchange.check import verify_any

    name = name or bag.name
    archive = out / f"{name}{FORMATS.get(fmt, '')}"
    if fmt not in FORMATS:
        raise UsageError(f"unknown archive format {fmt!r}; use tar, tar.gz or zip")
    if archive.exists():
        return ExportResult(name, archive, "exists")
    members = bag_members(bag, name)
    staged = out / f"{TMP_PREFIX}check-{uuid.uuid4().hex[:12]}{FORMATS[fmt]}"
    try:
        write_archive(members, staged, fmt)
        report = verify_any(ArchiveSource(str(archive), fmt, lambda: open(staged, "rb"), None), "full",
                            None, on_progress, profiles)
        if not report.valid:
            return ExportResult(name, archive, "failed", report.files, report.bytes,
                                [p.to_dict() for p in report.problems])
        try:
            os.link(staged, archive)
        except FileExistsError:
            return ExportResult(name, archive, "exists")
        fsync_path(out)
        return ExportResult(name, archive, "exported", report.files, report.bytes)
    finally:
        staged.unlink(missing_ok=True)

