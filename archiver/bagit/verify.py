"""Verifying bags strictly by RFC 8493 (and its drafts 0.93 - 0.97).

``verify_bag`` reads a bag through a ``BagReader`` (a local folder, or a bag
on S3) and returns a ``BagReport`` listing *every* problem and warning as
``Problem(code, path, message)`` values with stable codes (``PROBLEM_CODES``,
``WARNING_CODES``). It never raises for a bad bag; StorageError means the bag
could not be read at all.

Modes: ``full`` (everything, checksums included), ``completeness`` (everything
but checksums) and ``fast`` (bagit.txt and Payload-Oxum only). Only a ``full``
report that is valid means "verified".

    >>> report = verify_bag(Path("bags/essay-20261125T093000Z"))
    >>> report.valid, [p.code for p in report.problems]
    (True, [])
"""

from __future__ import annotations

import io
import os
from operator import attrgetter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from archiver.bagit.timestamp import PROBLEM_CODES as TIMESTAMP_PROBLEMS
from archiver.bagit.timestamp import WARNING_CODES as TIMESTAMP_WARNINGS, check_stored_token
from archiver.bagit.parse import (
    MANIFEST_NAME, TAG_MANIFEST_NAME, Finding, ManifestEntry, lookup_encoding, parse_bagit_txt,
    parse_manifest, parse_oxum, parse_tag_file,
)
from archiver.bagit.reader import BagReader, FileEntry, LocalBag, iter_tree
from archiver.collection.root import META_DIR
from archiver.durable import TMP_PREFIX
from archiver.errors import StorageError, UsageError
from archiver.bagit.hashing import IN_PROCESS_FILES, HashMismatch, check_stream, hash_stream
from archiver.bagit.checks import check_contents

# parse_manifest, ManifestEntry, check_stream, hash_stream, HashMismatch are
# re-exported for the mirror and repair: hash a copy against the original's manifest.
__all__ = [
    "Problem", "BagReport", "verify_bag", "find_bags", "looks_like_bag", "PROBLEM_CODES",
    "WARNING_CODES", "MODES", "parse_manifest", "ManifestEntry", "check_stream", "hash_stream",
    "HashMismatch",
]

MODES = ("full", "fast", "completeness")
MAX_BAGIT_TXT = 64 * 1024
MAX_TAG_FILE = 4 * 1024 * 1024       # bag-info.txt / package-info.txt: metadata, not payload
MAX_PER_CODE = 10_000                # past this, one summary line per code keeps reports bounded

