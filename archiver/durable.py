"""Durable writes: temporary folders held by a live writer, and fsync.

Everything archiver writes is built in a temporary place, fsynced, then
renamed into place. A temporary folder ``.tmp-*`` is held with a shared flock
until ``release_temp_dir``, so another process can tell a live writer's work
from a crashed one's leftovers (``held_by_a_live_writer``).
"""

from __future__ import annotations

import os
import threading
import uuid
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no protection for live temporary folders
    fcntl = None  # type: ignore[assignment]

TMP_PREFIX = ".tmp-"

_held_temp_dirs: dict[str, int] = {}  # temporary folder -> descriptor holding its shared flock
_held_guard = threading.Lock()


def _forget_held_in_child() -> None:
    """In a forked child: close the descriptors holding this process's folders.

    A flock belongs to the open file description, which ``fork`` shares: a child
    forked while another thread held a bag (a process pool, a hashing pool) would
    keep that bag "held" after its writer ended or was killed, so the next run
    would never record it and would capture its text again into a second bag.
    The child is never the writer of those folders."""
    global _held_guard
    _held_guard = threading.Lock()  # the parent's guard may have been taken by another thread
    for fd in _held_temp_dirs.values():
        try:
            os.close(fd)
        except OSError:  # pragma: no cover
            pass
    _held_temp_dirs.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_held_in_child)


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
