"""Verifying a serialised bag (tar, tar.gz, zip) in place, streaming.

Nothing is extracted: one pass over the archive's entries hashes every file
with every algorithm a manifest may use (the manifests may come after the
payload), keeps the small top-level tag files in memory, and notes each
entry's name, type and size. Memory grows with the number of files, not their
size. ``verify_archive`` then hands a ``ScannedBag`` (a ``BagReader`` over
what the pass kept) to the RFC 8493 verifier in completeness mode and
compares the manifests with the digests of the pass.

Hostile entries are problems naming the entry: ``archive-entry-unsafe``
(``..`` or absolute names), ``archive-entry-link`` (symlinks, hard links),
``archive-entry-special`` (devices, FIFOs), ``archive-entry-duplicate``,
``archive-top-folder`` (not exactly one top-level folder) and
``archive-truncated`` (the archive ends or breaks mid-entry). A decompression
bomb (more than ``max_ratio`` bytes out per byte in, past ``bomb_floor``) or
an archive over ``max_bytes`` is a resource guard: ``ArchiveGuard`` (exit 3,
"could not verify"), never a verdict.

    >>> report = verify_archive(Path("out/essay-20261125T093000Z.tar.gz"))
    >>> report.valid
    True
"""

from __future__ import annotations

import hashlib
import io
import queue
import tarfile
import threading
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Callable

from archiver.bagit.parse import MANIFEST_NAME, TAG_MANIFEST_NAME, lookup_encoding, parse_bagit_txt, parse_manifest
from archiver.bagit.reader import FileEntry
from archiver.bagit.verify import BagReport, Problem, verify_bag
from archiver.errors import StorageError
from archiver.exchange.archive_entries import (CHUNK, _clean_name, _Counting, _Entry, _tar_entries, _zip_entries,  # noqa: F401
                                               drain, open_tar_stream)

ARCHIVE_CODES = {
    "archive-entry-unsafe": "an entry name is absolute or has a '..' component",
    "archive-entry-link": "a symbolic or hard link entry (never followed)",
    "archive-entry-special": "a device, FIFO or other non-file entry",
    "archive-entry-duplicate": "two entries with the same name",
    "archive-top-folder": "the archive does not hold exactly one top-level folder",
    "archive-truncated": "the archive ends or is corrupt in the middle of an entry",
    "archive-unreadable": "the archive is not a tar, tar.gz or zip archive",
}
SUFFIXES = {".tar": "tar", ".tar.gz": "tar.gz", ".tgz": "tar.gz", ".zip": "zip"}
DEFAULT_ALGORITHMS = ("md5", "sha1", "sha256", "sha512")
KEPT_TAG_FILE = 256 * 1024 * 1024  # a top-level tag file kept in memory, at most


class ArchiveGuard(StorageError):
    """A resource guard stopped the pass: the archive could not be verified (exit 3)."""


def archive_kind(name: str) -> str | None:
    """'tar', 'tar.gz' or 'zip' for an archive file name, else None."""
    lower = name.lower()
    for suffix in sorted(SUFFIXES, key=len, reverse=True):
        if lower.endswith(suffix):
            return SUFFIXES[suffix]
    return None


def bag_name_of(name: str) -> str:
    """The archive's file name without its archive suffix."""
    base = name.rsplit("/", 1)[-1]
    kind = archive_kind(base)
    for suffix, of in sorted(SUFFIXES.items(), key=lambda s: -len(s[0])):
        if of == kind and base.lower().endswith(suffix):
            return base[: -len(suffix)]
    return base


@dataclass
class ArchiveSource:
    """Where an archive's bytes come from: ``open()`` gives a fresh binary stream
    from the start (a local file, an S3 GET); ``seekable`` for zip."""

    location: str
    kind: str
    open: Callable[[], BinaryIO]
    size: int | None = None

    @classmethod
    def local(cls, path: Path) -> "ArchiveSource":
        kind = archive_kind(path.name)
        if kind is None:
            raise StorageError(f"{path} is not a .tar, .tar.gz, .tgz or .zip file")
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise StorageError(f"cannot read {path}: {exc.strerror}") from exc
        return cls(str(path), kind, lambda: open(path, "rb"), size)

    @property
    def name(self) -> str:
        return bag_name_of(self.location)