PROBLEM_CODES = {
    "bagit-txt-missing": "no bagit.txt (RFC 8493 §2.1.1)",
    "bagit-txt-bom": "bagit.txt starts with a byte-order mark",
    "bagit-txt-malformed": "bagit.txt is not exactly the two required lines",
    "version-unsupported": "BagIt-Version is not 0.93-0.97 or 1.0",
    "encoding-unknown": "Tag-File-Character-Encoding is not a known encoding",
    "tag-file-undecodable": "a tag file is not in the declared encoding",
    "tag-file-too-large": "a metadata tag file is larger than archiver reads",
    "tag-line-malformed": "a bag-info.txt line is not 'Label: value'",
    "tag-label-whitespace": "(1.0) a label has surrounding whitespace",
    "line-too-long": "a tag-file line is longer than 64 KiB",
    "data-dir-missing": "no data/ folder",
    "manifest-missing": "no payload manifest",
    "algorithm-unsupported": "a manifest's algorithm is unknown to hashlib",
    "manifest-line-malformed": "a manifest line is not '<checksum> <path>'",
    "digest-malformed": "a checksum is not hex of the algorithm's length",
    "path-unsafe": "a path could point outside the bag (.., absolute, ~, drive, UNC, backslash)",
    "path-outside-payload": "a payload manifest or fetch.txt lists a path outside data/",
    "tag-manifest-lists-payload": "a tag manifest lists a payload file",
    "tag-manifest-incomplete": "a tag manifest does not list every payload manifest",
    "duplicate-entry": "(1.0) a path listed twice in one manifest",
    "duplicate-entry-conflict": "a path listed twice in one manifest with different checksums",
    "file-missing": "a listed file is absent",
    "file-not-in-manifest": "a payload file is not listed (in every manifest, for 1.0)",
    "symlink-in-bag": "a symbolic link in the bag (never followed)",
    "file-unreadable": "a file could not be read",
    "checksum-mismatch": "a file's checksum differs from its manifest's",
    "payload-oxum-malformed": "Payload-Oxum is not '<octets>.<files>'",
    "payload-oxum-mismatch": "Payload-Oxum differs from the payload",
    "payload-oxum-missing": "(--fast) no Payload-Oxum to check",
    "fetch-line-malformed": "a fetch.txt line is not '<url> <length> <path>'",
    "fetch-url-invalid": "a fetch.txt URL is not absolute",
    "fetch-not-in-manifest": "a fetch.txt path is not in any payload manifest",
    "fetch-length-mismatch": "a fetched file's size differs from fetch.txt",
    "problems-truncated": "more problems of one code than are listed",
    **TIMESTAMP_PROBLEMS,
}
WARNING_CODES = {
    "md5sum-binary-marker": "manifest line in md5sum's '*path' form",
    "dot-slash-path": "manifest path written as ./data/...",
    "name-collision-normalisation": "two names equal after Unicode normalisation",
    "name-collision-case": "two names equal after case folding",
    "name-normalisation-differs": "a listed name matches a file only after Unicode normalisation",
    "system-file": "an operating-system file (.DS_Store, Thumbs.db, ...)",
    "duplicate-entry": "(before 1.0) a path listed twice with the same checksum",
    "tag-file-not-in-tag-manifest": "a tag file no tag manifest covers",
    "tag-manifest-missing": "no tag manifest: tag files are not protected",
    "tag-label-whitespace": "(before 1.0) a label has surrounding whitespace",
    "tag-blank-line": "a blank line in bag-info.txt",
    "tag-file-bom": "a UTF-8 tag file starts with a byte-order mark",
    **TIMESTAMP_WARNINGS,
}


@dataclass(frozen=True)
class Problem:
    code: str
    path: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "path": self.path, "message": self.message}


@dataclass
class BagReport:
    location: str
    valid: bool
    mode: str
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    version: str | None = None
    files: int = 0
    bytes: int = 0
    timestamp: dict | None = None  # the RFC 3161 token's check (archiver.bagit.timestamp), if any

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.location, "valid": self.valid, "mode": self.mode, "version": self.version,
            "files": self.files, "bytes": self.bytes, "timestamp": self.timestamp,
            "problems": [p.to_dict() for p in self.problems],
            "warnings": [w.to_dict() for w in self.warnings],
        }


class _Collector:
    """Problems and warnings of one bag, deduplicated and capped per code.

    Past the cap only counts are kept: a finding is then remembered by its hash
    alone (a million missing files must not cost a million kept messages); two
    different findings sharing a 64-bit hash would be counted once, a chance of
    about 1 in 10^7 for a million findings. ``unique=True``: the caller
    guarantees it never adds this finding twice, so not even the hash is kept."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self.warnings: list[Problem] = []
        self._seen: set[tuple[bool, str, str, str]] = set()
        self._past_cap: set[int] = set()
        self._counts: dict[tuple[bool, str], int] = {}

    def add(self, code: str, path: str, message: str, error: bool = True, unique: bool = False) -> None:
        key = (error, code, path, message)
        if key in self._seen:
            return
        count = self._counts.get((error, code), 0) + 1
        if count > MAX_PER_CODE:
            if not unique:
                digest = hash(key)
                if digest in self._past_cap:
                    return
                self._past_cap.add(digest)
            self._counts[(error, code)] = count
            return
        self._seen.add(key)
        self._counts[(error, code)] = count
        (self.problems if error else self.warnings).append(Problem(code, path, message))

    def append(self, finding: Finding) -> None:
        """A parser's findings go straight in: see ``parse_manifest_map``."""
        self.add(finding.code, finding.path, finding.message, finding.error)

    def extend(self, findings: list[Finding]) -> None:
        for f in findings:
            self.add(f.code, f.path, f.message, f.error)

    def finish(self) -> None:
        for (error, code), count in sorted(self._counts.items()):
            if count > MAX_PER_CODE:
                target = self.problems if error else self.warnings
                target.append(Problem("problems-truncated", "",
                                      f"{count - MAX_PER_CODE} more {code!r} findings not listed"))


