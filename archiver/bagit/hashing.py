"""Hashing bag files: the one place archiver turns bytes into digests.

- ``hash_stream``: every algorithm over one stream in one read pass;
  ``hash_file`` (a local file, e.g. while writing a bag) and ``digest_of`` (a
  file of any reader, e.g. a mirror's copy) call it.
- ``check_stream``: one stream against expected digests; a mismatch is a
  ``Problem`` (``checksum-mismatch``) like every other finding, made by
  ``mismatch_problem``.
- ``LocalDigests``: the digests of many files of a local bag, started as soon
  as the file list is known so that hashing overlaps manifest parsing. Files
  are grouped into batches (by count and bytes) and hashed by a pool of worker
  processes, so 50,000 small files cost little more than their bytes; a big
  file is a batch of its own, so two cores hash two big files at once. Small
  jobs are hashed in-process (a pool costs ~20 ms to start). Its fast paths
  each have a name: ``_digest_fd`` (a small file in one read, else chunks into
  a reused buffer) and ``LocalDigests._take_uniform`` (a batch's digests
  sliced in bulk).
- ``check_streams``: the same for any ``BagReader`` (e.g. S3), with threads,
  since reading from a network store waits on I/O and hashlib releases the
  GIL on large buffers.

    >>> check_stream(open("data/text.txt", "rb"), {"sha256": "ab..."}, "data/text.txt")
    [Problem(code='checksum-mismatch', path='data/text.txt', message='sha256 checksum does not match ...')]
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import stat
import threading
from concurrent.futures import ThreadPoolExecutor
from operator import itemgetter
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Callable, Iterable, Iterator, Protocol, Sequence

from archiver.bagit.parse import hash_name
from archiver.bagit.report import Problem

if TYPE_CHECKING:
    from multiprocessing.pool import Pool

_CHUNK = 1 << 20
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_BINARY = getattr(os, "O_BINARY", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)  # regular files ignore it; FIFOs must not block
_OPEN_FLAGS = os.O_RDONLY | _NOFOLLOW | _NONBLOCK | _BINARY
BATCH_FILES = 256
BATCH_BYTES = 8 << 20
IN_PROCESS_BYTES = 32 << 20
IN_PROCESS_FILES = 512

# (path relative to the bag root, size, ((algorithm, expected hex digest), ...))
HashJob = tuple[str, int, tuple[tuple[str, str], ...]]
# (path relative to the folder, size or -1 if unknown, (algorithm, ...))
DigestJob = tuple[str, int, tuple[str, ...]]
ProgressCallback = Callable[[int, int, str], None]   # (done, total, what)
# A worker's answer for one batch: (batch index, sizes, concatenated raw digests, failures)
BatchResult = tuple[int, list[int], bytes, list[Problem]]


class Opener(Protocol):
    """Anything that opens a bag's file by its relative path (a ``BagReader``)."""

    def open(self, path: str) -> BinaryIO: ...


def mismatch_problem(path: str, algorithm: str, expected: str, found: str) -> Problem:
    """The finding for a file whose ``algorithm`` digest is not its manifest's."""
    manifest = f"manifest-{algorithm}.txt" if path.startswith("data/") else f"tagmanifest-{algorithm}.txt"
    return Problem("checksum-mismatch", path, f"{algorithm} checksum does not match {manifest}: "
                                              f"expected {expected}, found {found}")


def unreadable_problem(path: str, reason: str) -> Problem:
    """The finding for a file that could not be read to the end while hashing."""
    return Problem("file-unreadable", path, f"cannot read {path}: {reason}")


def _chunks(stream: BinaryIO) -> Iterator[bytes | memoryview]:
    """The stream's bytes in pieces, read into one reused buffer where it can."""
    readinto = getattr(stream, "readinto", None)
    if readinto is None:
        while data := stream.read(_CHUNK):
            yield data
        return
    buffer = bytearray(_CHUNK)
    view = memoryview(buffer)
    while count := readinto(buffer):
        yield view[:count]


