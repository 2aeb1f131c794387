"""Mirroring collections to other libraries: a directory, or S3-compatible storage.

    plan.py       pure decisions: present / new / incomplete / changed, what to send
    fixity.py     reading a copy back and hashing it against the manifests
    target.py     the target protocol, the receipt, event-log merging
    directory.py  a directory target (<bag>.partial, fsync, rename)
    s3.py         an S3 target and ``S3Bag`` (read a bag in place)
    run.py        mirror_collection: the whole job

``open_target`` and ``open_bag_readers`` turn a location (a path or
``s3://bucket/prefix``) into a target or into bag readers for ``verify``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from archiver.replication.directory import DirectoryTarget
from archiver.replication.mirror import BagResult, MirrorReport, mirror_bag, mirror_collection
from archiver.replication.s3 import S3Bag, S3Target, find_s3_bags, make_client, parse_s3_url

__all__ = [
    "BagResult", "DirectoryTarget", "MirrorReport", "S3Bag", "S3Target", "find_s3_bags",
    "is_s3", "make_client", "mirror_bag", "mirror_collection", "open_bag_readers",
    "open_target", "parse_s3_url",
]


def is_s3(location: str | Path) -> bool:
    return str(location).startswith("s3://")


def open_target(location: str | Path, endpoint_url: str | None = None,
                checksum_when_required: bool = True, client: Any = None) -> DirectoryTarget | S3Target:
    """A mirror target for a directory path or an ``s3://bucket/prefix`` URL."""
    if is_s3(location):
        client = client or make_client(endpoint_url, checksum_when_required)
        return S3Target(client, str(location))
    return DirectoryTarget(Path(location))


# --- for `archiver verify` / `audit` on S3 (used by the verify CLI) -------------------
def open_bag_readers(location: str, endpoint_url: str | None = None,
                     checksum_when_required: bool = True, client: Any = None) -> list[S3Bag]:
    """Readers for the bag at ``s3://bucket/prefix/bag``, or for every bag
    directly under ``s3://bucket/prefix``; pass each to ``verify_bag``.
    Raises TargetUnreachable/StorageError when the bucket cannot be listed."""
    client = client or make_client(endpoint_url, checksum_when_required)
    return find_s3_bags(client, location)
