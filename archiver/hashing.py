"""Hashing bag files fast: every algorithm in one read pass, many files in parallel.

- ``hash_stream`` / ``check_stream``: one stream, all digests in one pass
  (the mirror uses ``check_stream`` to check a copied file against the
  manifest entries of the original).
- ``LocalDigests``: the digests of many files of a local bag, started as soon
  as the file list is known so that hashing overlaps manifest parsing. Files
  are grouped into batches (by count and bytes) and hashed by a pool of worker
  processes, so 50,000 small files cost little more than their bytes; a big
  file is a batch of its own, so two cores hash two big files at once. Small
  jobs are hashed in-process (a pool costs ~20 ms to start).
- ``check_streams``: the same for any ``BagReader`` (e.g. S3), with threads,
  since reading from a network store waits on I/O and hashlib releases the
  GIL on large buffers.

    >>> check_stream(open("data/text.txt", "rb"), {"sha256": "ab..."})
    [HashMismatch(path='', algorithm='sha256', expected='ab...', found='9f...')]
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import stat
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, BinaryIO, Callable, Iterable, Sequence

from .bagit_parse import hash_name

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
# (path relative to the folder, size, (algorithm, ...))
DigestJob = tuple[str, int, tuple[str, ...]]
ProgressCallback = Callable[..., None]


@dataclass(frozen=True)
class HashMismatch:
    path: str
    algorithm: str
    expected: str
    found: str


@dataclass(frozen=True)
class HashFailure:
    """A file that could not be read while hashing."""

    path: str
    reason: str


def hash_stream(stream: BinaryIO, algorithms: Iterable[str]) -> tuple[dict[str, str], int]:
    """({algorithm: hex digest}, size) of everything ``stream`` yields, in one pass."""
    hashers = {alg: hashlib.new(hash_name(alg)) for alg in algorithms}
    size = 0
    buffer = bytearray(_CHUNK)
    view = memoryview(buffer)
    readinto = getattr(stream, "readinto", None)
    while True:
        if readinto is not None:
            count = readinto(buffer)
            if not count:
                break
            piece = view[:count]
        else:
            data = stream.read(_CHUNK)
            if not data:
                break
            piece, count = data, len(data)
        size += count
        for hasher in hashers.values():
            hasher.update(piece)
    return {alg: hasher.hexdigest() for alg, hasher in hashers.items()}, size


def check_stream(stream: BinaryIO, expected: dict[str, str], path: str = "") -> list[HashMismatch]:
    """Hash ``stream`` with every algorithm of ``expected`` ({alg: hex}) in one
    pass; return the mismatches (empty when all match)."""
    found, _size = hash_stream(stream, expected)
    return [HashMismatch(path, alg, want.lower(), found[alg])
            for alg, want in expected.items() if found[alg] != want.lower()]


def _constructor(algorithm: str) -> Callable[[], Any]:
    """hashlib's constructor for a manifest algorithm (cached: 50,000 files ask)."""
    found = _CONSTRUCTORS.get(algorithm)
    if found is None:
        name = hash_name(algorithm)
        found = getattr(hashlib, name, None) or (lambda: hashlib.new(name))
        _CONSTRUCTORS[algorithm] = found
    return found


_CONSTRUCTORS: dict[str, Callable[[], Any]] = {}


def _digest_fd(fd: int, size: int, algorithms: tuple[str, ...]) -> tuple[str, ...]:
    """Hex digests of an open file, in ``algorithms`` order, in one read pass."""
    hashers = [_constructor(alg)() for alg in algorithms]
    if size < _CHUNK:
        data = os.read(fd, size + 1)  # one read for a small file (+1 sees growth)
        for hasher in hashers:
            hasher.update(data)
        if len(data) <= size:
            return tuple(hasher.hexdigest() for hasher in hashers)
    # Big (or grown) file: read into one reused buffer. A fresh 1 MiB bytes per
    # read would be a fresh mmap each time, and the kernel zero-fills every page.
    buffer = _read_buffer()
    view = memoryview(buffer)
    while count := os.readv(fd, [buffer]):
        piece = view[:count]
        for hasher in hashers:
            hasher.update(piece)
    return tuple(hasher.hexdigest() for hasher in hashers)


_local = threading.local()


def _read_buffer() -> bytearray:
    buffer = getattr(_local, "buffer", None)
    if buffer is None:
        buffer = _local.buffer = bytearray(_CHUNK)
    return buffer


