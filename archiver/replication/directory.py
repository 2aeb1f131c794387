"""A site that is a directory: the home collection, another disk, a mounted share.

A bag is copied into ``<target>/<bag>.partial``, each file written to a
temporary name, fsynced and renamed; when every file is there the folders are
fsynced and ``<bag>.partial`` is renamed to ``<bag>``. To change a bag that
is already at the target, its receipt is removed first and the bag is renamed
back to ``<bag>.partial``: a reader of the target never sees a bag in an
in-between state under its final name, and never a receipt for one.
"""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path
from typing import BinaryIO, Callable

from archiver.bagit.reader import BagReader, LocalBag, iter_tree, split_safe_relpath
from archiver.bagit.verify import find_bags, looks_like_bag
from archiver.collection.events import Event, append_events
from archiver.collection.root import is_bag_dir
from archiver.durable import fsync_dir, fsync_file
from archiver.errors import StorageError, TargetUnreachable
from archiver.replication.lock import DirectoryLock, MirrorLock
from archiver.replication.plan import SourceBag, TargetBagState
from archiver.replication.site import Site
from archiver.replication.target import EVENTS_FILE, PARTIAL_SUFFIX, RECEIPTS_DIR, joined_lines

CHUNK = 1 << 20
TMP_SUFFIX = ".mirror-tmp"
STAGING_DIR = ".archiver/staging"


