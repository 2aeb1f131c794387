"""An S3 collection root as the *source* of a mirror: ``archiver mirror s3://a/texts TARGET``.

``S3Source`` is ``mirror.MirrorSource`` over ``collection.s3root.S3Collection``:
only complete bags (completion marker or mirror receipt) are mirrored, so a bag
still being uploaded, or left by a crash, never reaches a target. The source is
listed once (every object under the prefix, with sizes); each bag's tag
manifests are read to compare with the target, and its files are streamed from
S3 to the target, where mirror reads every byte back as usual. Replication
events go to the source as event objects; the source's merged log (event
objects and the legacy ``events.jsonl``) is what the target's log receives.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, BinaryIO, Iterator, cast

from archiver.bagit.reader import BagReader
from archiver.collection.events import Event
from archiver.collection.s3root import S3Collection, cached_event_log
from archiver.errors import StorageError
from archiver.replication.fixity import read_tagmanifests
from archiver.replication.plan import SourceBag, plan_bag
from archiver.replication.site import Site

if TYPE_CHECKING:
    from archiver.replication.mirror import BagResult, BagSource


class S3BagSource:
    """One complete bag of an S3 collection (``mirror.BagSource``)."""

    def __init__(self, collection: S3Collection, name: str, files: dict[str, int]) -> None:
        self.collection = collection
        self.name = name
        self.files = files
        self.location = collection.reader(name).location
        self._read: SourceBag | None = None

    def read(self) -> SourceBag:
        if self._read is None:
            self._read = SourceBag(self.name, dict(self.files), read_tagmanifests(self.reader(), self.files))
        return self._read

    def reader(self) -> BagReader:
        return self.collection.reader(self.name)

    @contextmanager
    def open_file(self, path: str) -> Iterator[tuple[BinaryIO, int]]:
        try:
            body = self.collection.objects.open(self.collection.key(f"{self.name}/{path}"))
        except FileNotFoundError as exc:
            raise StorageError(f"{self.location}/{path} vanished while reading") from exc
        with body:
            yield cast(BinaryIO, body), self.files[path]


class S3Source:
    """``mirror.MirrorSource`` for ``s3://bucket/prefix``."""

    def __init__(self, collection: S3Collection) -> None:
        self.collection = collection
        self.location = collection.location

    def check(self) -> None:
        self.collection.check_readable()

    def bags(self) -> list["BagSource"]:
        base = self.collection.key("")
        files: dict[str, dict[str, int]] = {}
        for key, meta in self.collection.objects.list(base).items():
            name, sep, path = key[len(base):].partition("/")
            if sep and path and not key.endswith("/"):
                files.setdefault(name, {})[path] = int(meta["Size"])
        return [S3BagSource(self.collection, name, files.get(name, {}))
                for name in self.collection.complete_bags()]

    def triage(self, bags: list["BagSource"], target: Site) -> tuple[set[str], set[str]]:
        """Bags already at the target (nothing hashed); a complete bag is always
        a bag (one that lost its bagit.txt is mirrored, and fails, never skipped)."""
        present = set()
        for bag in bags:
            try:
                source = bag.read()
                if plan_bag(source, target.state(source)).is_present:
                    present.add(bag.name)
            except StorageError:
                pass  # judged again, and reported, when the bag itself is mirrored
        return present, set()

    def log_events(self, events: list[Event]) -> None:
        self.collection.log_events(events)

    def event_log(self) -> bytes:
        log = cached_event_log(self.collection)  # only event objects not read before are fetched
        return b"".join(logged.line + b"\n" for logged in log.events)

    def extra_results(self, target: Site, verify: bool) -> list["BagResult"]:
        return []


def open_mirror_source(location: str, endpoint_url: str | None = None, client: Any = None) -> S3Source:
    return S3Source(S3Collection(location, endpoint_url, client=client))