@dataclass
class Scan:
    """What one pass over an archive learnt."""

    top: str | None = None
    files: dict[str, int] = field(default_factory=dict)          # bag path -> size
    folders: set[str] = field(default_factory=set)
    digests: dict[str, dict[str, bytes]] = field(default_factory=dict)  # algorithm -> path -> digest
    kept: dict[str, bytes] = field(default_factory=dict)          # small top-level tag files
    problems: list[Problem] = field(default_factory=list)
    algorithms: tuple[str, ...] = ()
    read_bytes: int = 0
    order: list[str] = field(default_factory=list)               # entries as they came

    def problem(self, code: str, entry: str, message: str) -> None:
        self.problems.append(Problem(code, entry, message))


def _wanted_algorithms(names: list[str]) -> tuple[str, ...]:
    found = []
    for name in names:
        for pattern in (MANIFEST_NAME, TAG_MANIFEST_NAME):
            match = pattern.match(name)
            if match and match.group(1).lower() not in found:
                found.append(match.group(1).lower())
    return tuple(a for a in found if _hasher(a) is not None)


def _hasher(algorithm: str) -> Callable[[], Any] | None:
    try:
        hashlib.new(algorithm)
    except (ValueError, TypeError):
        return None
    return lambda: hashlib.new(algorithm)


_VERIFIER_READS = {"bagit.txt", "bag-info.txt", "package-info.txt", "fetch.txt"}
OTHER_TAG_FILE = 1024 * 1024  # other top-level tag files (aptrust-info.txt, ...) kept up to this size


def _kept_name(path: str, size: int = 0) -> bool:
    """Top-level tag files kept in memory: those the verifier reads (bagit.txt,
    bag-info.txt, fetch.txt, the manifests; up to KEPT_TAG_FILE, whose size grows
    with the number of files) and small other ones, for profile checks."""
    if "/" in path:
        return False
    if path in _VERIFIER_READS or MANIFEST_NAME.match(path) or TAG_MANIFEST_NAME.match(path):
        return size <= KEPT_TAG_FILE
    return size <= OTHER_TAG_FILE


FANOUT_SIZE = 4 * 1024 * 1024  # entries this big are hashed on one thread per algorithm


class _Serial:
    def __init__(self, algorithms: tuple[str, ...]) -> None:
        self.hashers = [hashlib.new(a) for a in algorithms]

    def update(self, chunk: bytes) -> None:
        for hasher in self.hashers:
            hasher.update(chunk)

    def finish(self) -> list[bytes]:
        return [h.digest() for h in self.hashers]


class _Fanout(_Serial):
    """One thread per algorithm (hashlib releases the GIL on large updates), so the
    digests and the reading (gunzip) of the next chunk run side by side. Each
    queue holds at most 4 chunks: memory stays bounded."""

    def __init__(self, algorithms: tuple[str, ...]) -> None:
        super().__init__(algorithms)
        self.queues: list[queue.Queue[bytes | None]] = [queue.Queue(maxsize=4) for _ in self.hashers]
        self.threads = [threading.Thread(target=self._run, args=(h, q), daemon=True)
                        for h, q in zip(self.hashers, self.queues)]
        for thread in self.threads:
            thread.start()

    @staticmethod
    def _run(hasher: Any, chunks: "queue.Queue[bytes | None]") -> None:
        while (chunk := chunks.get()) is not None:
            hasher.update(chunk)

    def update(self, chunk: bytes) -> None:
        for chunks in self.queues:
            chunks.put(chunk)

    def finish(self) -> list[bytes]:
        for chunks in self.queues:
            chunks.put(None)
        for thread in self.threads:
            thread.join()
        return super().finish()