def hash_stream(stream: BinaryIO, algorithms: Iterable[str]) -> tuple[dict[str, str], int]:
    """({algorithm: hex digest}, size) of everything ``stream`` yields, in one pass."""
    hashers = {alg: _constructor(alg)() for alg in algorithms}
    size = 0
    for piece in _chunks(stream):
        size += len(piece)
        for hasher in hashers.values():
            hasher.update(piece)
    return {alg: hasher.hexdigest() for alg, hasher in hashers.items()}, size


def hash_file(path: Path | str, algorithms: Iterable[str]) -> tuple[dict[str, str], int]:
    """Every digest of a local file in one read pass, and its size."""
    with open(path, "rb") as stream:
        return hash_stream(stream, algorithms)


def digest_of(reader: Opener, path: str, algorithm: str) -> tuple[str, int]:
    """Hex digest and size of one file of ``reader``."""
    with reader.open(path) as stream:
        digests, size = hash_stream(stream, (algorithm,))
    return digests[algorithm], size


def check_stream(stream: BinaryIO, expected: dict[str, str], path: str = "") -> list[Problem]:
    """Hash ``stream`` with every algorithm of ``expected`` ({alg: hex}) in one
    pass; return a ``checksum-mismatch`` Problem per digest that differs."""
    found, _size = hash_stream(stream, expected)
    return [mismatch_problem(path, alg, want.lower(), found[alg])
            for alg, want in expected.items() if found[alg] != want.lower()]


def _constructor(algorithm: str) -> Callable[..., "hashlib._Hash"]:
    """hashlib's constructor for a manifest algorithm (cached: 50,000 files ask)."""
    found = _CONSTRUCTORS.get(algorithm)
    if found is None:
        name = hash_name(algorithm)
        found = getattr(hashlib, name, None) or (lambda data=b"": hashlib.new(name, data))
        _CONSTRUCTORS[algorithm] = found
    return found


_CONSTRUCTORS: dict[str, Callable[..., "hashlib._Hash"]] = {}


def _digest_fd(fd: int, size: int, makers: Sequence[Callable[..., "hashlib._Hash"]]) -> list[bytes]:
    """Raw digests of an open file, one per constructor in ``makers``, in one read pass.

    Fast path: a small file is one read (+1 byte to see growth) hashed at once.
    Otherwise the file is read into one reused buffer: a fresh 1 MiB bytes per
    read would be a fresh mmap each time, and the kernel zero-fills every page."""
    if size < _CHUNK:
        data = os.read(fd, size + 1)
        if len(data) <= size:
            return [new(data).digest() for new in makers]
        os.lseek(fd, 0, os.SEEK_SET)  # it grew: hash it as a big file
    hashers = [new() for new in makers]
    buffer = _read_buffer()
    view = memoryview(buffer)
    while count := os.readv(fd, [buffer]):
        piece = view[:count]
        for hasher in hashers:
            hasher.update(piece)
    return [hasher.digest() for hasher in hashers]


_local = threading.local()


def _read_buffer() -> bytearray:
    buffer: bytearray | None = getattr(_local, "buffer", None)
    if buffer is None:
        buffer = _local.buffer = bytearray(_CHUNK)
    return buffer


