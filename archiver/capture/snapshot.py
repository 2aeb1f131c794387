"""The snapshot pipeline: source → fetch → WARC → canonical text → bag → event.

    >>> results = snapshot(["https://example.org/essay"], SnapshotOptions(root=Path("bags")))
    >>> results[0].outcome, results[0].bag
    ('captured', 'essay-20261125T093000Z')

Every source is processed; a failed source leaves nothing behind and its
result says why in one line. A source captured before is re-checked with a
conditional request (If-None-Match / If-Modified-Since from its last capture):
a 304, or a body whose canonical text hashes the same as the last capture's,
makes no new bag but a ``capture`` event with outcome ``unchanged``.
``force=True`` bags anyway.

The parts: ``material`` turns a fetched page or a local file into what a bag
holds; ``naming`` gives the name a bag asks for; ``collection.record`` writes
the bag under that name or the next free one (``-2``, ``-3``…, atomically, so
concurrent runs on one root never fail on a name); ``collection.capture_log``
logs the event; ``collection.recovery`` logs bags a killed run left unlogged.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from archiver.capture.attachments import DEFAULT_ATTACHMENT_MAX_BYTES, fetch_attachments
from archiver.capture.fetch import Capture, Fetcher, FetchSettings
from archiver.capture.material import CaptureMaterial, material_from_capture, material_from_file
from archiver.capture.naming import bag_base_name
from archiver.capture.sources import resolve_source
from archiver.capture.timestamp_client import stamp_bag
from archiver.capture.warc import capture_to_warc
from archiver.collection.capture_log import (PreviousCapture, last_captures, log_captured, log_failure,
                                             log_unchanged)
from archiver.collection.recovery import record_unlogged_bags
from archiver.collection.record import release_written
from archiver.collection.root import collection_name, open_collection, remote_of
from archiver.errors import ArchiverError, SourceError


@dataclass
class SnapshotOptions:
    root: Path
    organization: str = "archiver"
    collection_id: str | None = None         # Bag-Group-Identifier; default: the root's folder name
    fetch: FetchSettings = field(default_factory=FetchSettings)
    force: bool = False
    workers: int = 4
    with_attachments: bool = False
    attachment_max_bytes: int = DEFAULT_ATTACHMENT_MAX_BYTES
    # sync: which attachments to capture, given the source URL and the links the page offers
    # (default: every link); it may add links the page lacks (an amusewiki text's .muse).
    choose_attachments: Callable[[str, list[dict]], list[dict]] | None = None
    fetcher: Fetcher | None = None             # sync: the fetcher its discovery used (one throttle, one robots.txt)
    timestamp_url: str | None = None           # an RFC 3161 TSA to stamp each new bag (capture/timestamp_client.py)


@dataclass
class SourceResult:
    source: str
    outcome: str                              # "captured" | "unchanged" | "failed"
    bag: str | None = None
    url: str | None = None
    final_url: str | None = None
    title: str | None = None
    reason: str | None = None
    exit_code: int = 0
    timestamp: dict[str, Any] | None = None   # with --timestamp-url: the stamping outcome (as in the event)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def snapshot(sources: list[str], options: SnapshotOptions,
             on_progress: Callable[..., None] | None = None) -> list[SourceResult]:
    """Capture every source into ``options.root``; return one result per source, in order.

    Fetching runs in threads of this process (so the per-host delay is kept
    across the whole batch); the CPU-bound part (decode, extract, WARC, bag)
    runs in a pool of processes when the batch is large enough to repay
    starting them (``PROCESS_POOL_MIN`` sources and more than one core).
    """
    root = open_collection(options.root)  # StorageError (exit 3) before any fetch
    remote = remote_of(root)
    collection_id = options.collection_id or collection_name(root)
    record_unlogged_bags(root)
    previous = last_captures(root)
    fetcher = options.fetcher or Fetcher(options.fetch)
    # Attachments are fetched after extraction, with the batch's fetcher (its
    # per-host delay), so that work stays in this process. A remote collection's
    # bags are published by this process (it holds their name claims).
    processes = 0 if options.with_attachments or remote else _process_count(len(sources))
    builder = _Builder(root, collection_id, options.organization, processes, options.timestamp_url,
                       (fetcher, options.attachment_max_bytes, options.choose_attachments)
                       if options.with_attachments else None)
    results: list[SourceResult | None] = [None] * len(sources)
    done = 0
    lock = threading.Lock()

    def run(index: int, source: str) -> None:
        nonlocal done
        result = _snapshot_one(source, root, options, fetcher, previous, builder)
        with lock:
            results[index] = result
            done += 1
            if on_progress:
                on_progress(done, len(sources), result.source)

    try:
        with ThreadPoolExecutor(max_workers=max(1, options.workers)) as pool:
            for future in [pool.submit(run, i, s) for i, s in enumerate(sources)]:
                future.result()
    finally:
        builder.close()
    return [r for r in results if r is not None]


PROCESS_POOL_MIN = 16


def _process_count(batch: int) -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return cores if batch >= PROCESS_POOL_MIN and cores > 1 else 0


@dataclass
class _BuildJob:
    """Everything a worker needs to turn a fetched source into a bag (picklable)."""

    source: str
    url: str
    capture: Capture | None          # an HTTP capture, or None for a local file
    prior: PreviousCapture | None


class _Builder:
    """Runs build jobs inline or in a process pool forked before any thread starts."""

    def __init__(self, root: Path, collection_id: str, organization: str, processes: int,
                 timestamp_url: str | None = None,
                 attachments: tuple[Fetcher, int, Callable | None] | None = None) -> None:
        self.context = (root, collection_id, organization, timestamp_url)
        self.attachments = attachments
        self.pool: ProcessPoolExecutor | None = None
        if processes:
            self.pool = ProcessPoolExecutor(max_workers=processes, mp_context=mp.get_context("fork"))
            # Start every worker now, while this process has a single thread.
            for future in [self.pool.submit(time.sleep, 0.05) for _ in range(processes)]:
                future.result()

    def run(self, job: _BuildJob) -> tuple[SourceResult, Path | None]:
        if self.pool is None:
            return _build(job, *self.context, attachments=self.attachments)
        return self.pool.submit(_build, job, *self.context).result()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()


def _snapshot_one(source: str, root: Path, options: SnapshotOptions, fetcher: Fetcher,
                  previous: dict[str, PreviousCapture], builder: _Builder) -> SourceResult:
    try:
        url = resolve_source(source)
    except ArchiverError as exc:
        return SourceResult(source, "failed", reason=str(exc), exit_code=exc.exit_code)
    prior = None if options.force else previous.get(url)
    capture = None
    try:
        if not url.startswith("file://"):
            capture = fetcher.fetch(url, conditional=_conditional_headers(prior))
            if capture.not_modified:
                assert prior is not None
                log_unchanged(root, url, prior, "HTTP 304 Not Modified")
                return SourceResult(source, "unchanged", bag=prior.bag, url=url,
                                    reason="HTTP 304 Not Modified")
    except SourceError as exc:
        log_failure(root, url, str(exc))
        return SourceResult(source, "failed", url=url, reason=str(exc), exit_code=exc.exit_code)
    result, bag_dir = builder.run(_BuildJob(source, url, capture, prior))
    if bag_dir is not None:
        _update_catalogue(root, bag_dir)
    return result


def _conditional_headers(prior: PreviousCapture | None) -> dict[str, str] | None:
    if prior is None:
        return None
    headers = {}
    if prior.etag:
        headers["If-None-Match"] = prior.etag
    if prior.last_modified:
        headers["If-Modified-Since"] = prior.last_modified
    return headers or None


def _build(job: _BuildJob, root: Path, collection_id: str, organization: str, timestamp_url: str | None = None,
           attachments: tuple[Fetcher, int, Callable | None] | None = None) -> tuple[SourceResult, Path | None]:
    """Decode, extract, render the WARC and write the bag (runs in a worker)."""
    source, url, prior = job.source, job.url, job.prior
    try:
        material = material_from_capture(job.capture) if job.capture else material_from_file(url)
        if attachments is not None and job.capture is not None:
            fetcher, cap, choose = attachments
            links = choose(url, material.extraction.links) if choose else material.extraction.links
            if links:
                material.attachments = fetch_attachments(fetcher, links, cap)
                material.warc = capture_to_warc(job.capture, attachments=material.attachments.captures)
        return bag_unless_unchanged(root, source, material, prior, collection_id, organization,
                                    update_catalogue=False, timestamp_url=timestamp_url)
    except Exception as exc:  # noqa: BLE001 - one source's bug must not end the batch
        return failed_result(root, source, url, exc), None


def bag_unless_unchanged(root: Path, source: str, material: CaptureMaterial, prior: PreviousCapture | None,
                         collection_id: str, organization: str,
                         update_catalogue: bool = True,
                         timestamp_url: str | None = None) -> tuple[SourceResult, Path | None]:
    """Write the capture's bag, unless its canonical text is the last capture's
    (then log an ``unchanged`` event and write nothing)."""
    title = material.extraction.text.title
    if prior is not None and prior.text_sha256 == material.text_sha256:
        log_unchanged(root, material.url, prior, "canonical text unchanged", material.etag, material.last_modified)
        return SourceResult(source, "unchanged", bag=prior.bag, url=material.url, final_url=material.final_url,
                            title=title, reason="canonical text unchanged"), None
    stamped: dict[str, Any] = {}
    bag_dir = write_capture_bag(root, material, collection_id, organization, update_catalogue=update_catalogue,
                                timestamp_url=timestamp_url, stamp_outcome=stamped)
    return SourceResult(source, "captured", bag=bag_dir.name, url=material.url, final_url=material.final_url,
                        title=title, timestamp=stamped or None), bag_dir


def failed_result(root: Path, source: str, url: str, exc: Exception) -> SourceResult:
    """The result of a source that failed with ``exc``: a source's own failure is
    logged as a failed capture; an unexpected error is reported as such (exit 3).
    Nothing was written either way (a record is written whole or not at all)."""
    if isinstance(exc, SourceError):
        log_failure(root, url, str(exc))
        return SourceResult(source, "failed", url=url, reason=str(exc), exit_code=exc.exit_code)
    if isinstance(exc, ArchiverError):
        return SourceResult(source, "failed", url=url, reason=str(exc), exit_code=exc.exit_code)
    reason = f"internal error ({type(exc).__name__}: {exc}); no bag was written - please report this"
    log_failure(root, url, reason)
    return SourceResult(source, "failed", url=url, reason=reason, exit_code=3)


def write_capture_bag(root: Path, material: CaptureMaterial, collection_id: str, organization: str,
                      update_catalogue: bool = True, timestamp_url: str | None = None,
                      stamp_outcome: dict[str, Any] | None = None) -> Path:
    """Write one bag for a capture under a free name, log its ``capture`` event,
    update the catalogue; return the bag's folder. With ``timestamp_url`` the built
    bag is stamped (RFC 3161) before it takes its name; a failed stamp leaves it
    unstamped, says why in ``stamp_outcome`` and the event, and never fails the capture."""
    record = material.to_record(collection_id, organization)
    base = bag_base_name(material.final_url, material.extraction.text.title, material.retrieved)
    # The bag stays held (flock) until its capture event is written, so that a concurrent
    # run does not take it for a bag a crash left unrecorded (see record_unlogged_bags).
    stamped: dict[str, Any] = {} if stamp_outcome is None else stamp_outcome
    stamp = (lambda tmp: stamped.update(stamp_bag(tmp, timestamp_url))) if timestamp_url else None
    bag_dir = record.write(root, base, keep_held=True, before_publish=stamp)
    try:
        log_captured(root, bag_dir.name, record, timestamp=stamped or None)
    finally:
        release_written(root, bag_dir)
    if update_catalogue:
        _update_catalogue(root, bag_dir)
    return bag_dir


def _update_catalogue(root: Path, bag_dir: Path) -> None:
    # The catalogue is derived and rebuildable: a broken catalogue never fails a capture.
    from archiver.collection.catalog import catalog_add_bag

    if remote_of(root) is not None:
        return  # a remote collection's catalogue is a cache its readers bring up to date from the events
    try:
        catalog_add_bag(root, bag_dir)
    except ArchiverError:
        pass
