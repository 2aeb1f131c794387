"""Mirroring the serialised bags of a collection (``<root>/*.tar|.tar.gz|.tgz|.zip``).

An archive is copied as one file: to a directory target through a temporary
name, fsynced, renamed; to S3 as one object carrying its SHA-256. With
``verify`` the copy is then read back in place: its SHA-256 must equal the
source's and ``verify_archive`` must find it a valid bag; a copy that fails is
removed and the bag reported ``failed``. A copy already there with the same
SHA-256 is ``present``. An archive whose own verification fails is not sent.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path
from typing import Any, BinaryIO, Callable

from archiver.durable import TMP_PREFIX, fsync_path
from archiver.errors import StorageError
from archiver.exchange.archive_reader import CHUNK, ArchiveSource, archive_kind, verify_archive

Result = Any  # archiver.replication.mirror.BagResult (imported lazily: no cycle)


def collection_archives(root: Path) -> list[Path]:
    """Archives directly in the collection root (not hidden, regular files)."""
    return sorted(p for p in Path(root).iterdir()
                  if not p.name.startswith(".") and archive_kind(p.name) and p.is_file() and not p.is_symlink())


def _sha256(open_stream: Callable[[], BinaryIO]) -> str:
    digest = hashlib.sha256()
    with open_stream() as stream:
        while chunk := stream.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def mirror_archives(root: Path, target: Any, verify: bool = True) -> list[Result]:
    from archiver.replication.mirror import BagResult

    results = []
    for archive in collection_archives(root):
        result = BagResult(archive.name, "failed", "new")
        try:
            _mirror_one(archive, target, verify, result)
        except StorageError as exc:
            result.error = str(exc)
        results.append(result)
    return results


def _mirror_one(archive: Path, target: Any, verify: bool, result: Result) -> None:
    want = _sha256(lambda: open(archive, "rb"))
    copy = _Copy.of(target, archive.name)
    if copy.sha256() == want:
        result.status = result.found = "present"
        return
    source = verify_archive(archive)
    if not source.valid:
        result.error = f"{archive.name} does not verify at the source; not sent (run `archiver verify`)"
        return
    size = archive.stat().st_size
    copy.put(archive, want, size)
    result.files_sent, result.bytes_sent = 1, size
    if not verify:
        result.status = "unverified"
        return
    if copy.sha256() != want or not verify_archive(copy.source()).valid:
        copy.remove()
        result.error = f"the copy of {archive.name} at the target does not verify; removed"
        return
    result.status = "mirrored"


class _Copy:
    @staticmethod
    def of(target: Any, name: str) -> "_Copy":
        if hasattr(target, "objects"):
            return _S3Copy(target, name)
        return _DirCopy(target, name)

    def sha256(self) -> str | None:
        raise NotImplementedError

    def put(self, archive: Path, sha256: str, size: int) -> None:
        raise NotImplementedError

    def source(self) -> ArchiveSource:
        raise NotImplementedError

    def remove(self) -> None:
        raise NotImplementedError


class _DirCopy(_Copy):
    def __init__(self, target: Any, name: str) -> None:
        self.path = Path(target.root) / name

    def sha256(self) -> str | None:
        return _sha256(lambda: open(self.path, "rb")) if self.path.is_file() else None

    def put(self, archive: Path, sha256: str, size: int) -> None:
        tmp = self.path.with_name(f"{TMP_PREFIX}{self.path.name}-{uuid.uuid4().hex[:12]}")
        try:
            with open(archive, "rb") as src, open(tmp, "xb") as dst:
                while chunk := src.read(CHUNK):
                    dst.write(chunk)
                dst.flush()
                os.fsync(dst.fileno())
            os.replace(tmp, self.path)  # a different copy of this name was found: the source wins
            fsync_path(self.path.parent)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise StorageError(f"cannot write {self.path}: {exc.strerror or exc}") from exc

    def source(self) -> ArchiveSource:
        return ArchiveSource.local(self.path)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


class _S3Copy(_Copy):
    def __init__(self, target: Any, name: str) -> None:
        self.objects = target.objects
        self.key = f"{target.prefix}/{name}" if target.prefix else name
        self.kind = archive_kind(name) or "tar"

    def sha256(self) -> str | None:
        try:
            return _sha256(lambda: self.objects.open(self.key))
        except FileNotFoundError:
            return None

    def put(self, archive: Path, sha256: str, size: int) -> None:
        with open(archive, "rb") as stream:
            self.objects.put(self.key, stream, size, sha256)

    def source(self) -> ArchiveSource:
        if self.kind == "zip":  # random access: read it back whole (sha256 already compared)
            import io
            return ArchiveSource(self.objects.url(self.key), "zip",
                                 lambda: io.BytesIO(self.objects.get_bytes(self.key) or b""))
        return ArchiveSource(self.objects.url(self.key), self.kind, lambda: self.objects.open(self.key))

    def remove(self) -> None:
        self.objects.delete(self.key)
