"""Which bags an export takes, and what each one says about its capture.

Both WACZ and OCFL export work on *captures*: a bag of the collection read
through the safe bag reader (``LocalBag``: no symlink followed, nothing opened
outside the bag), with its source URL, retrieval time, title and bag name.
A bag that cannot be read, or does not say what it captured, is a ``Problem``
(data, not an exception), so one bad bag never stops the others.

    >>> captures, problems = select_captures(Path("bags"), None, ["https://example.org/essay"])
    >>> [c.bag for c in captures]
    ['essay-20261125T093000Z', 'essay-20261201T093000Z']
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from archiver.bagit.parse import parse_manifest_map
from archiver.bagit.reader import LocalBag
from archiver.bagit.verify import Problem
from archiver.clock import iso, parse_iso
from archiver.collection.root import list_bag_dirs
from archiver.collection.record import CaptureRecord, DamagedCapture, ForeignBag, parse_bag_info
from archiver.errors import ArchiverError, StorageError, UsageError

MAX_TAG_BYTES = 4 * 1024 * 1024   # metadata.json and bag-info.txt are small; a huge one is refused


@dataclass(frozen=True)
class CaptureBag:
    """One bag of the collection, as an export sees it."""

    bag: str               # the bag's folder name
    path: Path
    url: str               # the source URL (the OCFL object id, the WACZ page url)
    retrieved: str         # ISO 8601 UTC, whole seconds
    title: str | None

    def reader(self) -> LocalBag:
        return LocalBag(self.path)


def select_captures(root: Path, bags: list[str] | None, urls: list[str] | None,
                    ) -> tuple[list[CaptureBag], list[Problem]]:
    """The captures an export takes, oldest first, and a problem for each bag or
    URL that cannot be taken. ``bags`` are bag names (or paths whose last part is
    a bag name) in ``root``; ``urls`` select every capture of those source URLs
    (matched on the source URL or the final URL after redirects); both None
    means every bag. StorageError if the root cannot be read; UsageError if it
    is no folder."""
    root = Path(root)
    if not root.is_dir():
        raise StorageError(f"collection root {root} does not exist or is not a folder")
    problems: list[Problem] = []
    chosen: dict[str, Path] = {}
    if bags:
        for name in bags:
            bag_name = Path(name.rstrip("/")).name
            bag_dir = root / bag_name
            if bag_dir.is_symlink():
                problems.append(Problem("symlink-in-collection", name,
                                        f"{bag_dir} is a symbolic link; it is never followed"))
            elif not bag_name or bag_name.startswith(".") or not (bag_dir / "bagit.txt").is_file():
                problems.append(Problem("bag-not-found", name, f"no bag named {bag_name!r} in {root}"))
            else:
                chosen[bag_name] = bag_dir
    every = list_bag_dirs(root) if urls or not bags else []
    captures: dict[str, CaptureBag] = {}
    wanted = set(urls or [])
    found_urls: set[str] = set()
    for bag_dir in every:
        if bag_dir.is_symlink():
            if not bags:
                problems.append(Problem("symlink-in-collection", bag_dir.name,
                                        f"{bag_dir} is a symbolic link; it is never followed"))
            continue
        if urls:
            try:
                capture, final_url = read_capture(bag_dir)
            except ArchiverError:
                continue  # a bag that cannot be read cannot match; named bags report it below
            hit = wanted & {capture.url, final_url}
            if hit:
                found_urls |= hit
                captures[capture.bag] = capture
        elif not bags:
            chosen[bag_dir.name] = bag_dir
    for url in urls or []:
        if url not in found_urls:
            problems.append(Problem("url-not-found", url, f"no capture of {url} in {root}"))
    for name, bag_dir in chosen.items():
        if name in captures:
            continue
        try:
            captures[name] = read_capture(bag_dir)[0]
        except ArchiverError as exc:
            problems.append(Problem("bag-unreadable", name, str(exc)))
    ordered = sorted(captures.values(), key=lambda c: (c.retrieved, c.bag))
    return ordered, problems


def read_capture(bag_dir: Path) -> tuple[CaptureBag, str | None]:
    """(the capture a bag holds, its final URL), read through ``CaptureRecord``:
    ``data/metadata.json`` for archiver's bags, or else bag-info.txt's Source-URL /
    External-Identifier and Retrieval-Date / Bagging-Date (bags made elsewhere).
    StorageError for a damaged capture, or a bag that does not say which URL it
    captured or when."""
    try:
        record = CaptureRecord.read(bag_dir, text=False)
        metadata, info = record.metadata, record.bag_info
    except ForeignBag as foreign:
        metadata, info = {}, dict(foreign.bag_info)
    except DamagedCapture as exc:
        raise StorageError(str(exc)) from exc
    url = metadata.get("url") or info.get("Source-URL") or info.get("External-Identifier")
    when = metadata.get("retrieved") or info.get("Retrieval-Date") or info.get("Bagging-Date")
    if not isinstance(url, str) or not url:
        raise StorageError(f"{bag_dir.name} does not say which URL it captured "
                           "(no url in data/metadata.json, no Source-URL in bag-info.txt)")
    try:
        retrieved = iso(parse_iso(str(when)))
    except (TypeError, ValueError) as exc:
        raise StorageError(f"{bag_dir.name} has no valid retrieval time ({when!r})") from exc
    title = metadata.get("title")
    final_url = metadata.get("final_url")
    return (CaptureBag(bag_dir.name, bag_dir, url, retrieved, title if isinstance(title, str) else None),
            final_url if isinstance(final_url, str) else None)


def read_small(reader: LocalBag, relpath: str, limit: int = MAX_TAG_BYTES) -> bytes:
    """A small file of a bag, whole. FileNotFoundError if absent; StorageError if
    it cannot be read, is a symlink, or is larger than ``limit``."""
    try:
        with reader.open(relpath) as stream:
            data = stream.read(limit + 1)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise StorageError(f"cannot read {relpath} in {reader.location}: {exc}") from exc
    if len(data) > limit:
        raise StorageError(f"{relpath} in {reader.location} is larger than {limit:,} bytes")
    return data


def read_bag_info(reader: LocalBag) -> dict[str, str]:
    """bag-info.txt's elements (first value of each label); {} if there is none."""
    try:
        return parse_bag_info(read_small(reader, "bag-info.txt"))
    except FileNotFoundError:
        return {}


def manifest_digests(reader: LocalBag, name: str, algorithm: str) -> dict[str, str]:
    """{path: lower-case hex digest} of one (tag) manifest of a bag; {} when it is
    absent. Lines the parser rejects are left out (their files are hashed)."""
    try:
        stream: BinaryIO = reader.open(name)
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise StorageError(f"cannot read {name} in {reader.location}: {exc}") from exc
    with stream:
        listed, repeats, findings = parse_manifest_map(stream, name, algorithm)
    # A path listed twice with different digests cannot be trusted for either.
    doubtful = {entry.path for entry in repeats if entry.digest.lower() != str(listed.get(entry.path)).lower()}
    return {path: str(digest).lower() for path, digest in listed.items() if path not in doubtful}


def require_some(captures: list[CaptureBag], problems: list[Problem]) -> None:
    """UsageError naming why when an export has nothing to take."""
    if not captures:
        reasons = "; ".join(f"{p.path}: {p.message}" for p in problems[:5]) or "the collection holds no bags"
        raise UsageError(f"nothing to export: {reasons}")
