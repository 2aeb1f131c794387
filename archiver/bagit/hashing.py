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
from operator import itemgetter
from typing import Any, BinaryIO, Callable, Iterable, Sequence

from archiver.bagit.parse import hash_name

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
        found = getattr(hashlib, name, None) or (lambda data=b"": hashlib.new(name, data))
        _CONSTRUCTORS[algorithm] = found
    return found


_CONSTRUCTORS: dict[str, Callable[[], Any]] = {}


def _digest_fd(fd: int, size: int, algorithms: tuple[str, ...]) -> tuple[bytes, ...]:
    """Raw digests of an open file, in ``algorithms`` order, in one read pass."""
    hashers = [_constructor(alg)() for alg in algorithms]
    if size < _CHUNK:
        data = os.read(fd, size + 1)  # one read for a small file (+1 sees growth)
        for hasher in hashers:
            hasher.update(data)
        if len(data) <= size:
            return tuple(hasher.digest() for hasher in hashers)
    # Big (or grown) file: read into one reused buffer. A fresh 1 MiB bytes per
    # read would be a fresh mmap each time, and the kernel zero-fills every page.
    buffer = _read_buffer()
    view = memoryview(buffer)
    while count := os.readv(fd, [buffer]):
        piece = view[:count]
        for hasher in hashers:
            hasher.update(piece)
    return tuple(hasher.digest() for hasher in hashers)


_local = threading.local()


def _read_buffer() -> bytearray:
    buffer = getattr(_local, "buffer", None)
    if buffer is None:
        buffer = _local.buffer = bytearray(_CHUNK)
    return buffer


def _digest_batch(root: str, batch: Sequence[DigestJob]) -> tuple[list[int], bytes, list[HashFailure]]:
    """Worker: one batch of files below ``root``. Returns the size of each job's
    file (-1 where it failed), the raw digests of the files that did not fail
    concatenated in job and algorithm order (one bytes object pickles far faster
    than 50,000 small tuples), and the failures."""
    sizes: list[int] = []
    digests: list[bytes] = []
    failures: list[HashFailure] = []
    makers: dict[tuple[str, ...], list[Callable[..., Any]]] = {}
    for path, _size, algorithms in batch:
        try:
            # Paths come from a no-follow listing of the bag; O_NOFOLLOW refuses
            # a file swapped for a symlink since.
            fd = os.open(f"{root}/{path}", _OPEN_FLAGS)
        except OSError as exc:
            failures.append(HashFailure(path, exc.strerror or str(exc)))
            sizes.append(-1)
            continue
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):  # a FIFO or device would hang or never end
                raise OSError(0, "not a regular file")
            size = info.st_size
            if algorithms:
                make = makers.get(algorithms) or makers.setdefault(algorithms, [_constructor(a) for a in algorithms])
                # The common case inline, 50,000 times: a small file, one read (+1 sees growth).
                if size < _CHUNK and len(data := os.read(fd, size + 1)) <= size:
                    digests += [new(data).digest() for new in make]
                else:
                    os.lseek(fd, 0, os.SEEK_SET)
                    digests.extend(_digest_fd(fd, size, algorithms))
            sizes.append(size)
        except OSError as exc:
            failures.append(HashFailure(path, exc.strerror or str(exc)))
            sizes.append(-1)
        finally:
            os.close(fd)
    return sizes, b"".join(digests), failures


# Batches handed to forked workers through memory they inherit, not through a
# pipe: a task is then just (root, key, index).
_FORKED_BATCHES: dict[int, list[list[DigestJob]]] = {}


def _digest_task(args: tuple[str, int, int, Sequence[DigestJob] | None]):
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


def _pool_context():
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
        self._pool = None
        self._results = None
        if workers > 1 and len(self.batches) > 1 and not small:
            context = _pool_context()
            forked = context.get_start_method() == "fork"
            self._key = id(self)
            if forked:
                _FORKED_BATCHES[self._key] = self.batches
            self._pool = context.Pool(min(workers, len(self.batches)))
            tasks = [(root, self._key, i, None if forked else batch) for i, batch in enumerate(self.batches)]
            self._results = self._pool.imap_unordered(_digest_task, tasks)

    def wait(self, on_progress: ProgressCallback | None = None,
             ) -> tuple[dict[str, dict[str, bytes]], dict[str, int], list[HashFailure]]:
        """({algorithm: {path: raw digest}}, {path: size}, failures). One table per
        algorithm lets callers compare a whole manifest in C; raw digests are
        half the memory of hex."""
        tables: dict[str, dict[str, bytes]] = {}
        sizes: dict[str, int] = {}
        failures: list[HashFailure] = []
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

    def _take_uniform(self, batch, batch_sizes, digests, widths, tables, sizes) -> None:
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

    def _take_each(self, batch, batch_sizes, digests, widths, tables, sizes) -> None:
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
