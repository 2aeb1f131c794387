"""A *site*: one place bags live (a directory, an S3 prefix), as ``mirror``,
``repair`` and ``verify`` see it.

    >>> site = open_site("s3://library-b/texts", endpoint_url="http://127.0.0.1:8333")
    >>> site.check_reachable(); site.bag_names()
    ['essay-20261125T093000Z']

``Site`` is the whole interface; ``open_site`` is the one factory. Each kind
lives in one module (``directory.py``, ``s3.py``); a new kind (SFTP, say) is a
new module with a class that has these methods, plus one line in
``_OPENERS`` below.

Layout at a site (directory root or ``s3://bucket/prefix``)::

    <bag>/...                          a bag, byte-identical to its source
    <bag>.partial/...                  (directories only) a bag being copied
    .archiver/receipts/<bag>.json      the receipt, written last (target.py)
    .archiver/events.jsonl             the event log, lines only ever appended
    .archiver/staging/<bag>/...        replacements being staged by ``repair``
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Callable, Protocol

from archiver.bagit.reader import BagReader
from archiver.collection.events import Event
from archiver.errors import UsageError
from archiver.replication.plan import SourceBag, TargetBagState

if TYPE_CHECKING:
    from archiver.replication.lock import MirrorLock

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


class Site(Protocol):
    """Everything mirror, repair and verify ask of a place bags live."""

    location: str
    #: True when planning may be split over forked processes (cheap local stats).
    parallel_planning: bool

    # -- reachability ---------------------------------------------------------------
    def check_reachable(self) -> None:
        """For writing: raise TargetUnreachable if the site cannot be used at all."""

    def check_readable(self) -> None:
        """For reading: raise StorageError if the site cannot be read at all."""

    # -- what is there ----------------------------------------------------------------
    def scan(self) -> None:
        """List the site once, so ``state`` of many bags costs no round trip each."""

    def state(self, source: SourceBag) -> TargetBagState | None:
        """What the site holds of this bag (None: nothing)."""

    def bag_names(self) -> list[str]:
        """Bags (final places only) at the site."""

    def listing(self, name: str) -> dict[str, int]:
        """Every file of the bag in its final place, with sizes."""

    def reader(self, name: str) -> BagReader:
        """Read one bag in place (``verify_bag`` and fixity checks take it)."""

    def bag_readers(self) -> list[BagReader]:
        """The bag at the site's location if it is one, else every bag in it."""

    def locate_bag(self) -> tuple["Site", str] | None:
        """(the parent site, the bag's name) when the location is itself one bag."""

    # -- receipts ---------------------------------------------------------------------
    def mirror_lock(self, lease: float) -> "MirrorLock":
        """The lock that keeps two mirror runs to this site apart (``replication/lock.py``)."""

    def keeps_receipts(self) -> bool:
        """True when this site is a mirror (it holds at least one receipt)."""

    def has_receipt(self, name: str) -> bool: ...

    def write_receipt(self, name: str, data: bytes) -> None: ...

    def delete_receipt(self, name: str) -> None: ...

    # -- sending a bag (mirror) -----------------------------------------------------------
    def begin(self, name: str) -> None:
        """Remove the bag's receipt and get it ready to receive files."""

    def put(self, name: str, path: str, stream: BinaryIO, size: int, sha256: str | None) -> None:
        """Store one file of a bag being sent (atomic per file)."""

    def delete(self, name: str, path: str) -> None: ...

    def finish(self, name: str) -> None:
        """Make the sent files durable and put the bag in its final place."""

    # -- replacing damaged files (repair) ---------------------------------------------------
    def stage(self, name: str, path: str, stream: BinaryIO) -> None:
        """Write a replacement for ``path`` in the site's staging area."""

    def staged_reader(self, name: str) -> BagReader: ...

    def swap(self, name: str, path: str) -> None:
        """Atomically replace the bag's file with the staged one."""

    def discard_staging(self, name: str) -> None: ...

    # -- event log ------------------------------------------------------------------------
    def read_event_log(self) -> bytes: ...

    def append_event_lines(self, lines: list[bytes]) -> None:
        """Append raw lines (another log's, when mirroring it)."""

    def log_events(self, events: list[Event]) -> None:
        """Append archiver's own events (``repair``) to the site's log."""


@dataclass(frozen=True)
class SiteOptions:
    """How to reach a site: ``endpoint_url`` for a non-AWS S3 store, boto3's
    checksum mode, or a ready ``client`` (tests, or one client for two sites)."""

    endpoint_url: str | None = None
    checksum_when_required: bool = True
    client: Any = None


def scheme_of(location: str | Path) -> str | None:
    """``"s3"`` for ``s3://…``, None for a local path."""
    match = _SCHEME.match(str(location))
    return match.group(1).lower() if match else None


def is_remote(location: str | Path) -> bool:
    """True for a location that names a URL scheme (``s3://…``), not a path."""
    return scheme_of(location) is not None


def _open_directory(location: str, options: SiteOptions) -> Site:
    from archiver.replication.directory import DirectorySite

    return DirectorySite(Path(location))


def _open_s3(location: str, options: SiteOptions) -> Site:
    from archiver.replication.s3 import S3Site, make_client

    client = options.client or make_client(options.endpoint_url, options.checksum_when_required)
    return S3Site(client, location)


# One line per kind of site: scheme → opener (None: a local path).
_OPENERS: dict[str | None, Callable[[str, SiteOptions], Site]] = {
    None: _open_directory,
    "s3": _open_s3,
}


def supported_schemes() -> list[str]:
    return sorted(f"{s}://" for s in _OPENERS if s is not None)


def open_site(location: str | Path, endpoint_url: str | None = None, checksum_when_required: bool = True,
              client: Any = None) -> Site:
    """The site at ``location``: a directory path, or ``s3://bucket/prefix``.

    Opening does no I/O; ``check_reachable``/``check_readable`` do. Raises
    UsageError (exit 2) for a location whose scheme archiver does not handle."""
    text = str(location)
    scheme = scheme_of(text)
    opener = _OPENERS.get(scheme)
    if opener is None:
        raise UsageError(f"{scheme}:// locations are not supported (use a directory or "
                         f"{' or '.join(f'{s}bucket/prefix' for s in supported_schemes())})")
    return opener(text, SiteOptions(endpoint_url, checksum_when_required, client))
