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
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from archiver.durable import TMP_PREFIX, held_by_a_live_writer
from archiver.errors import StorageError

if TYPE_CHECKING:
    from archiver.collection.events import Event

META_DIR = ".archiver"


class RemoteCollection(Protocol):
    """A collection whose bags and events live elsewhere (``s3store.S3CollectionWriter``).

    Such a collection is written through a private local *working root*: bags are
    built there as for a local root, then published by ``publish``; events are
    written by ``append_events`` instead of the local log. Only the few places that
    touch the log, the name of a bag, or the list of bags ask ``remote_of(root)``."""

    location: str
    name: str                                                    # the default collection id

    def publish(self, folder: Path, base: str) -> str: ...      # the bag's name at the collection
    def release(self, name: str) -> None: ...                    # its capture event is logged
    def append_events(self, events: "list[Event]") -> None: ...
    def read_event_lines(self) -> bytes: ...
    def has_bag(self, name: str) -> bool: ...
    def record_unlogged_bags(self) -> list[str]: ...


_remote: dict[str, RemoteCollection] = {}
_remote_guard = threading.Lock()


def bind_remote(root: Path, collection: RemoteCollection | None) -> None:
    """Make the local working folder ``root`` stand for ``collection`` (None: unbind)."""
    with _remote_guard:
        if collection is None:
            _remote.pop(str(Path(root).absolute()), None)
        else:
            _remote[str(Path(root).absolute())] = collection


def collection_name(root: Path) -> str:
    """The default collection id: the root folder's name (a remote collection's own)."""
    remote = remote_of(root)
    return remote.name if remote is not None else Path(root).resolve().name


def remote_of(root: Path | str) -> RemoteCollection | None:
    """The remote collection the working folder ``root`` stands for, if any."""
    if not _remote:
        return None
    with _remote_guard:
        return _remote.get(str(Path(root).absolute()))


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
