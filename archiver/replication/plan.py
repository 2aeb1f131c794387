"""Planning a mirror: pure decisions over listings, no I/O.

For one bag, given what the source holds and what the target holds, decide
whether the bag is already *present* (skip, no hashing), and otherwise which
files to send, in the safe order, and which stray files to delete::

    >>> source = SourceBag("essay", {"bagit.txt": 55, "data/text.txt": 12, ...},
    ...                    {"tagmanifest-sha256.txt": b"..."})
    >>> plan_bag(source, None).send[:1]
    ['data/text.txt']

Statuses of a bag at the target:

- ``new``         nothing of it is at the target;
- ``present``     receipt present, tag manifests byte-identical, same files with
                  the same sizes: skipped without re-hashing;
- ``incomplete``  some of it is there but it has no receipt (a killed run, a
                  ``--no-verify`` copy, a deleted receipt): never counted mirrored;
- ``changed``     it has a receipt but differs from the source (files missing,
                  sizes differ, tag manifests differ): its receipt is removed
                  before anything is changed.

Only files that are missing or whose size differs are sent; a same-size file
with different bytes is found by the read-back verification and re-sent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

TAGMANIFEST_PREFIX = "tagmanifest-"
MANIFEST_PREFIX = "manifest-"


@dataclass(frozen=True)
class SourceBag:
    """A bag in the source collection: every file (POSIX path relative to the
    bag) with its size, and the bytes of each tag manifest."""

    name: str
    files: dict[str, int]
    tagmanifests: dict[str, bytes]

    @property
    def bytes(self) -> int:
        return sum(self.files.values())


@dataclass(frozen=True)
class TargetBagState:
    """What the target holds of one bag (``files`` empty when nothing).

    ``tagmanifests_identical`` is decided by the target, which knows how to
    compare cheaply (bytes on disk, an MD5 ETag on S3)."""

    files: dict[str, int] = field(default_factory=dict)
    has_receipt: bool = False
    tagmanifests_identical: bool = False


@dataclass(frozen=True)
class BagPlan:
    name: str
    status: str  # new | present | incomplete | changed
    send: list[str]  # in safe order: payload, tag files, tag manifests
    delete: list[str]  # files at the target that the source bag does not have

    @property
    def is_present(self) -> bool:
        return self.status == "present"


def file_rank(path: str) -> int:
    """Safe sending order: payload (0), other tag files (1), tag manifests (2).

    Tag manifests go last so that a target whose tag manifests match the
    source's has, at the least, every other file already sent."""
    if path.startswith("data/"):
        return 0
    if path.rsplit("/", 1)[-1].startswith(TAGMANIFEST_PREFIX):
        return 2
    return 1


def send_order(paths: list[str] | set[str]) -> list[str]:
    return sorted(paths, key=lambda p: (file_rank(p), p))


def plan_bag(source: SourceBag, target: TargetBagState | None) -> BagPlan:
    """Decide what to do for one bag. ``target`` None means nothing is there."""
    if target is None or not target.files:
        return BagPlan(source.name, "new", send_order(set(source.files)), [])
    missing_or_resized = {
        path for path, size in source.files.items() if target.files.get(path) != size
    }
    extra = sorted(set(target.files) - set(source.files))
    same_files = not missing_or_resized and not extra
    if same_files and target.has_receipt and target.tagmanifests_identical:
        return BagPlan(source.name, "present", [], [])
    if not target.tagmanifests_identical:
        # Tag manifests are the bag's identity: when they differ, send them
        # again even if their size happens to match.
        missing_or_resized |= {p for p in source.tagmanifests if p in source.files}
    status = "changed" if target.has_receipt else "incomplete"
    return BagPlan(source.name, status, send_order(missing_or_resized), extra)


@dataclass
class MirrorPlan:
    """Plans for every bag of a collection, in the order they will run."""

    bags: list[BagPlan]

    def count(self, status: str) -> int:
        return sum(1 for plan in self.bags if plan.status == status)

    @property
    def files_to_send(self) -> int:
        return sum(len(plan.send) for plan in self.bags)

    def to_dict(self) -> dict[str, Any]:
        return {
            "bags": len(self.bags),
            "present": self.count("present"),
            "new": self.count("new"),
            "incomplete": self.count("incomplete"),
            "changed": self.count("changed"),
            "files_to_send": self.files_to_send,
        }


def algorithm_of(filename: str) -> str | None:
    """``manifest-sha256.txt`` → ``sha256``; None for other files."""
    base = filename.rsplit("/", 1)[-1]
    for prefix in (TAGMANIFEST_PREFIX, MANIFEST_PREFIX):
        if base.startswith(prefix) and base.endswith(".txt") and "/" not in filename:
            return base[len(prefix):-4]
    return None
