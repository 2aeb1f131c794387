"""Hashing bag files fast: every algorithm in one read pass, many files in parallel.

- ``hash_stream`` / ``check_stream``: one stream, all digests in one pass
  (the mirror uses ``check_stream`` to check a copied file against the
  manifest entries of the original).
- ``check_local_files``: many files of a local bag against their expected
  digests. Files are grouped into batches (by count and bytes) and hashed by a
  pool of worker processes, so 50,000 small files cost little more than their
  bytes; a big file is a batch of its own, so two cores hash two big files at
  once. Small jobs are hashed in-process (a pool costs ~20 ms to start).
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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import BinaryIO, Callable, Iterable, Sequence

from .bagit_parse import hash_name

_CHUNK = 1 << 20
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_BINARY = getattr(os, "O_BINARY", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)  # regular files ignore it; FIFOs must not block
BATCH_FILES = 256
BATCH_BYTES = 8 << 20
IN_PROCESS_BYTES = 32 << 20
IN_PROCESS_FILES = 512

# (path relative to the bag root, size, ((algorithm, expected hex digest), ...))
HashJob = tuple[str, int, tuple[tuple[str, str], ...]]
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


def _check_fd(fd: int, size: int, expected: tuple[tuple[str, str], ...], path: str) -> list[HashMismatch]:
    hashers = {alg: hashlib.new(hash_name(alg)) for alg, _want in expected}
    data = os.read(fd, min(size, _CHUNK) + 1)  # one read for a small file (+1 sees growth)
    while data:
        for hasher in hashers.values():
            hasher.update(data)
        if len(data) <= size < _CHUNK:
            break
        data = os.read(fd, _CHUNK)
    found = {alg: hasher.hexdigest() for alg, hasher in hashers.items()}
    return [HashMismatch(path, alg, want, found[alg]) for alg, want in expected if found[alg] != want]


def _check_batch(root: str, batch: Sequence[HashJob]) -> tuple[int, list[HashMismatch], list[HashFailure]]:
    """Worker: check one batch of files below ``root``. Returns (files done, mismatches, failures)."""
    mismatches: list[HashMismatch] = []
    failures: list[HashFailure] = []
    for path, size, expected in batch:
        try:
            # Paths come from a no-follow listing of the bag; O_NOFOLLOW refuses
            # a file swapped for a symlink since.
            fd = os.open(os.path.join(root, path), os.O_RDONLY | _NOFOLLOW | _NONBLOCK | _BINARY)
        except OSError as exc:
            failures.append(HashFailure(path, exc.strerror or str(exc)))
            continue
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):  # a FIFO or device would hang or never end
                failures.append(HashFailure(path, "not a regular file"))
                continue
            mismatches.extend(_check_fd(fd, size, expected, path))
        except OSError as exc:
            failures.append(HashFailure(path, exc.strerror or str(exc)))
        finally:
            os.close(fd)
    return len(batch), mismatches, failures


def make_batches(jobs: Sequence[HashJob]) -> list[list[HashJob]]:
    """Group jobs into batches of at most BATCH_FILES files or about BATCH_BYTES bytes."""
    batches: list[list[HashJob]] = []
    current: list[HashJob] = []
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


def check_local_files(root: str, jobs: Sequence[HashJob], processes: int | None = None,
                      on_progress: ProgressCallback | None = None,
                      ) -> tuple[list[HashMismatch], list[HashFailure]]:
    """Check every job's file under ``root`` against its expected digests."""
    total = len(jobs)
    mismatches: list[HashMismatch] = []
    failures: list[HashFailure] = []
    workers = processes or os.cpu_count() or 1
    total_bytes = sum(job[1] for job in jobs)
    done = 0
    batches = make_batches(jobs)
    if workers <= 1 or len(batches) <= 1 or (total <= IN_PROCESS_FILES and total_bytes <= IN_PROCESS_BYTES):
        for batch in batches:
            count, bad, failed = _check_batch(root, batch)
            done += count
            mismatches += bad
            failures += failed
            if on_progress:
                on_progress(done, total, "hashing")
        return mismatches, failures
    with _pool_context().Pool(min(workers, len(batches))) as pool:
        results = pool.imap_unordered(_check_batch_star, [(root, batch) for batch in batches])
        for count, bad, failed in results:
            done += count
            mismatches += bad
            failures += failed
            if on_progress:
                on_progress(done, total, "hashing")
    return mismatches, failures


def _check_batch_star(args: tuple[str, Sequence[HashJob]]):
    return _check_batch(*args)


def check_streams(open_stream: Callable[[str], BinaryIO], jobs: Sequence[HashJob],
                  threads: int | None = None, on_progress: ProgressCallback | None = None,
                  ) -> tuple[list[HashMismatch], list[HashFailure]]:
    """Like ``check_local_files`` for any reader: ``open_stream(path)`` gives a
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
