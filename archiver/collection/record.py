"""The capture record: the layout of an archiver bag, read and written here only.

An archiver bag is a BagIt bag (``archiver.bagit``) whose payload is::

    data/text.txt                 the canonical text
    data/metadata.json            one JSON object: what was captured, when, how
    data/capture.warc.gz          the raw capture
    data/attachments/<name>       download formats captured with the page (optional)

and whose ``bag-info.txt`` carries the labels in ``INFO_LABELS`` (``write_bag``
adds Bagging-Date, Bag-Software-Agent and Payload-Oxum). The snapshot writer,
the catalogue, the recovery of unlogged bags and ``rebuild`` all go through
``CaptureRecord``.

Reading uses the safe bag reader only (``LocalBag``): no symbolic link is ever
followed and nothing outside the bag is opened. A bag that holds a symbolic
link anywhere, is itself a link, or lacks a readable text or metadata object
is ``DamagedCapture`` with the reason; no byte of it is trusted.

Writing builds the bag with ``write_bag`` in a private temporary folder of the
root, then moves it to the first free name of ``base``, ``base-2``, ``base-3``…
with a rename that never replaces anything (``renameat2(RENAME_NOREPLACE)``;
where the filesystem lacks it, the name is claimed with ``mkdir`` first), so
two processes writing same-named bags at once both succeed under distinct names.

    >>> record = CaptureRecord.read(Path("bags/essay-20261125T093000Z"))
    >>> record.url, record.text[:7]
    ('https://example.org/essay', b'Title: ')
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import shutil
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path
from typing import Any, Callable, Mapping

from archiver.bagit.reader import BagReader, LocalBag
from archiver.bagit.parse import parse_oxum
from archiver.bagit.write import write_bag
from archiver.collection.root import remote_of
from archiver.durable import fsync_path, make_temp_dir, release_temp_dir, renamed_held_dir
from archiver.errors import ArchiverError, StorageError

TEXT = "data/text.txt"
METADATA = "data/metadata.json"
WARC = "data/capture.warc.gz"
ATTACHMENTS = "data/attachments/"
BAG_INFO = "bag-info.txt"
# bag-info.txt labels archiver writes, in order; the last two are read back by ``rebuild``.
INFO_LABELS = ("Source-Organization", "External-Identifier", "External-Description",
               "Bag-Group-Identifier", "Source-URL", "Retrieval-Date")
MAX_NAME_TRIES = 10_000


class DamagedCapture(ArchiverError):
    """A bag cannot be read as a capture (a symbolic link, a missing or malformed
    text or metadata file…). It is a finding about the bag, so exit 1."""

    exit_code = 1


class ForeignBag(DamagedCapture):
    """A sound bag made elsewhere (ingested): no ``data/metadata.json`` of archiver's,
    but a bag-info.txt. Not a capture; listed by its bag-info."""

    def __init__(self, message: str, bag_info: Mapping[str, str]) -> None:
        super().__init__(message)
        self.bag_info = bag_info


@dataclass(frozen=True)
class CaptureRecord:
    """One archiver bag's content. ``name`` is its folder's name once read or written."""

    metadata: dict[str, Any]
    text: bytes
    warc: bytes = b""                                           # empty when read without it
    attachments: Mapping[str, bytes] = field(default_factory=dict)  # path under data/ -> bytes
    bag_info: Mapping[str, str] = field(default_factory=dict)   # first value of each label
    name: str | None = None

    # ------------------------------------------------------------------ writing

    @classmethod
    def new(cls, metadata: dict[str, Any], text: bytes, warc: bytes, *, organization: str,
            collection_id: str, attachments: Mapping[str, bytes] | None = None) -> "CaptureRecord":
        """A record to write; its bag-info elements come from the metadata."""
        url = str(metadata.get("url") or "")
        info = dict(zip(INFO_LABELS, (
            organization, url, str(metadata.get("title") or metadata.get("final_url") or url),
            collection_id, url, str(metadata.get("retrieved") or ""))))
        for path in attachments or {}:
            if not f"data/{path}".startswith(ATTACHMENTS):
                raise ValueError(f"an attachment goes under {ATTACHMENTS}, not {path!r}")
        return cls(metadata, text, warc, dict(attachments or {}), info)

    def payload(self) -> dict[str, bytes]:
        """The bag's payload, by path under ``data/``."""
        return {
            TEXT.removeprefix("data/"): self.text,
            METADATA.removeprefix("data/"): (json.dumps(self.metadata, ensure_ascii=False, indent=1)
                                             + "\n").encode("utf-8"),
            WARC.removeprefix("data/"): self.warc,
            **self.attachments,
        }

    def write(self, root: Path, base_name: str, *, keep_held: bool = False,
              before_publish: Callable[[Path], None] | None = None) -> Path:
        """Write this record as a new bag in ``root`` under the first free name of
        ``base_name``, ``base_name-2``…; return its folder. StorageError when it
        cannot be written; nothing is left behind then. ``keep_held``: see ``write_bag``
        (the caller releases the bag with ``durable.release_temp_dir``).
        ``before_publish(folder)`` runs on the complete bag before it takes its name
        (an RFC 3161 time-stamp token: a tag file the tag manifests cannot list)."""
        root = Path(root)
        info = [(label, self.bag_info[label]) for label in INFO_LABELS if label in self.bag_info]
        try:
            staging = make_temp_dir(root, "record")
        except OSError as exc:
            raise StorageError(f"cannot create a temporary folder in {root}: {exc.strerror}") from exc
        final: Path | None = None
        try:
            built = write_bag(staging, base_name, self.payload(), info, keep_held=True,
                              before_publish=before_publish)
            remote = remote_of(root)
            published: str | None = None
            try:
                if remote is not None:
                    # A remote collection (S3) names the bag; the working root is private.
                    published = remote.publish(built, base_name)
                    final = root / published
                    rename_no_replace(built, final)
                else:
                    final = _move_to_free_name(built, root, base_name)
                renamed_held_dir(built, final)
                fsync_path(root)
            except BaseException:
                release_temp_dir(built)
                if final is not None:
                    release_temp_dir(final)
                if remote is not None and published is not None:
                    remote.release(published)
                raise
        except OSError as exc:
            raise StorageError(f"cannot write bag {base_name} in {root}: {exc.strerror or exc}") from exc
        finally:
            shutil.rmtree(staging, ignore_errors=True)
            release_temp_dir(staging)
        assert final is not None
        if not keep_held:
            release_written(root, final)
        return final

    # ------------------------------------------------------------------ reading

    @classmethod
    def read(cls, bag_dir: Path, *, text: bool = True, warc: bool = False) -> "CaptureRecord":
        """Read a bag through the safe reader: metadata and bag-info always, the text
        and the WARC when asked. DamagedCapture (with the reason) for a bag that is
        not a sound capture; no file outside the bag is ever opened."""
        bag_dir = Path(bag_dir)
        if os.path.islink(bag_dir):
            raise DamagedCapture(f"{bag_dir.name}: the bag folder is a symbolic link (never followed)")
        return cls.read_from(LocalBag(bag_dir), bag_dir.name, text=text, warc=warc)

    @classmethod
    def read_from(cls, reader: BagReader, name: str, *, text: bool = True,
                  warc: bool = False) -> "CaptureRecord":
        """``read`` through any bag reader (a bag on S3: ``archiver.replication.s3.S3Bag``)."""
        try:
            entries = reader.list_files(sizes=False) if isinstance(reader, LocalBag) else reader.list_files()
            links = [entry.path for entry in entries if entry.is_symlink]
            present = {entry.path for entry in entries}
        except StorageError as exc:
            raise DamagedCapture(f"{name}: {exc}") from exc
        if links:
            more = f" (and {len(links) - 1} more)" if len(links) > 1 else ""
            raise DamagedCapture(f"{name}: {links[0]} is a symbolic link{more}; archiver never follows "
                                 "a link out of a bag, so the bag is not read")
        if not present & {METADATA, TEXT, WARC}:
            # None of a capture's files: a bag made elsewhere, not a damaged capture.
            raise ForeignBag(f"{name}: not an archiver capture (no {METADATA}); a bag made elsewhere",
                             parse_bag_info(_read(reader, name, BAG_INFO)))
        try:
            metadata = json.loads(_read(reader, name, METADATA))
        except (ValueError, RecursionError) as exc:  # RecursionError: absurdly deep nesting
            raise DamagedCapture(f"{name}: {METADATA} is not valid JSON ({exc})") from exc
        if not isinstance(metadata, dict):
            raise DamagedCapture(f"{name}: {METADATA} is not a JSON object")
        try:
            info_bytes = _read(reader, name, BAG_INFO)
        except DamagedCapture:
            info_bytes = b""  # a convenience here; verify reports a missing bag-info.txt
        return cls(metadata,
                   _read(reader, name, TEXT) if text else b"",
                   _read(reader, name, WARC) if warc else b"",
                   {}, parse_bag_info(info_bytes), name)

    # ------------------------------------------------------------------ what it says

    @property
    def url(self) -> str | None:
        url = self.metadata.get("url")
        return None if url is None else str(url)

    @property
    def organization(self) -> str | None:
        return self.bag_info.get("Source-Organization")

    @property
    def collection_id(self) -> str | None:
        return self.bag_info.get("Bag-Group-Identifier")

    @property
    def payload_oxum(self) -> tuple[int, int] | None:
        """(octets, files) from bag-info.txt, when present and well formed."""
        return parse_oxum(self.bag_info.get("Payload-Oxum", ""))