class _Pass:
    def __init__(self, source: ArchiveSource, algorithms: tuple[str, ...], max_ratio: float,
                 bomb_floor: int, max_bytes: int | None, on_progress: Callable[..., None] | None) -> None:
        self.source = source
        self.scan = Scan(algorithms=algorithms)
        self.max_ratio = max_ratio
        self.bomb_floor = bomb_floor
        self.max_bytes = max_bytes
        self.on_progress = on_progress
        self.seen: set[str] = set()
        self.counter: _Counting | None = None
        self.packed = 0  # zip: compressed bytes of the entries read so far

    def run(self) -> Scan:
        try:
            raw = self.source.open()
        except OSError as exc:
            raise StorageError(f"cannot read {self.source.location}: {exc}") from exc
        current = "(archive)"
        with raw:
            if self.source.kind == "zip":
                stream: BinaryIO = raw if raw.seekable() else io.BytesIO(raw.read())
            else:
                self.counter = _Counting(raw)
                stream = io.BufferedReader(self.counter, CHUNK)
            try:
                entries = (_zip_entries(stream) if self.source.kind == "zip"
                           else _tar_entries(stream, self.source.kind == "tar.gz"))
                for entry in entries:
                    current = entry.name
                    self._take(entry)
            except ArchiveGuard:
                raise
            except (tarfile.TarError, zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
                if current == "(archive)" and not self.scan.order:
                    code = "archive-truncated" if isinstance(exc, EOFError) else "archive-unreadable"
                    self.scan.problem(code, current, f"{self.source.location}: {exc}")
                else:
                    self.scan.problem("archive-truncated", current,
                                      f"the archive ends or breaks in or after entry {current!r}: {exc}")
        return self.scan

    def _take(self, entry: _Entry) -> None:
        scan = self.scan
        scan.order.append(entry.name)
        name = _clean_name(entry.name)
        if name is None:
            scan.problem("archive-entry-unsafe", entry.name, f"entry {entry.name!r} is absolute or leaves its folder")
            return
        top, _, rest = name.partition("/")
        if scan.top is None:
            scan.top = top
        if top != scan.top or (not rest and entry.kind != "dir"):
            scan.problem("archive-top-folder", entry.name,
                         f"entry {entry.name!r} is not inside the one top-level folder {scan.top!r}")
            return
        if entry.kind == "link":
            scan.problem("archive-entry-link", entry.name, f"entry {entry.name!r} is a link (never followed)")
            return
        if entry.kind == "special":
            scan.problem("archive-entry-special", entry.name,
                         f"entry {entry.name!r} is a device, FIFO or other non-file")
            return
        if name in self.seen:
            scan.problem("archive-entry-duplicate", entry.name, f"entry {entry.name!r} appears more than once")
            return
        self.seen.add(name)
        if entry.kind == "dir":
            if rest:
                scan.folders.add(rest)
            return
        if not scan.algorithms and not _kept_name(rest, entry.size):
            scan.algorithms = _wanted_algorithms(list(scan.kept)) or DEFAULT_ALGORITHMS
        self._hash(rest, entry)

    def _hash(self, path: str, entry: _Entry) -> None:
        scan = self.scan
        keep = _kept_name(path, entry.size)
        # a kept file is hashed at the end, with whatever algorithm the manifests name
        algorithms = () if keep else tuple(scan.algorithms or DEFAULT_ALGORITHMS)
        hashers = _Fanout(algorithms) if entry.size >= FANOUT_SIZE else _Serial(algorithms)
        kept = bytearray() if keep else None
        size = 0
        self.packed += entry.packed
        stream = entry.stream()
        try:
            if stream is not None:
                with stream:
                    while chunk := stream.read(CHUNK):
                        size += len(chunk)
                        self._guard(entry.name, len(chunk))
                        hashers.update(chunk)
                        if kept is not None:
                            kept += chunk
        finally:
            digests = hashers.finish()
        scan.files[path] = size
        for algorithm, digest in zip(algorithms, digests):
            scan.digests.setdefault(algorithm, {})[path] = digest
        if kept is not None:
            scan.kept[path] = bytes(kept)

    def _guard(self, entry: str, n: int) -> None:
        scan = self.scan
        scan.read_bytes += n
        if self.max_bytes is not None and scan.read_bytes > self.max_bytes:
            raise ArchiveGuard(f"archive-too-large: {self.source.location} holds more than {self.max_bytes} "
                               f"bytes (at entry {entry!r}); could not verify")
        consumed = max(self.counter.count if self.counter else self.packed, 1)
        if self.source.kind != "tar" and scan.read_bytes > self.bomb_floor \
                and scan.read_bytes > consumed * self.max_ratio:
            raise ArchiveGuard(f"archive-bomb: entry {entry!r} of {self.source.location} expands more than "
                               f"{self.max_ratio:g} times; could not verify (decompression bomb guard)")
        if self.on_progress:
            self.on_progress(scan.read_bytes, None, "hashing")


class ScannedBag:
    """A ``BagReader`` over one pass's results: sizes, folders, and the kept tag files.
    Payload bytes are not kept, so ``open`` of a payload file is a StorageError."""

    def __init__(self, location: str, scan: Scan) -> None:
        self.location = location
        self.scan = scan

    def list_files(self) -> list[FileEntry]:
        return [FileEntry(path, size) for path, size in sorted(self.scan.files.items())]

    def is_dir(self, path: str) -> bool:
        if path in self.scan.folders:
            return True
        prefix = path.rstrip("/") + "/"
        return any(p.startswith(prefix) for p in self.scan.files)

    def open(self, path: str) -> BinaryIO:
        if path in self.scan.kept:
            return io.BytesIO(self.scan.kept[path])
        if path in self.scan.files:
            raise StorageError(f"{path} is not kept in memory while verifying {self.location} in place")
        raise FileNotFoundError(path)


def scan_archive(source: ArchiveSource, on_progress: Callable[..., None] | None = None,
                 max_ratio: float = 1000.0, bomb_floor: int = 64 * 1024 * 1024,
                 max_bytes: int | None = None) -> Scan:
    """One pass over the archive (a second only if a manifest names an algorithm the
    first did not hash; see the module docstring)."""
    hint = _listing_hint(source)
    scan = _Pass(source, hint, max_ratio, bomb_floor, max_bytes, on_progress).run()
    wanted = _wanted_algorithms(list(scan.kept))
    for algorithm in wanted:
        table = scan.digests.setdefault(algorithm, {})
        for path, raw in scan.kept.items():
            table[path] = hashlib.new(algorithm, raw).digest()
    missing = [a for a in wanted if a not in scan.algorithms]
    if missing and set(scan.files) - set(scan.kept):
        again = _Pass(source, tuple(missing), max_ratio, bomb_floor, max_bytes, on_progress).run()
        for algorithm in missing:
            scan.digests[algorithm].update(again.digests.get(algorithm, {}))
    return scan


def _listing_hint(source: ArchiveSource) -> tuple[str, ...]:
    """For a local zip or plain tar the manifests' names are known before hashing."""
    if source.kind == "tar.gz" or not Path(source.location).is_file():
        return ()
    try:
        if source.kind == "zip":
            with zipfile.ZipFile(source.location) as archive:
                names = archive.namelist()
        else:
            with tarfile.open(source.location, "r:") as tar:
                names = [m.name for m in tar]
    except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError):
        return ()
    return _wanted_algorithms([n.rstrip("/").split("/", 1)[-1] for n in names])