class DirectorySite:
    """``archiver.replication.site.Site`` for a folder on a filesystem."""

    parallel_planning = True

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.location = str(self.root)
        self._entries: set[str] | None = None
        self._receipts: set[str] | None = None

    # -- reachability ---------------------------------------------------------------
    def check_reachable(self) -> None:
        if not self.root.parent.is_dir():
            # Never create a whole path: a share that is not mounted must not
            # turn into a folder on the local disk.
            raise TargetUnreachable(f"target {self.root}: {self.root.parent} does not exist "
                                    "(is the disk or share mounted?)")
        try:
            self.root.mkdir(exist_ok=True)
            (self.root / RECEIPTS_DIR).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TargetUnreachable(f"target {self.root} cannot be created or written: "
                                    f"{exc.strerror or exc}") from exc
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise TargetUnreachable(f"target {self.root} is not writable")

    def check_readable(self) -> None:
        if not self.root.is_dir():
            raise StorageError(f"{self.root} is not a directory")
        try:
            os.listdir(self.root)  # an unreadable copy is "could not run" (exit 3), not "no copy" per bag
        except OSError as exc:
            raise StorageError(f"cannot read {self.root}: {exc.strerror}") from exc

    # -- reading state ----------------------------------------------------------------
    def _final(self, name: str) -> Path:
        return self.root / name

    def _partial(self, name: str) -> Path:
        return self.root / (name + PARTIAL_SUFFIX)

    def _receipt(self, name: str) -> Path:
        return self.root / RECEIPTS_DIR / f"{name}.json"

    def scan(self) -> None:
        """Note once which bags, partial bags and receipts exist (a no-op
        re-mirror of 10,000 bags should not stat each of them three times)."""
        try:
            self._entries = set(os.listdir(self.root))
            self._receipts = {
                n[:-5] for n in os.listdir(self.root / RECEIPTS_DIR) if n.endswith(".json")}
        except OSError as exc:
            raise TargetUnreachable(f"cannot list target {self.root}: {exc.strerror}") from exc

    def state(self, source: SourceBag) -> TargetBagState | None:
        entries = self._entries
        name = source.name
        if entries is not None:
            folder = (os.path.join(self.root, name) if name in entries else
                      os.path.join(self.root, name + PARTIAL_SUFFIX) if name + PARTIAL_SUFFIX in entries
                      else None)
        else:
            final, partial = self._final(name), self._partial(name)
            folder = str(final) if final.is_dir() else str(partial) if partial.is_dir() else None
        if folder is None or os.path.islink(folder):
            return None  # a link planted at the target is not a copy of the bag (begin() removes it)
        try:
            files = file_sizes(folder)
        except OSError as exc:
            raise StorageError(f"cannot list {folder}: {exc.strerror}") from exc
        identical = all(_same_bytes(os.path.join(folder, path), content)
                        for path, content in source.tagmanifests.items())
        is_final = not folder.endswith(PARTIAL_SUFFIX) or folder == os.path.join(self.root, name)
        receipts = self._receipts
        has_receipt = is_final and (name in receipts if receipts is not None
                                    else self._receipt(name).is_file())
        return TargetBagState(files, has_receipt, identical)

    def listing(self, name: str) -> dict[str, int]:
        final = self._final(name)
        return {entry.path: entry.size for entry in iter_tree(final)} if final.is_dir() else {}

    def mirror_lock(self, lease: float) -> MirrorLock:
        return DirectoryLock(self.root, lease)

    def keeps_receipts(self) -> bool:
        """True when this target is a mirror (it holds at least one receipt)."""
        receipts = self.root / RECEIPTS_DIR
        return receipts.is_dir() and any(receipts.iterdir())

    def reader(self, name: str) -> BagReader:
        return LocalBag(self._final(name))

    def has_receipt(self, name: str) -> bool:
        return self._receipt(name).is_file()

    def bag_names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir()
                      if not p.name.startswith(".") and not p.name.endswith(PARTIAL_SUFFIX)
                      and p.is_dir() and not p.is_symlink())

    def is_bag(self) -> bool:
        """True when the target path is itself a single bag."""
        return is_bag_dir(self.root)

    def bag_readers(self) -> list[BagReader]:
        return [LocalBag(path) for path in find_bags(self.root)]

    def locate_bag(self) -> tuple[Site, str] | None:
        if looks_like_bag(self.root):
            return DirectorySite(self.root.parent), self.root.name
        return None

    # -- changing -----------------------------------------------------------------------
    def begin(self, name: str) -> None:
        final, partial = self._final(name), self._partial(name)
        try:
            self.delete_receipt(name)
            # Never write through a symlink planted at the target: remove the
            # link itself (what it points to is left alone), and start afresh
            # from any copy that holds a link somewhere inside.
            for folder in (final, partial):
                if folder.is_symlink():
                    folder.unlink()
                elif folder.is_dir() and _holds_symlink(folder):
                    shutil.rmtree(folder)
            if final.is_dir():
                if partial.exists():
                    shutil.rmtree(partial)
                os.rename(final, partial)
                fsync_dir(self.root)
            else:
                partial.mkdir(exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot prepare {partial}: {exc.strerror or exc}") from exc

    def put(self, name: str, path: str, stream: BinaryIO, size: int, sha256: str | None) -> None:
        # Written straight into <bag>.partial (itself the staging area): a file
        # cut short by a kill has the wrong size, or fails the read-back, and
        # is sent again. Durability comes in finish(), once per bag.
        _write(_inside(self._partial(name), path), stream, sync=_SYNCFS is None)

    def delete(self, name: str, path: str) -> None:
        try:
            _inside(self._partial(name), path).unlink(missing_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot remove {path} from {self._partial(name)}: {exc.strerror}") from exc

    def finish(self, name: str) -> None:
        partial, final = self._partial(name), self._final(name)
        try:
            sync_folder(partial)
            os.rename(partial, final)
            fsync_dir(self.root)
        except OSError as exc:
            raise StorageError(f"cannot move {partial} into place: {exc.strerror or exc}") from exc

    def write_receipt(self, name: str, data: bytes) -> None:
        write_atomically(self._receipt(name), io.BytesIO(data))

    def delete_receipt(self, name: str) -> None:
        receipt = self._receipt(name)
        if receipt.exists():
            receipt.unlink()
            fsync_dir(receipt.parent)

    # -- event log ----------------------------------------------------------------------
    def read_event_log(self) -> bytes:
        try:
            return (self.root / EVENTS_FILE).read_bytes()
        except FileNotFoundError:
            return b""
        except OSError as exc:
            raise StorageError(f"cannot read {self.root / EVENTS_FILE}: {exc.strerror}") from exc

    def append_event_lines(self, lines: list[bytes]) -> None:
        if not lines:
            return
        path = self.root / EVENTS_FILE
        data = joined_lines(self.read_event_log(), lines)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise StorageError(f"cannot append to {path}: {exc.strerror}") from exc

    def log_events(self, events: list[Event]) -> None:
        if events:
            append_events(self.root, events)

    # -- repair -------------------------------------------------------------------------
    def _staging(self, name: str) -> Path:
        return self.root / STAGING_DIR / name

    def stage(self, name: str, path: str, stream: BinaryIO) -> None:
        """Write a replacement for ``path`` in the staging area (same filesystem)."""
        _write_synced(_inside(self._staging(name), path), stream)

    def staged_reader(self, name: str) -> BagReader:
        return LocalBag(self._staging(name))

    def swap(self, name: str, path: str) -> None:
        """Atomically replace the bag's file with the staged one."""
        dest = _inside(self._final(name), path)
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self._staging(name) / path, dest)
            fsync_dir(dest.parent)
        except OSError as exc:
            raise StorageError(f"cannot replace {dest}: {exc.strerror}") from exc

    def discard_staging(self, name: str) -> None:
        shutil.rmtree(self._staging(name), ignore_errors=True)


def _inside(folder: Path, path: str) -> Path:
    """``folder/path`` for a plain relative path; StorageError for anything
    that could leave the folder ("../x", "/x", "a//b")."""
    try:
        split_safe_relpath(path)
    except ValueError as exc:
        raise StorageError(f"refusing to write {path!r} under {folder}: {exc}") from exc
    return folder / path


def _holds_symlink(folder: Path) -> bool:
    try:
        file_sizes(str(folder), allow_symlinks=False)
    except IsADirectoryError:
        return True
    return False


def _same_bytes(path: str, content: bytes) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(len(content) + 1) == content
    except OSError:
        return False


def file_sizes(folder: str, allow_symlinks: bool = True) -> dict[str, int]:
    """Size of every file below ``folder`` (POSIX relative paths); symlinks are
    never followed (listed with their own size, or refused). Lean on purpose:
    this runs twice per bag on every re-mirror."""
    sizes: dict[str, int] = {}
    stack = [(folder, "")]
    while stack:
        path, rel = stack.pop()
        with os.scandir(path) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    stack.append((entry.path, f"{rel}{entry.name}/"))
                    continue
                if not allow_symlinks and entry.is_symlink():
                    raise IsADirectoryError(0, "a symbolic link", entry.path)
                sizes[rel + entry.name] = entry.stat(follow_symlinks=False).st_size
    return sizes


def _write(path: Path, stream: BinaryIO, sync: bool = True) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as out:
            while chunk := stream.read(CHUNK):
                out.write(chunk)
            out.flush()
            if sync:
                os.fsync(out.fileno())
    except OSError as exc:
        raise StorageError(f"cannot write {path}: {exc.strerror or exc}") from exc


def _write_synced(path: Path, stream: BinaryIO) -> None:
    _write(path, stream, sync=True)


def _load_syncfs() -> Callable[[int], int] | None:
    """Linux's syncfs(2): one call makes every file written below a folder
    durable (one journal commit instead of an fsync per file), or None."""
    try:
        import ctypes
        import ctypes.util

        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.syncfs
    except (OSError, AttributeError):
        return None


_SYNCFS = _load_syncfs()


def sync_folder(folder: Path) -> None:
    """Make every file and folder below ``folder`` durable: syncfs where
    there is one, else an fsync of each file and folder, deepest first."""
    if _SYNCFS is not None:
        fd = os.open(folder, os.O_RDONLY)
        try:
            if _SYNCFS(fd) == 0:
                return
        finally:
            os.close(fd)
    for dirpath, _dirs, files in os.walk(folder, topdown=False):
        for file in files:
            fsync_file(Path(dirpath) / file)
        fsync_dir(Path(dirpath))


def write_atomically(dest: Path, stream: BinaryIO) -> None:
    """Write to a temporary name beside ``dest``, fsync, rename over ``dest``."""
    tmp = dest.with_name(f".{dest.name}{TMP_SUFFIX}")
    _write_synced(tmp, stream)
    try:
        os.replace(tmp, dest)
    except OSError as exc:
        raise StorageError(f"cannot rename {tmp} to {dest}: {exc.strerror}") from exc


DirectoryTarget = DirectorySite  # the name mirror's callers and tests know
