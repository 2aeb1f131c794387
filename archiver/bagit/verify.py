"""Verifying bags strictly by RFC 8493 (and its drafts 0.93 - 0.97).

``verify_bag`` reads a bag through a ``BagReader`` (a local folder, or a bag
on S3) and returns a ``BagReport`` listing *every* problem and warning as
``Problem(code, path, message)`` values with stable codes (``PROBLEM_CODES``,
``WARNING_CODES``). It never raises for a bad bag; StorageError means the bag
could not be read at all, and its subclass ``CannotVerify`` that archiver
refused to read something too large to judge (neither is a verdict).

The steps share one ``BagCheck`` (``archiver.bagit.check``): bagit.txt and
bag-info.txt in ``tagfiles``, manifests, completeness, fetch.txt, names and
checksums in ``checks``, hashing in ``hashing``.

Modes: ``full`` (everything, checksums included), ``completeness`` (everything
but checksums) and ``fast`` (bagit.txt and Payload-Oxum only). Only a ``full``
report that is valid means "verified".

    >>> report = verify_bag(Path("bags/essay-20261125T093000Z"))
    >>> report.valid, [p.code for p in report.problems]
    (True, [])
"""

from __future__ import annotations

import os
from operator import attrgetter
from pathlib import Path
from typing import Callable

from archiver.bagit.check import BagCheck, ProgressCallback
from archiver.bagit.checks import check_contents
from archiver.bagit.hashing import IN_PROCESS_FILES, check_stream, hash_stream
from archiver.bagit.parse import MANIFEST_NAME, TAG_MANIFEST_NAME, ManifestEntry, parse_manifest
from archiver.bagit.reader import BagReader, FileEntry, LocalBag, iter_tree
from archiver.bagit.report import (
    MAX_PER_CODE, PROBLEM_CODES, WARNING_CODES, BagReport, CannotVerify, Collector, Problem,
)
from archiver.bagit.tagfiles import check_bagit_txt, check_oxum, read_bag_info
from archiver.bagit.timestamp import check_stored_token
from archiver.errors import StorageError, UsageError

# parse_manifest, ManifestEntry, check_stream, hash_stream are re-exported for
# the mirror and repair: hash a copy against the original's manifest.
__all__ = [
    "Problem", "BagReport", "CannotVerify", "verify_bag", "find_bags", "looks_like_bag", "PROBLEM_CODES",
    "WARNING_CODES", "MAX_PER_CODE", "MODES", "Collector", "parse_manifest", "ManifestEntry", "check_stream",
    "hash_stream",
]

MODES = ("full", "fast", "completeness")


def verify_bag(bag: Path | str | BagReader, mode: str = "full", processes: int | None = None,
               on_progress: ProgressCallback | None = None, tsa_ca: bytes | None = None) -> BagReport:
    """Check one bag; see the module docstring. StorageError if it cannot be read at all."""
    if mode not in MODES:
        raise UsageError(f"unknown verify mode {mode!r}; use one of {', '.join(MODES)}")
    reader: BagReader = LocalBag(Path(bag)) if isinstance(bag, (str, Path)) else bag
    check = BagCheck(reader, mode, processes, on_progress)
    files = _list_files(check)
    names = None if files is None else set(map(attrgetter("path"), files))
    check_bagit_txt(check, names)
    info = read_bag_info(check, names)
    _check_data_dir(check, files)
    sizes = None
    if files is not None and mode != "fast":
        sizes = check_contents(check, files)
    if files is None:
        _count_payload_streaming(check)  # flat memory whatever the file count
    else:
        _count_payload(check, files, sizes)
    check_oxum(check, info)
    # An RFC 3161 token (tsa_ca: PEM roots to check its signature against), if the bag has one.
    stamp = check_stored_token(reader, tsa_ca, check.out.add, names)
    check.out.finish()
    return BagReport(reader.location, not check.out.problems, mode, check.out.problems, check.out.warnings,
                     check.version, check.payload_files, check.payload_bytes, stamp)


def _list_files(check: BagCheck) -> list[FileEntry] | None:
    reader = check.reader
    if not isinstance(reader, LocalBag):
        return reader.list_files()
    if check.mode == "fast":
        return None  # counted while walking, never held: flat memory
    if check.mode == "full":
        # Many files: skip a stat per file here; the hashing workers stat
        # what they open. Few files: sizes now, to choose pool or not.
        files = reader.list_files(sizes=False)
        if len(files) > IN_PROCESS_FILES:
            return files
    return reader.list_files()


def _count_payload(check: BagCheck, files: list[FileEntry], sizes: dict[str, int] | None) -> None:
    """``sizes``: what hashing learnt, for files listed without one."""
    for entry in files:
        if entry.is_symlink:
            _report_symlink(check, entry)
        elif entry.path.startswith("data/"):
            check.payload_files += 1
            check.payload_bytes += entry.size if entry.size >= 0 or sizes is None else sizes[entry.path]


def _count_payload_streaming(check: BagCheck) -> None:
    reader = check.reader
    assert isinstance(reader, LocalBag)
    if not reader.is_dir("data"):
        return
    for entry in iter_tree(reader.path / "data", "data/"):
        if entry.is_symlink:
            _report_symlink(check, entry)
        else:
            check.payload_files += 1
            check.payload_bytes += entry.size


def _report_symlink(check: BagCheck, entry: FileEntry) -> None:
    check.out.add("symlink-in-bag", entry.path,
                  f"{entry.path} is a symbolic link; archiver never follows links in a bag")


def _check_data_dir(check: BagCheck, files: list[FileEntry] | None) -> None:
    is_dir: Callable[[str], bool] | None = getattr(check.reader, "is_dir", None)
    if is_dir is not None:
        present = is_dir("data")
    else:
        present = any(f.path.startswith("data/") for f in files or [])
    if not present:
        check.out.add("data-dir-missing", "data/", "the bag has no data/ folder (RFC 8493 §2.1.2)")


def find_bags(path: Path, skip: Callable[[str], bool] | None = None) -> list[Path]:
    """``path`` itself if it looks like a bag, else every bag below it (not
    inside bags, no symlinks). ``skip(name)``: folders not to look in (a
    collection's own, e.g. ``.archiver/`` and ``.tmp-*``: the caller knows them)."""
    path = Path(path)
    if looks_like_bag(path):
        return [path]
    found: list[Path] = []
    stack = [path]
    while stack:
        folder = stack.pop()
        try:
            children = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            raise StorageError(f"cannot list {folder}: {exc.strerror}") from exc
        for child in children:
            if skip is not None and skip(child.name):
                continue
            if not child.is_dir(follow_symlinks=False):
                continue
            child_path = Path(child.path)
            if looks_like_bag(child_path):
                found.append(child_path)
            else:
                stack.append(child_path)
    return sorted(found)


def looks_like_bag(path: Path) -> bool:
    """A folder with a bagit.txt, or with a data/ folder and a manifest (a bag
    whose bagit.txt is lost is still a bag, and an invalid one)."""
    if not path.is_dir():
        return False
    if (path / "bagit.txt").is_file():
        return True
    if not (path / "data").is_dir():
        return False
    try:
        return any(MANIFEST_NAME.match(name) or TAG_MANIFEST_NAME.match(name) for name in os.listdir(path))
    except OSError:
        return False