def verify_archive(source: ArchiveSource | Path | str, mode: str = "full",
                   on_progress: Callable[..., None] | None = None, **guards: Any) -> BagReport:
    """Verify a serialised bag in place. Archive problems, the verifier's
    (completeness) problems and checksum mismatches in one ``BagReport``."""
    if not isinstance(source, ArchiveSource):
        source = ArchiveSource.local(Path(source))
    return verify_scan(source, scan_archive(source, on_progress, **guards), mode)


def verify_scan(source: ArchiveSource, scan: Scan, mode: str = "full", tsa_ca: bytes | None = None) -> BagReport:
    """The report for one scanned archive (see ``verify_archive``); ``tsa_ca``
    checks an RFC 3161 token's signature, as for a folder."""
    inner = verify_bag(ScannedBag(source.location, scan), "fast" if mode == "fast" else "completeness",
                       tsa_ca=tsa_ca)
    problems = list(scan.problems) + list(inner.problems)
    if mode == "full":
        problems += _checksum_problems(scan, inner.version)
    return BagReport(source.location, not problems, mode, problems, inner.warnings, inner.version,
                     inner.files, inner.bytes, inner.timestamp)


def _checksum_problems(scan: Scan, version: str | None) -> list[Problem]:
    encoding = "utf-8"
    if "bagit.txt" in scan.kept:
        _version, declared, _findings = parse_bagit_txt(scan.kept["bagit.txt"])
        encoding = lookup_encoding(declared) or "utf-8"
    problems = []
    for name in sorted(scan.kept):
        match = MANIFEST_NAME.match(name) or TAG_MANIFEST_NAME.match(name)
        if not match:
            continue
        algorithm = match.group(1).lower()
        table = scan.digests.get(algorithm)
        if table is None:
            continue  # unsupported algorithm: the verifier reports it
        entries, _findings = parse_manifest(io.BytesIO(scan.kept[name]), name, algorithm, encoding)
        for entry in entries:
            got = table.get(entry.path)
            if got is not None and got.hex() != entry.digest.lower():
                problems.append(Problem("checksum-mismatch", entry.path,
                                        f"{algorithm} checksum does not match {name}: "
                                        f"expected {entry.digest}, found {got.hex()}"))
    return problems
