"""What makes a site a mirror: the receipt that marks a bag as mirrored, and
merging event logs (the site layout is in ``site.py``).

The receipt sits *beside* the bag, not in it, so the bag at the target stays
byte-identical to the source and verifies exactly as it does at home. A bag
without a receipt is *incomplete*: a receipt is only written after every file
at the target was read back and hashed against the manifest, and it is removed
before a mirror changes anything in the bag.
"""

from __future__ import annotations

import hashlib
import json

from archiver import AGENT
from archiver.clock import iso, utc_now
from archiver.replication.plan import SourceBag
from archiver.replication.site import Site

RECEIPTS_DIR = ".archiver/receipts"
EVENTS_FILE = ".archiver/events.jsonl"
PARTIAL_SUFFIX = ".partial"


# A mirror target is any site (``site.Site``); the old name stays for callers.
MirrorTarget = Site


def make_receipt(source: SourceBag, source_location: str, files: int, nbytes: int) -> bytes:
    """The receipt: which bag (by the sha256 of its tag manifests), from where,
    when it was verified at the target, and how much."""
    record = {
        "bag": source.name,
        "source": source_location,
        "verified": iso(utc_now()),
        "agent": AGENT,
        "files": files,
        "bytes": nbytes,
        "tagmanifests": {
            name: hashlib.sha256(content).hexdigest()
            for name, content in sorted(source.tagmanifests.items())
        },
    }
    return (json.dumps(record, indent=2, sort_keys=True) + "\n").encode("utf-8")


def missing_event_lines(source_log: bytes, target_log: bytes) -> list[bytes]:
    """Lines of the source log the target log lacks, in source order.

    Events are matched by their ``id`` (by the whole line for a line that is
    not a JSON event, e.g. a torn one), so a log that already holds them, or
    holds extra lines of its own, is only ever appended to."""

    def key(line: bytes) -> str:
        try:
            record = json.loads(line)
            if isinstance(record, dict) and "id" in record:
                return "id:" + str(record["id"])
        except ValueError:
            pass
        return "line:" + line.decode("utf-8", errors="replace")

    target_lines = [line for line in target_log.split(b"\n") if line.strip()]
    raw = set(target_lines)
    # Most lines are byte-identical copies: only the others are parsed.
    unmatched = [line for line in source_log.split(b"\n") if line.strip() and line not in raw]
    if not unmatched:
        return []
    have = {key(line) for line in target_lines}
    missing = []
    for line in unmatched:
        k = key(line)
        if k not in have:
            have.add(k)
            missing.append(line)
    return missing


def joined_lines(existing: bytes, lines: list[bytes]) -> bytes:
    """``lines`` as bytes to append after ``existing`` (which may lack its final newline)."""
    prefix = b"\n" if existing and not existing.endswith(b"\n") else b""
    return prefix + b"".join(line + b"\n" for line in lines)
