"""Mirroring and repairing collections: a directory, or S3-compatible storage.

    site.py       the ``Site`` interface (a place bags live) and ``open_site``
    directory.py  a directory site (<bag>.partial, fsync, rename)
    s3.py         an S3 site and ``S3Bag`` (read a bag in place)
    plan.py       pure decisions: present / new / incomplete / changed, what to send
    fixity.py     reading a copy back and hashing it against the manifests
    server_fixity.py  an S3 server's stored SHA-256 against the manifests (server-attested)
    target.py     the receipt, event-log merging
    mirror.py     mirror_collection: the whole job
    repair.py     repair: restore damaged files from a good copy

``open_site`` turns a location (a path or ``s3://bucket/prefix``) into a site;
``open_bag_readers`` into bag readers for ``verify``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from archiver.bagit.reader import BagReader
from archiver.replication.directory import DirectorySite, DirectoryTarget
from archiver.replication.mirror import BagResult, MirrorReport, mirror_bag, mirror_collection
from archiver.replication.s3 import S3Bag, S3Site, S3Target, find_s3_bags, make_client, parse_s3_url
from archiver.replication.site import Site, SiteOptions, is_remote, open_site, scheme_of

__all__ = [
    "BagResult", "DirectorySite", "DirectoryTarget", "MirrorReport", "S3Bag", "S3Site", "S3Target",
    "Site", "SiteOptions", "find_s3_bags", "is_remote", "is_s3", "make_client", "mirror_bag",
    "mirror_collection", "open_bag_readers", "open_site", "open_target", "parse_s3_url", "scheme_of",
]


def is_s3(location: str | Path) -> bool:
    return scheme_of(location) == "s3"


def open_target(location: str | Path, endpoint_url: str | None = None,
                checksum_when_required: bool = True, client: Any = None) -> Site:
    """A mirror target: ``open_site`` under the name mirror's callers know."""
    return open_site(location, endpoint_url, checksum_when_required, client)


def open_bag_readers(location: str, endpoint_url: str | None = None,
                     checksum_when_required: bool = True, client: Any = None) -> list[BagReader]:
    """Readers for the bag at ``location``, or for every bag directly under it;
    pass each to ``verify_bag``. StorageError when the site cannot be listed."""
    return open_site(location, endpoint_url, checksum_when_required, client).bag_readers()
