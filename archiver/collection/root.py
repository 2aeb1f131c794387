"""A collection root: a folder of bags plus ``.archiver/`` (event log, catalogue).

Bags are built in temporary folders named ``.tmp-*`` inside the root, on the
same filesystem, and renamed into place when complete and fsynced. Anything
named ``.tmp-*`` is by definition unfinished; ``open_collection`` removes it,
unless a live process holds it: ``make_temp_dir`` keeps a shared flock on the
folder until ``release_temp_dir``, so a second run on the same root never
deletes the bag a first run is still building (a crashed run's lock is gone).
"""

from __future__ import annotations

import os
import shutil
import threading
import uuid
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no protection for live temporary folders
    fcntl = None  # type: ignore[assignment]

from archiver.errors import StorageError

TMP_PREFIX = ".tmp-"
META_DIR = ".archiver"


def open_collection(root: Path | str, *, create: bool = True, clean: bool = True) -> Path:
    """Check (and create) a writable collection root; remove crash leftovers.

    Raises StorageError (exit 3) when the root is not a directory or not writable.
    """
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise StorageError(f"collection root {root} is not a directory")
    if not root.exists():
        if not create:
            raise StorageError(f"collection root {root} does not exist")
        try:
            root.mkdir(parents=True)
        except OSError as exc:
            raise StorageError(f"cannot create collection root {root}: {exc.strerror}") from exc
    if not os.access(root, os.W_OK | os.X_OK):
        raise StorageError(f"collection root {root} is not writable")
    try:
        (root / META_DIR).mkdir(exist_ok=True)
    except OSError as exc:
        raise StorageError(f"cannot create {root / META_DIR}: {exc.strerror}") from exc
    if clean:
        remove_leftovers(root)
    return root


def remove_leftovers(root: Path) -> list[Path]:
    """Remove temporary folders a crashed run left in ``root``; return them.
    A folder a live process still holds (see ``make_temp_dir``) is left alone."""
    removed = []
    for entry in root.iterdir():
        if entry.name.startswith(TMP_PREFIX):
            if entry.is_dir() and not entry.is_symlink():
                if _held_by_a_live_writer(entry):
                    continue
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


_held_temp_dirs: dict[str, int] = {}  # temporary folder -> descriptor holding its shared flock
_held_guard = threading.Lock()


def make_temp_dir(root: Path, label: str) -> Path:
    """A new ``.tmp-<label>-*`` folder in ``root``, with the mode ``mkdir`` gives (umask
    applied), not mkdtemp's 0700: it becomes a bag by rename and keeps its mode.
    It is held (flock) until ``release_temp_dir``, or until this process ends."""
    for _ in range(100):
        path = Path(root) / f"{TMP_PREFIX}{label}-{uuid.uuid4().hex[:12]}"
        try:
            path.mkdir()
        except FileExistsError:
            continue
        if fcntl is not None:
            fd = os.open(path, os.O_RDONLY)
            fcntl.flock(fd, fcntl.LOCK_SH)
            with _held_guard:
                _held_temp_dirs[str(path)] = fd
        return path
    raise FileExistsError(f"no free temporary name in {root}")  # pragma: no cover


def release_temp_dir(path: Path) -> None:
    """Let go of a folder from ``make_temp_dir`` (renamed into place, or removed)."""
    with _held_guard:
        fd = _held_temp_dirs.pop(str(path), None)
    if fd is not None:
        os.close(fd)


def renamed_held_dir(old: Path, new: Path) -> None:
    """A held folder was renamed (the lock follows the folder, not its name)."""
    with _held_guard:
        fd = _held_temp_dirs.pop(str(old), None)
        if fd is not None:
            _held_temp_dirs[str(new)] = fd


def held_by_a_live_writer(folder: Path) -> bool:
    """True when a live process still holds ``folder`` (a temporary folder being built,
    or a bag just renamed into place whose capture event is not written yet)."""
    return _held_by_a_live_writer(folder)


def _held_by_a_live_writer(folder: Path) -> bool:
    if fcntl is None:  # pragma: no cover
        return False
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)
    return False


def fsync_path(path: Path) -> None:
    """fsync a file, or a folder (so a rename or new entry in it is durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


fsync_dir = fsync_file = fsync_path


def fsync_tree(path: Path) -> None:
    """fsync every file and folder below ``path``, folders after their contents."""
    for dirpath, _dirnames, filenames in os.walk(path, topdown=False):
        for name in filenames:
            fsync_file(Path(dirpath) / name)
        fsync_dir(Path(dirpath))


def is_bag_dir(path: Path) -> bool:
    return path.is_dir() and (path / "bagit.txt").is_file()


def list_bag_dirs(root: Path) -> list[Path]:
    """Bag folders directly under ``root`` (skipping ``.archiver`` and ``.tmp-*``).
    StorageError (exit 3) when the root cannot be listed."""
    if not root.is_dir():
        return []
    try:
        return sorted(
            p for p in root.iterdir()
            if not p.name.startswith(".") and is_bag_dir(p)
        )
    except OSError as exc:
        raise StorageError(f"cannot list collection root {root}: {exc.strerror}") from exc