def _digest_batch(root: str, batch: Sequence[DigestJob]) -> tuple[list[int], bytes, list[Problem]]:
    """Worker: one batch of files below ``root``. Returns the size of each job's
    file (-1 where it failed), the raw digests of the files that did not fail
    concatenated in job and algorithm order (one bytes object pickles far faster
    than 50,000 small tuples), and the failures."""
    sizes: list[int] = []
    digests: list[bytes] = []
    failures: list[Problem] = []
    makers: dict[tuple[str, ...], list[Callable[..., "hashlib._Hash"]]] = {}
    for path, _size, algorithms in batch:
        try:
            # Paths come from a no-follow listing of the bag; O_NOFOLLOW refuses
            # a file swapped for a symlink since.
            fd = os.open(f"{root}/{path}", _OPEN_FLAGS)
        except OSError as exc:
            failures.append(unreadable_problem(path, exc.strerror or str(exc)))
            sizes.append(-1)
            continue
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):  # a FIFO or device would hang or never end
                raise OSError(0, "not a regular file")
            if algorithms:
                make = makers.get(algorithms) or makers.setdefault(algorithms, [_constructor(a) for a in algorithms])
                digests += _digest_fd(fd, info.st_size, make)
            sizes.append(info.st_size)
        except OSError as exc:
            failures.append(unreadable_problem(path, exc.strerror or str(exc)))
            sizes.append(-1)
        finally:
            os.close(fd)
    return sizes, b"".join(digests), failures


# Batches handed to forked workers through memory they inherit, not through a
# pipe: a task is then just (root, key, index).
_FORKED_BATCHES: dict[int, list[list[DigestJob]]] = {}


def _digest_task(args: tuple[str, int, int, Sequence[DigestJob] | None]) -> BatchResult:
    root, key, index, batch = args
    if batch is None:
        batch = _FORKED_BATCHES[key][index]
    return (index, *_digest_batch(root, batch))


