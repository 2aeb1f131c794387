"""Reading the entries of a serialised bag (tar, tar.gz, zip) as a stream: each entry
once, in archive order, with its kind (file, dir, link, special) and a safe name.
Nothing is ever extracted to disk; ``archive_reader`` hashes and checks what comes."""

from __future__ import annotations

import gzip
import io
import stat
import tarfile
import zipfile
from dataclasses import dataclass
from functools import partial
from typing import Any, BinaryIO, Callable, Iterator

CHUNK = 1 << 20


@dataclass
class _Entry:
    name: str
    kind: str          # file, dir, link, special
    size: int
    stream: Callable[[], Any]
    packed: int = 0    # zip: the entry's compressed size (for the bomb guard)


class _Counting(io.RawIOBase):
    """Counts the compressed bytes read, for the bomb guard."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        readinto = getattr(self.raw, "readinto", None)
        if readinto is not None:
            n = readinto(buffer) or 0
        else:  # an S3 body: read() only
            data = self.raw.read(len(buffer))
            n = len(data)
            buffer[:n] = data
        self.count += n
        return n

    def close(self) -> None:
        self.raw.close()
        super().close()


def open_tar_stream(raw: BinaryIO, gz: bool) -> tuple[tarfile.TarFile, BinaryIO]:
    """A streaming tar reader, and the (decompressed) stream under it. gzip is read by
    ``gzip.GzipFile``, which checks the trailer's CRC and length: drain the stream
    (``drain``) after the last entry so a damaged or cut end is noticed."""
    stream: BinaryIO = gzip.GzipFile(fileobj=raw, mode="rb") if gz else raw  # type: ignore[assignment]
    return tarfile.open(fileobj=stream, mode="r|", bufsize=CHUNK), stream


def drain(stream: BinaryIO) -> None:
    while stream.read(CHUNK):
        pass


def _tar_entries(raw: BinaryIO, gz: bool) -> Iterator[_Entry]:
    tar, stream = open_tar_stream(raw, gz)
    with tar:
        for member in tar:
            if member.isreg():
                yield _Entry(member.name, "file", member.size, partial(tar.extractfile, member))
            elif member.isdir():
                yield _Entry(member.name, "dir", 0, lambda: None)
            elif member.issym() or member.islnk():
                yield _Entry(member.name, "link", 0, lambda: None)
            else:
                yield _Entry(member.name, "special", 0, lambda: None)
    drain(stream)


def _zip_entries(raw: BinaryIO) -> Iterator[_Entry]:
    with zipfile.ZipFile(raw) as archive:
        for info in archive.infolist():
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                yield _Entry(info.filename, "link", 0, lambda: None)
            elif info.is_dir():
                yield _Entry(info.filename, "dir", 0, lambda: None)
            elif mode and not stat.S_ISREG(mode):
                yield _Entry(info.filename, "special", 0, lambda: None)
            else:
                yield _Entry(info.filename, "file", info.file_size, partial(archive.open, info),
                             info.compress_size)


def _clean_name(name: str) -> str | None:
    """The entry's path with ``./`` prefixes and trailing ``/`` dropped; None if unsafe."""
    # a backslash is an ordinary character in a POSIX name (a manifest listing it is path-unsafe)
    if name.startswith("/") or "\x00" in name or (len(name) > 1 and name[1] == ":" and name[0].isalpha()):
        return None
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        return None
    return "/".join(parts)