def _digest_batch(root: str, batch: Sequence[DigestJob]) -> tuple[int, list[tuple[str, tuple[str, ...]]],
                                                                   list[HashFailure]]:
    """Worker: digests of one batch of files below ``root``: (files done, [(path, digests)], failures)."""
    results: list[tuple[str, tuple[str, ...]]] = []
    failures: list[HashFailure] = []
    for path, size, algorithms in batch:
        try:
            # Paths come from a no-follow listing of the bag; O_NOFOLLOW refuses
            # a file swapped for a symlink since.
            fd = os.open(f"{root}/{path}", _OPEN_FLAGS)
        except OSError as exc:
            failures.append(HashFailure(path, exc.strerror or str(exc)))
            continue
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):  # a FIFO or device would hang or never end
                failures.append(HashFailure(path, "not a regular file"))
                continue
            results.append((path, _digest_fd(fd, size, algorithms)))
        except OSError as exc:
            failures.append(HashFailure(path, exc.strerror or str(exc)))
        finally:
            os.close(fd)
    return len(batch), results, failures


def _digest_batch_star(args: tuple[str, Sequence[DigestJob]]):
    return _digest_batch(*args)


def make_batches(jobs: Sequence[DigestJob]) -> list[list[DigestJob]]:
    """Group jobs into batches of at most BATCH_FILES files or about BATCH_BYTES bytes."""
    batches: list[list[DigestJob]] = []
    current: list[DigestJob] = []
    current_bytes = 0
    for job in jobs:
        if current and (len(current) >= BATCH_FILES or current_bytes + job[1] > BATCH_BYTES):
            batches.append(current)
            current, current_bytes = [], 0
        current.append(job)
        current_bytes += job[1]
    if current:
        batches.append(current)
    # Big batches first, so the last batch to finish is a small one.
    batches.sort(key=lambda b: -sum(job[1] for job in b))
    return batches


def _pool_context():
    # fork starts workers in milliseconds; the workers only read files and hash.
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


class LocalDigests:
    """Digests of many files of a local folder, computed in the background.

    Created as soon as the file list is known, so worker processes hash while
    the caller parses manifests; ``wait`` collects {path: {algorithm: hex}}.
    Small jobs run in-process at ``wait`` (a pool is not worth starting).
    Use as a context manager, or call ``close``, so workers never outlive it.
    """

    def __init__(self, root: str, jobs: Sequence[DigestJob], processes: int | None = None) -> None:
        self.root = root
        self.total = len(jobs)
        self.batches = make_batches(jobs)
        workers = processes or os.cpu_count() or 1
        total_bytes = sum(job[1] for job in jobs)
        small = self.total <= IN_PROCESS_FILES and total_bytes <= IN_PROCESS_BYTES
        self._pool = None
        self._results = None
        if workers > 1 and len(self.batches) > 1 and not small:
            self._pool = _pool_context().Pool(min(workers, len(self.batches)))
            self._results = self._pool.imap_unordered(_digest_batch_star,
                                                      [(root, batch) for batch in self.batches])

    def wait(self, on_progress: ProgressCallback | None = None,
             ) -> tuple[dict[str, dict[str, str]], list[HashFailure]]:
        digests: dict[str, dict[str, str]] = {}
        failures: list[HashFailure] = []
        algorithms_of = {}
        for batch in self.batches:
            for path, _size, algorithms in batch:
                algorithms_of[path] = algorithms
        results = self._results if self._results is not None else \
            (_digest_batch(self.root, batch) for batch in self.batches)
        done = 0
        for count, found, failed in results:
            done += count
            for path, hexes in found:
                digests[path] = dict(zip(algorithms_of[path], hexes))
            failures += failed
            if on_progress:
                on_progress(done, self.total, "hashing")
        self.close()
        return digests, failures

    def close(self) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None

    def __enter__(self) -> "LocalDigests":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def check_streams(open_stream: Callable[[str], BinaryIO], jobs: Sequence[HashJob],
                  threads: int | None = None, on_progress: ProgressCallback | None = None,
                  ) -> tuple[list[HashMismatch], list[HashFailure]]:
    """Check files of any reader against expected digests: ``open_stream(path)`` gives a
    binary stream. Errors opening or reading a file become HashFailures."""
    def one(job: HashJob) -> tuple[list[HashMismatch], list[HashFailure]]:
        path, _size, expected = job
        try:
            with open_stream(path) as stream:
                return check_stream(stream, dict(expected), path), []
        except Exception as exc:  # noqa: BLE001 - any reader failure is reported per file
            return [], [HashFailure(path, str(exc) or type(exc).__name__)]

    mismatches: list[HashMismatch] = []
    failures: list[HashFailure] = []
    total = len(jobs)
    with ThreadPoolExecutor(max_workers=threads or min(8, (os.cpu_count() or 1) * 2)) as executor:
        for done, (bad, failed) in enumerate(executor.map(one, jobs), start=1):
            mismatches += bad
            failures += failed
            if on_progress:
                on_progress(done, total, "hashing")
    return mismatches, failures