def make_batches(jobs: Sequence[DigestJob], workers: int = 1) -> list[list[DigestJob]]:
    """Group jobs into batches of at most BATCH_FILES files or about BATCH_BYTES
    bytes; when sizes are unknown (-1), small enough batches that every worker
    gets several."""
    per_batch = max(1, min(BATCH_FILES, -(-len(jobs) // (workers * 8))))
    if jobs and jobs[0][1] < 0:  # sizes unknown: equal counts, in listing order
        return [list(jobs[i:i + per_batch]) for i in range(0, len(jobs), per_batch)]
    batches: list[list[DigestJob]] = []
    current: list[DigestJob] = []
    current_bytes = 0
    for job in jobs:
        size = max(job[1], 0)
        if current and (len(current) >= per_batch or current_bytes + size > BATCH_BYTES):
            batches.append(current)
            current, current_bytes = [], 0
        current.append(job)
        current_bytes += size
    if current:
        batches.append(current)
    # Big batches first, so the last batch to finish is a small one.
    batches.sort(key=lambda b: -sum(max(job[1], 0) for job in b))
    return batches


def _pool_context() -> multiprocessing.context.BaseContext:
    # fork starts workers in milliseconds; the workers only read files and hash.
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


class LocalDigests:
    """Sizes and digests of many files of a local folder, computed in the background.

    Created as soon as the file names are known, so worker processes stat and
    hash while the caller parses manifests; ``wait`` collects them. Small jobs
    run in-process at ``wait`` (a pool is not worth starting). Use as a context
    manager, or call ``close``, so workers never outlive it.
    """

    def __init__(self, root: str, jobs: Sequence[DigestJob], processes: int | None = None) -> None:
        self.root = root
        self.total = len(jobs)
        workers = processes or os.cpu_count() or 1
        self.batches = make_batches(jobs, workers)
        known = all(job[1] >= 0 for job in jobs)
        total_bytes = sum(job[1] for job in jobs) if known else IN_PROCESS_BYTES + 1
        small = self.total <= IN_PROCESS_FILES and total_bytes <= IN_PROCESS_BYTES
        self._pool: Pool | None = None
        self._results: Iterator[BatchResult] | None = None
        self._key = id(self)
        if workers > 1 and len(self.batches) > 1 and not small:
            context = _pool_context()
            forked = context.get_start_method() == "fork"
            if forked:
                _FORKED_BATCHES[self._key] = self.batches
            self._pool = context.Pool(min(workers, len(self.batches)))
            tasks = [(root, self._key, i, None if forked else batch) for i, batch in enumerate(self.batches)]
            self._results = self._pool.imap_unordered(_digest_task, tasks)

    def wait(self, on_progress: ProgressCallback | None = None,
             ) -> tuple[dict[str, dict[str, bytes]], dict[str, int], list[Problem]]:
        """({algorithm: {path: raw digest}}, {path: size}, failures). One table per
        algorithm lets callers compare a whole manifest in C; raw digests are
        half the memory of hex."""
        tables: dict[str, dict[str, bytes]] = {}
        sizes: dict[str, int] = {}
        failures: list[Problem] = []
        results = self._results if self._results is not None else \
            ((i, *_digest_batch(self.root, batch)) for i, batch in enumerate(self.batches))
        widths: dict[str, int] = {}
        done = 0
        for index, batch_sizes, digests, failed in results:
            batch = self.batches[index]
            done += len(batch)
            if not failed and len({job[2] for job in batch}) == 1:
                self._take_uniform(batch, batch_sizes, digests, widths, tables, sizes)
            else:
                self._take_each(batch, batch_sizes, digests, widths, tables, sizes)
            failures += failed
            if on_progress:
                on_progress(done, self.total, "hashing")
        self.close()
        return tables, sizes, failures

    @staticmethod
    def _width(algorithm: str, widths: dict[str, int], tables: dict[str, dict[str, bytes]]) -> int:
        width = widths.get(algorithm)
        if width is None:
            width = widths[algorithm] = _constructor(algorithm)().digest_size
            tables.setdefault(algorithm, {})
        return width

    def _take_uniform(self, batch: Sequence[DigestJob], batch_sizes: list[int], digests: bytes,
                      widths: dict[str, int], tables: dict[str, dict[str, bytes]], sizes: dict[str, int]) -> None:
        """A batch whose files all succeeded with the same algorithms: the digest
        bytes have a fixed stride, so each table is filled by slicing in bulk."""
        paths = list(map(itemgetter(0), batch))
        sizes.update(zip(paths, batch_sizes))
        algorithms = batch[0][2]
        stride = sum(self._width(alg, widths, tables) for alg in algorithms)
        offset, end = 0, len(digests)
        for alg in algorithms:
            width = widths[alg]
            # Slices made and taken in C: digests[start:start + width] for every file.
            pieces = map(digests.__getitem__, map(slice, range(offset, end, stride),
                                                  range(offset + width, end + width, stride)))
            tables[alg].update(zip(paths, pieces))
            offset += width

    def _take_each(self, batch: Sequence[DigestJob], batch_sizes: list[int], digests: bytes,
                   widths: dict[str, int], tables: dict[str, dict[str, bytes]], sizes: dict[str, int]) -> None:
        offset = 0
        for (path, _size, algorithms), size in zip(batch, batch_sizes):
            if size < 0:
                continue
            sizes[path] = size
            for algorithm in algorithms:
                width = self._width(algorithm, widths, tables)
                tables[algorithm][path] = digests[offset:offset + width]
                offset += width

    def close(self) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None
            _FORKED_BATCHES.pop(self._key, None)

    def __enter__(self) -> "LocalDigests":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def check_streams(open_stream: Callable[[str], BinaryIO], jobs: Sequence[HashJob],
                  threads: int | None = None, on_progress: ProgressCallback | None = None,
                  ) -> list[Problem]:
    """Check files of any reader against expected digests: ``open_stream(path)`` gives a
    binary stream. Returns the mismatches and the files that could not be read."""
    def one(job: HashJob) -> list[Problem]:
        path, _size, expected = job
        try:
            with open_stream(path) as stream:
                return check_stream(stream, dict(expected), path)
        except Exception as exc:  # noqa: BLE001 - any reader failure is reported per file
            return [unreadable_problem(path, str(exc) or type(exc).__name__)]

    found: list[Problem] = []
    total = len(jobs)
    with ThreadPoolExecutor(max_workers=threads or min(8, (os.cpu_count() or 1) * 2)) as executor:
        for done, problems in enumerate(executor.map(one, jobs), start=1):
            found += problems
            if on_progress:
                on_progress(done, total, "hashing")
    return found