def verify_bag(bag: Path | str | BagReader, mode: str = "full", processes: int | None = None,
               on_progress: Callable[..., None] | None = None, tsa_ca: bytes | None = None) -> BagReport:
    """Check one bag; see the module docstring. StorageError if it cannot be read at all."""
    if mode not in MODES:
        raise UsageError(f"unknown verify mode {mode!r}; use one of {', '.join(MODES)}")
    reader: BagReader = LocalBag(Path(bag)) if isinstance(bag, (str, Path)) else bag
    check = _BagCheck(reader, mode, processes, on_progress)
    check.tsa_ca = tsa_ca  # PEM roots for RFC 3161 tokens (archiver.bagit.timestamp)
    return check.run()


class _BagCheck:
    def __init__(self, reader: BagReader, mode: str, processes: int | None,
                 on_progress: Callable[..., None] | None) -> None:
        self.reader = reader
        self.mode = mode
        self.processes = processes
        self.on_progress = on_progress
        self.out = _Collector()
        self.version: str | None = None
        self.encoding = "utf-8"
        self.payload_files = 0
        self.payload_bytes = 0
        self.sizes: dict[str, int] = {}  # filled by hashing when files were listed without sizes
        self.tsa_ca: bytes | None = None

    # -- the whole check -------------------------------------------------

    def run(self) -> BagReport:
        files = self._list_files()
        names = None if files is None else set(map(attrgetter("path"), files))
        self._check_bagit_txt(names)
        info = self._read_bag_info(names)
        self._check_data_dir(files)
        sizes = None
        if files is not None and self.mode != "fast":
            sizes = check_contents(self, files)
        if files is None:
            self._count_payload_streaming()  # flat memory whatever the file count
        else:
            self._count_payload(files, sizes)
        self._check_oxum(info)
        stamp = check_stored_token(self.reader, self.tsa_ca, self.out.add, names)
        self.out.finish()
        report = BagReport(self.reader.location, not self.out.problems, self.mode, self.out.problems,
                           self.out.warnings, self.version, self.payload_files, self.payload_bytes)
        report.timestamp = stamp
        return report

    def _list_files(self) -> list[FileEntry] | None:
        if not isinstance(self.reader, LocalBag):
            return self.reader.list_files()
        if self.mode == "fast":
            return None  # counted while walking, never held: flat memory
        if self.mode == "full":
            # Many files: skip a stat per file here; the hashing workers stat
            # what they open. Few files: sizes now, to choose pool or not.
            files = self.reader.list_files(sizes=False)
            if len(files) > IN_PROCESS_FILES:
                return files
        return self.reader.list_files()

    @property
    def strict(self) -> bool:
        """RFC 8493 (1.0) rules; also for a bag whose version is unreadable."""
        return self.version in (None, "1.0")

    # -- tag files ---------------------------------------------------------

    def _read_capped(self, path: str, cap: int) -> bytes | None:
        try:
            with self.reader.open(path) as stream:
                raw = _read_at_most(stream, cap + 1)
        except FileNotFoundError:
            return None
        except (StorageError, OSError) as exc:
            self.out.add("file-unreadable", path, str(exc))
            return None
        if len(raw) > cap:
            self.out.add("tag-file-too-large", path,
                         f"{path} is larger than {cap} bytes; archiver does not read it")
            return None
        return raw

    def _check_bagit_txt(self, names: set[str] | None) -> None:
        raw = None if names is not None and "bagit.txt" not in names else \
            self._read_capped("bagit.txt", MAX_BAGIT_TXT)
        if raw is None:
            if names is None or "bagit.txt" not in names:
                self.out.add("bagit-txt-missing", "bagit.txt", "the bag has no bagit.txt (RFC 8493 §2.1.1)")
            return
        version, encoding, findings = parse_bagit_txt(raw)
        self.out.extend(findings)
        self.version = version
        self.encoding = lookup_encoding(encoding) or "utf-8"

    def _read_bag_info(self, names: set[str] | None) -> list[tuple[str, str]]:
        name = "bag-info.txt"
        if self.version in ("0.93", "0.94", "0.95"):
            name = "package-info.txt"  # the drafts before 0.96 called it so
        if names is not None and name not in names:
            return []
        raw = self._read_capped(name, MAX_TAG_FILE)
        if raw is None:
            return []
        if self.encoding == "utf-8" and raw.startswith(b"\xef\xbb\xbf"):
            self.out.add("tag-file-bom", name, f"{name} starts with a byte-order mark", error=False)
        elements, findings = parse_tag_file(io.BytesIO(raw), self.encoding, name, self.version)
        self.out.extend(findings)
        return elements

    # -- payload counts and Payload-Oxum ------------------------------------

    def _count_payload(self, files: list[FileEntry], sizes: dict[str, int] | None) -> None:
        """``sizes``: what hashing learnt, for files listed without one."""
        for entry in files:
            if entry.is_symlink:
                self.out.add("symlink-in-bag", entry.path,
                             f"{entry.path} is a symbolic link; archiver never follows links in a bag")
            elif entry.path.startswith("data/"):
                self.payload_files += 1
                self.payload_bytes += entry.size if entry.size >= 0 else sizes[entry.path]  # type: ignore[index]

    def _count_payload_streaming(self) -> None:
        assert isinstance(self.reader, LocalBag)
        data = self.reader.path / "data"
        if not self.reader.is_dir("data"):
            return
        self._count_payload_iter(iter_tree(data, "data/"))

    def _count_payload_iter(self, entries) -> None:
        for entry in entries:
            if entry.is_symlink:
                self.out.add("symlink-in-bag", entry.path,
                             f"{entry.path} is a symbolic link; archiver never follows links in a bag")
            else:
                self.payload_files += 1
                self.payload_bytes += entry.size

    def _check_data_dir(self, files: list[FileEntry] | None) -> None:
        is_dir = getattr(self.reader, "is_dir", None)
        if is_dir is not None:
            present = is_dir("data")
        else:
            present = any(f.path.startswith("data/") for f in files or [])
        if not present:
            self.out.add("data-dir-missing", "data/", "the bag has no data/ folder (RFC 8493 §2.1.2)")

    def _check_oxum(self, info: list[tuple[str, str]]) -> None:
        values = [value for label, value in info if label.lower() == "payload-oxum"]
        if not values and self.mode == "fast":
            self.out.add("payload-oxum-missing", "bag-info.txt",
                         "--fast needs a Payload-Oxum in bag-info.txt; run a full verify instead")
        for value in values:
            oxum = parse_oxum(value)
            if oxum is None:
                self.out.add("payload-oxum-malformed", "bag-info.txt",
                             f"Payload-Oxum {value!r} is not '<octets>.<files>'")
                continue
            octets, streams = oxum
            if octets != self.payload_bytes:
                self.out.add("payload-oxum-mismatch", "bag-info.txt",
                             f"Payload-Oxum says {octets} bytes; the payload has {self.payload_bytes}")
            if streams != self.payload_files:
                self.out.add("payload-oxum-mismatch", "bag-info.txt",
                             f"Payload-Oxum says {streams} files; the payload has {self.payload_files}")



def _read_at_most(stream: Any, limit: int) -> bytes:
    """Up to ``limit`` bytes: a network stream may return less per read than asked."""
    pieces = []
    remaining = limit
    while remaining > 0:
        piece = stream.read(remaining)
        if not piece:
            break
        pieces.append(piece)
        remaining -= len(piece)
    return b"".join(pieces)


def find_bags(path: Path) -> list[Path]:
    """``path`` itself if it looks like a bag, else every bag below it (not
    inside bags, not in ``.archiver/`` or ``.tmp-*`` folders, no symlinks)."""
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
            if child.name == META_DIR or child.name.startswith(TMP_PREFIX):
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
