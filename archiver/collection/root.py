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
from pathlib import Path

from archiver.durable import TMP_PREFIX, held_by_a_live_writer
from archiver.errors import StorageError

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
                if held_by_a_live_writer(entry):
                    continue
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


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
