"""Reading the files of a bag, wherever it lives.

``verify`` sees a bag only through the ``BagReader`` protocol: a list of the
bag's files and a way to open one. ``LocalBag`` is the on-disk reader; the
mirror's ``S3Bag`` implements the same protocol so a bag on object storage is
verified in place, streaming.

``LocalBag`` never follows a symbolic link and never opens anything outside the
bag: a symlink is listed (``is_symlink=True``) but not descended into or
opened, and ``open`` refuses any path that is not a plain relative path inside
the bag, opening each folder of the path with ``O_NOFOLLOW`` from the bag's root.

    >>> bag = LocalBag(Path("bags/essay-20261125T093000Z"))
    >>> [f.path for f in bag.list_files()][:2]
    ['bag-info.txt', 'bagit.txt']
"""

from __future__ import annotations

import os
import stat
from operator import attrgetter
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator, Protocol, runtime_checkable

from archiver.errors import StorageError

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_BINARY = getattr(os, "O_BINARY", 0)


@dataclass(frozen=True)
class FileEntry:
    """One file of a bag. ``path`` is POSIX, relative to the bag root."""

    path: str
    size: int
    is_symlink: bool = False


@runtime_checkable
class BagReader(Protocol):
    """What ``verify`` needs from a bag. Optional extra: ``is_dir(path) -> bool``
    (an object store has no empty folders, so readers without it are judged by
    their file list alone)."""

    location: str

    def list_files(self) -> list[FileEntry]:
        """Every file of the bag, recursive. StorageError if the bag cannot be listed."""
        ...

    def open(self, path: str) -> BinaryIO:
        """A binary stream of one file. FileNotFoundError if absent; StorageError otherwise."""
        ...


def split_safe_relpath(path: str) -> list[str]:
    """The components of a plain relative POSIX path, or ValueError.

    Plain means: not empty, not absolute, no backslash or NUL, and no empty,
    ``.`` or ``..`` component. The verifier reports unsafe manifest paths with
    their own codes; this is the last line of defence in the reader.
    """
    if not path or path.startswith("/") or "\\" in path or "\x00" in path:
        raise ValueError(f"not a plain relative path: {path!r}")
    parts = path.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise ValueError(f"not a plain relative path: {path!r}")
    return parts


class LocalBag:
    """A bag in a folder on a local filesystem."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.location = str(self.path)

    def list_files(self, sizes: bool = True) -> list[FileEntry]:
        """Every file below the bag root, sorted; symlinks are listed, never followed.
        ``sizes=False``: size -1, no stat per file (see ``iter_tree``)."""
        entries: list[FileEntry] = []
        try:
            root_stat = os.stat(self.path)
        except OSError as exc:
            raise StorageError(f"cannot read bag {self.path}: {exc.strerror}") from exc
        if not stat.S_ISDIR(root_stat.st_mode):
            raise StorageError(f"bag {self.path} is not a folder")
        entries.extend(iter_tree(self.path, sizes=sizes))
        entries.sort(key=attrgetter("path"))
        return entries

    def is_dir(self, path: str) -> bool:
        try:
            parts = split_safe_relpath(path)
        except ValueError:
            return False
        current = self.path
        for part in parts:
            current = current / part
            try:
                mode = os.lstat(current).st_mode
            except OSError:
                return False
            if not stat.S_ISDIR(mode):
                return False
        return True

    def open(self, path: str) -> BinaryIO:
        try:
            parts = split_safe_relpath(path)
        except ValueError as exc:
            raise StorageError(f"refusing to open {path!r} in {self.path}: {exc}") from exc
        fd = open_beneath(self.path, parts)
        return os.fdopen(fd, "rb")


def open_beneath(root: Path, parts: list[str]) -> int:
    """Open ``root/parts...`` read-only without following any symlink on the way.

    Returns a file descriptor of a regular file. FileNotFoundError if a
    component is absent; StorageError for a symlink, a special file or any
    other failure."""
    dir_fd = None
    try:
        try:
            dir_fd = os.open(root, os.O_RDONLY | _DIRECTORY)
            for part in parts[:-1]:
                next_fd = os.open(part, os.O_RDONLY | _DIRECTORY | _NOFOLLOW, dir_fd=dir_fd)
                os.close(dir_fd)
                dir_fd = next_fd
            # O_NONBLOCK: a FIFO planted in a bag must not hang the verifier.
            fd = os.open(parts[-1], os.O_RDONLY | _NOFOLLOW | _NONBLOCK | _BINARY, dir_fd=dir_fd)
        except FileNotFoundError:
            raise
        except OSError as exc:
            where = "/".join(parts)
            raise StorageError(f"cannot open {where} in {root}: {exc.strerror}"
                               " (a symbolic link is never followed)") from exc
    finally:
        if dir_fd is not None:
            os.close(dir_fd)
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise StorageError(f"{'/'.join(parts)} in {root} is not a regular file")
    os.set_blocking(fd, True)
    return fd


def iter_tree(root: Path, prefix: str = "", sizes: bool = True) -> Iterator[FileEntry]:
    """Yield a FileEntry for every non-folder below ``root``, depth first.

    Streams: memory stays flat however many files there are. Symlinks (to
    files or folders) are yielded with ``is_symlink=True`` and not descended.
    With ``sizes=False`` no file is stat'ed (size -1): the folder entries'
    types suffice, and whoever opens the files learns their sizes.
    A folder that cannot be listed raises StorageError."""
    stack = [(Path(root), prefix)]
    while stack:
        folder, rel = stack.pop()
        try:
            with os.scandir(folder) as it:
                for entry in it:
                    name = entry.name
                    entry_rel = f"{rel}{name}"
                    try:
                        if entry.is_symlink():
                            yield FileEntry(entry_rel, entry.stat(follow_symlinks=False).st_size, True)
                        elif entry.is_dir(follow_symlinks=False):
                            stack.append((Path(entry.path), entry_rel + "/"))
                        else:
                            yield FileEntry(entry_rel, entry.stat(follow_symlinks=False).st_size if sizes else -1)
                    except OSError as exc:
                        raise StorageError(f"cannot read {entry.path}: {exc.strerror}") from exc
        except OSError as exc:
            raise StorageError(f"cannot list {folder}: {exc.strerror}") from exc
