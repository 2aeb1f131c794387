"""What verification says about a bag: ``Problem`` records and the ``BagReport``.

``Problem(code, path, message)`` is the one record for "a file is wrong": the
parsers, the hashing module and the checks all produce it, and a report lists
them as problems (``error=True``: the bag is invalid) or warnings. Codes are
stable (``PROBLEM_CODES``, ``WARNING_CODES``); a code may be in both tables when
the bag's BagIt version decides (see ``archiver.bagit.check.VERSIONED_RULES``).

``CannotVerify`` is *not* a verdict: a bag archiver refuses to read to the end
(a resource guard) is "could not verify" (exit 3), never "invalid".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

from archiver.bagit.timestamp import PROBLEM_CODES as TIMESTAMP_PROBLEMS
from archiver.bagit.timestamp import WARNING_CODES as TIMESTAMP_WARNINGS
from archiver.errors import StorageError

MAX_PER_CODE = 10_000                # past this, one summary line per code keeps reports bounded

PROBLEM_CODES = {
    "bagit-txt-missing": "no bagit.txt (RFC 8493 §2.1.1)",
    "bagit-txt-bom": "bagit.txt starts with a byte-order mark",
    "bagit-txt-malformed": "bagit.txt is not exactly the two required lines",
    "version-unsupported": "BagIt-Version is not 0.93-0.97 or 1.0",
    "encoding-unknown": "Tag-File-Character-Encoding is not a known encoding",
    "tag-file-undecodable": "a tag file is not in the declared encoding",
    "tag-line-malformed": "a bag-info.txt line is not 'Label: value'",
    "tag-label-whitespace": "(1.0) a label has surrounding whitespace",
    "payload-oxum-repeated": "(1.0) Payload-Oxum appears more than once (RFC 8493 §2.2.2: MUST NOT)",
    "line-too-long": "a manifest or fetch.txt line is longer than 64 KiB",
    "data-dir-missing": "no data/ folder",
    "manifest-missing": "no payload manifest",
    "algorithm-unsupported": "a manifest's algorithm is unknown to hashlib",
    "manifest-line-malformed": "a manifest line is not '<checksum> <path>'",
    "digest-malformed": "a checksum is not hex of the algorithm's length",
    "path-unsafe": "a path could point outside the bag (.., absolute, ~, drive, UNC, backslash)",
    "path-outside-payload": "a payload manifest or fetch.txt lists a path outside data/",
    "tag-manifest-lists-payload": "a tag manifest lists a payload file",
    "tag-manifest-incomplete": "(1.0) a tag manifest does not list every payload manifest",
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
    "fetch-url-invalid": "a fetch.txt URL is not an absolute URI (RFC 3986 §4.3)",
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
    "tag-manifest-incomplete": "(before 1.0) a tag manifest does not list every payload manifest",
    "tag-label-whitespace": "(before 1.0) a label has surrounding whitespace",
    "payload-oxum-repeated": "(before 1.0) Payload-Oxum appears more than once",
    "tag-element-repeated": "Bagging-Date, Bag-Size, Bag-Group-Identifier or Bag-Count repeated (SHOULD NOT)",
    "tag-blank-line": "a blank line in bag-info.txt",
    "tag-file-bom": "a UTF-8 tag file starts with a byte-order mark",
    "tag-value-long": "a bag-info.txt value longer than 64 KiB: read to the end, not kept",
    "problems-truncated": "more warnings of one code than are listed",
    **TIMESTAMP_WARNINGS,
}


# Rules RFC 8493 (BagIt 1.0) made MUST that the drafts (0.93 - 0.97) did not
# have: an error in the versions named here, a warning in the others. A bag
# whose version cannot be read is held to 1.0.
VERSIONED_RULES: dict[str, tuple[str, ...]] = {
    "duplicate-entry": ("1.0",),             # §2.1.3: a path once per manifest
    "tag-label-whitespace": ("1.0",),        # §2.2.2: no whitespace around a label
    "tag-manifest-incomplete": ("1.0",),     # §2.2.1: every tag manifest lists every payload manifest
    "payload-oxum-repeated": ("1.0",),       # §2.2.2: Payload-Oxum MUST NOT be repeated
    "payload-in-every-manifest": ("1.0",),   # §3: every payload file in *every* payload manifest
}


def rule_applies(rule: str, version: str | None) -> bool:
    """Whether a versioned rule (``VERSIONED_RULES``) is a MUST for a bag of ``version``."""
    return version is None or version in VERSIONED_RULES[rule]


class CannotVerify(StorageError):
    """archiver would have to hold more than it allows to judge this bag: no
    verdict (exit 3). The message names the file and the limit."""


@dataclass(frozen=True)
class Problem:
    """One finding about one file of a bag. ``error``: a problem (the bag is
    invalid) or a warning; it is not part of the report line."""

    code: str
    path: str
    message: str
    error: bool = field(default=True, compare=False)

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
    timestamp: dict[str, object] | None = None  # the RFC 3161 token's check (bagit/timestamp.py), if any

    def to_dict(self) -> dict[str, object]:
        return {
            "path": self.location, "valid": self.valid, "mode": self.mode, "version": self.version,
            "files": self.files, "bytes": self.bytes, "timestamp": self.timestamp,
            "problems": [p.to_dict() for p in self.problems],
            "warnings": [w.to_dict() for w in self.warnings],
        }


class Collector:
    """Problems and warnings of one bag, deduplicated and capped per code.

    Past the cap only counts are kept: a finding is then remembered by its hash
    alone (a million missing files must not cost a million kept messages); two
    different findings sharing a 64-bit hash would be counted once, a chance of
    about 1 in 10^7 for a million findings. ``unique=True``: the caller
    guarantees it never adds this finding twice, so not even the hash is kept.

    Parsers take it as their findings sink (anything with ``append``), so a
    million bad lines are never held in a list."""

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
        (self.problems if error else self.warnings).append(Problem(code, path, message, error))

    def append(self, problem: Problem, unique: bool = False) -> None:
        self.add(problem.code, problem.path, problem.message, problem.error, unique)

    def extend(self, problems: Iterable[Problem], unique: bool = False) -> None:
        for p in problems:
            self.add(p.code, p.path, p.message, p.error, unique)

    def finish(self) -> None:
        for (error, code), count in sorted(self._counts.items()):
            if count > MAX_PER_CODE:
                target = self.problems if error else self.warnings
                target.append(Problem("problems-truncated", "",
                                      f"{count - MAX_PER_CODE} more {code!r} findings not listed", error))