def _read(reader: BagReader, name: str, relpath: str) -> bytes:
    try:
        with reader.open(relpath) as stream:
            return stream.read()
    except FileNotFoundError as exc:
        raise DamagedCapture(f"{name}: {relpath} is missing") from exc
    except (OSError, StorageError) as exc:
        raise DamagedCapture(f"{name}: cannot read {relpath}: {exc}") from exc


def parse_bag_info(data: bytes) -> dict[str, str]:
    """bag-info.txt's first value of each label, for reading what a bag says of
    itself (continuation lines are not needed here; ``verify`` parses strictly)."""
    info: dict[str, str] = {}
    for line in data.decode("utf-8", errors="replace").splitlines():
        label, sep, value = line.partition(":")
        if sep and not line[:1].isspace():
            info.setdefault(label.strip(), value.strip())
    return info


def release_written(root: Path, bag_dir: Path) -> None:
    """Let go of a bag ``write(keep_held=True)`` made, once its capture event is
    logged (a remote collection's claim stops being renewed; its local copy goes)."""
    release_temp_dir(bag_dir)
    remote = remote_of(root)
    if remote is not None:
        remote.release(bag_dir.name)


# --------------------------------------------------------------------------- claiming a name

def _move_to_free_name(built: Path, root: Path, base: str) -> Path:
    """Rename ``built`` to ``root/base`` or the first free ``root/base-N``, never replacing."""
    for n in count(1):
        if n > MAX_NAME_TRIES:
            break
        target = root / (base if n == 1 else f"{base}-{n}")
        try:
            rename_no_replace(built, target)
        except FileExistsError:
            continue
        return target
    raise StorageError(f"no free bag name for {base} in {root} after {MAX_NAME_TRIES} tries")


_RENAME_NOREPLACE = 1
_AT_FDCWD = -100
_libc = ctypes.CDLL(None, use_errno=True)  # the C library this process already has
_renameat2 = getattr(_libc, "renameat2", None)


def rename_no_replace(src: Path, dst: Path) -> None:
    """Rename ``src`` to ``dst``; FileExistsError if ``dst`` exists (even an empty folder).

    ``rename(2)`` replaces an empty folder, so it cannot claim a name by itself.
    ``renameat2(RENAME_NOREPLACE)`` (Linux ≥ 3.15) refuses atomically; where it is
    missing, ``mkdir(dst)`` claims the name first and the rename then replaces
    that empty folder of ours."""
    if _renameat2 is not None:
        result = _renameat2(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), _RENAME_NOREPLACE)
        if result == 0:
            return
        code = ctypes.get_errno()
        if code not in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
            if code == errno.EEXIST:
                raise FileExistsError(code, os.strerror(code), str(dst))
            raise OSError(code, os.strerror(code), str(dst))
    os.mkdir(dst)  # FileExistsError when taken
    try:
        os.rename(src, dst)
    except BaseException:
        os.rmdir(dst)
        raise
