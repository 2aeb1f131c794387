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
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import os
import re
import threading
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable
from urllib.parse import unquote, urlsplit

from archiver import __version__
from archiver.capture.attachments import DEFAULT_ATTACHMENT_MAX_BYTES, FetchedAttachments, fetch_attachments
from archiver.bagit.write import write_bag
from archiver.capture.charset import decode_document
from archiver.collection.root import list_bag_dirs, open_collection
from archiver.durable import held_by_a_live_writer, release_temp_dir
from archiver.errors import ArchiverError, ExtractionError, SourceError, StorageError, UnsupportedContent
from archiver.collection.events import Event, append_event, read_events
from archiver.clock import iso, utc_now
from archiver.capture.extract import Extraction, extract_html
from archiver.capture.fetch import Capture, Fetcher, FetchSettings
from archiver.capture.sources import resolve_source
from archiver.capture.warc import capture_to_warc, resource_to_warc

HTML_TYPES = ("text/html", "application/xhtml+xml")
_SLUG_CHARS = re.compile(r"[^a-z0-9]+")


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

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class PreviousCapture:
    bag: str | None
    text_sha256: str | None
    etag: str | None
    last_modified: str | None


@dataclass
class CaptureMaterial:
    """What a bag is made of: everything gathered before writing."""

    url: str
    final_url: str
    retrieved: datetime
    extraction: Extraction
    canonical: bytes
    warc: bytes
    raw_body: bytes
    http_status: int | None
    content_type: str
    charset: str
    charset_source: str
    etag: str | None = None
    last_modified: str | None = None
    redirects: list[dict] = field(default_factory=list)
    robots: str = ""
    derived_from: dict | None = None
    attachments: FetchedAttachments | None = None
    provenance: dict | None = None          # e.g. {"from_warc": path, "warc_date": …}


def snapshot(sources: list[str], options: SnapshotOptions,
             on_progress: Callable[..., None] | None = None) -> list[SourceResult]:
    """Capture every source into ``options.root``; return one result per source, in order.

    Fetching runs in threads of this process (so the per-host delay is kept
    across the whole batch); the CPU-bound part (decode, extract, WARC, bag)
    runs in a pool of processes when the batch is large enough to repay
    starting them (``PROCESS_POOL_MIN`` sources and more than one core).
    """
    root = open_collection(options.root)  # StorageError (exit 3) before any fetch
    collection_id = options.collection_id or root.resolve().name
    record_unlogged_bags(root)
    previous = last_captures(root)
    names = BagNames(root)
    fetcher = Fetcher(options.fetch)
    # Attachments are fetched after extraction, with the batch's fetcher (its
    # per-host delay), so that work stays in this process.
    processes = 0 if options.with_attachments else _process_count(len(sources))
    builder = _Builder(root, collection_id, options.organization, processes,
                       (fetcher, options.attachment_max_bytes) if options.with_attachments else None)
    results: list[SourceResult | None] = [None] * len(sources)
    done = 0
    lock = threading.Lock()

    def run(index: int, source: str) -> None:
        nonlocal done
        result = _snapshot_one(source, root, options, fetcher, previous, names, builder)
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
    name: str | None                 # reserved bag name, or None to reserve in the worker
    capture: Capture | None          # an HTTP capture, or None for a local file
    prior: PreviousCapture | None


class _Builder:
    """Runs build jobs inline or in a process pool forked before any thread starts."""

    def __init__(self, root: Path, collection_id: str, organization: str, processes: int,
                 attachments: tuple[Fetcher, int] | None = None) -> None:
        self.context = (root, collection_id, organization)
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
                  previous: dict[str, PreviousCapture], names: "BagNames", builder: _Builder) -> SourceResult:
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
                _log_unchanged(root, url, prior, "HTTP 304 Not Modified")
                return SourceResult(source, "unchanged", bag=prior.bag, url=url,
                                    reason="HTTP 304 Not Modified")
    except SourceError as exc:
        _log_failure(root, url, str(exc))
        return SourceResult(source, "failed", url=url, reason=str(exc), exit_code=exc.exit_code)
    final_url = capture.final_url if capture else url
    retrieved = capture.retrieved if capture else utc_now()
    with names.reserve(slug_for(final_url), retrieved) as name:
        result, bag_dir = builder.run(_BuildJob(source, url, name, capture, prior))
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


def _build(job: _BuildJob, root: Path, collection_id: str, organization: str,
           attachments: tuple[Fetcher, int] | None = None) -> tuple[SourceResult, Path | None]:
    """Decode, extract, render the WARC and write the bag (runs in a worker)."""
    source, url, prior = job.source, job.url, job.prior
    try:
        material = material_from_capture(job.capture) if job.capture else _capture_local(url)
        if attachments is not None and job.capture is not None and material.extraction.links:
            fetcher, cap = attachments
            material.attachments = fetch_attachments(fetcher, material.extraction.links, cap)
            material.warc = capture_to_warc(job.capture, attachments=material.attachments.captures)
        return bag_unless_unchanged(root, source, material, prior, collection_id, organization,
                                    name=job.name, update_catalogue=False)
    except Exception as exc:  # noqa: BLE001 - one source's bug must not end the batch
        return failed_result(root, source, url, exc), None


def bag_unless_unchanged(root: Path, source: str, material: CaptureMaterial, prior: PreviousCapture | None,
                         collection_id: str, organization: str, name: str | None = None,
                         update_catalogue: bool = True) -> tuple[SourceResult, Path | None]:
    """Write the capture's bag, unless its canonical text is the last capture's
    (then log an ``unchanged`` event and write nothing)."""
    title = material.extraction.text.title
    if prior is not None and prior.text_sha256 == hashlib.sha256(material.canonical).hexdigest():
        _log_unchanged(root, material.url, prior, "canonical text unchanged", material)
        return SourceResult(source, "unchanged", bag=prior.bag, url=material.url, final_url=material.final_url,
                            title=title, reason="canonical text unchanged"), None
    bag_dir = write_capture_bag(root, material, collection_id, organization, name=name,
                                update_catalogue=update_catalogue)
    return SourceResult(source, "captured", bag=bag_dir.name, url=material.url, final_url=material.final_url,
                        title=title), bag_dir


def failed_result(root: Path, source: str, url: str, exc: Exception) -> SourceResult:
    """The result of a source that failed with ``exc``: a source's own failure is
    logged as a failed capture; an unexpected error is reported as such (exit 3).
    Nothing was written either way (write_bag cleans up after itself)."""
    if isinstance(exc, SourceError):
        _log_failure(root, url, str(exc))
        return SourceResult(source, "failed", url=url, reason=str(exc), exit_code=exc.exit_code)
    if isinstance(exc, ArchiverError):
        return SourceResult(source, "failed", url=url, reason=str(exc), exit_code=exc.exit_code)
    reason = f"internal error ({type(exc).__name__}: {exc}); no bag was written - please report this"
    _log_failure(root, url, reason)
    return SourceResult(source, "failed", url=url, reason=reason, exit_code=3)


def material_from_capture(capture: Capture) -> CaptureMaterial:
    """Check, decode and extract a fetched page; render its WARC."""
    content_type = capture.content_type or _sniff_type(capture.body)
    if content_type not in HTML_TYPES:
        raise UnsupportedContent(f"content type {content_type or 'unknown'!r} is not an HTML page "
                                 "(bagging other downloads is not supported yet)")
    if not capture.body.strip():
        raise ExtractionError("empty body: the server sent no content")
    text, charset, how = decode_document(capture.body, capture.header_charset)
    extraction = extract_html(text, url=capture.final_url, retrieved=capture.retrieved)
    return CaptureMaterial(
        url=capture.url, final_url=capture.final_url, retrieved=capture.retrieved,
        extraction=extraction, canonical=extraction.text.render().encode("utf-8"),
        warc=capture_to_warc(capture), raw_body=capture.body, http_status=capture.status,
        content_type=content_type, charset=charset, charset_source=how,
        etag=capture.header("ETag"), last_modified=capture.header("Last-Modified"),
        redirects=capture.redirects, robots=capture.robots)


def _capture_local(uri: str) -> CaptureMaterial:
    path = Path(unquote(urlsplit(uri).path))
    try:
        body = path.read_bytes()
    except OSError as exc:
        raise SourceError(f"cannot read {path}: {exc.strerror}") from exc
    if not body.strip():
        raise ExtractionError(f"{path} is empty")
    retrieved = utc_now()
    suffix = path.suffix.lower()
    content_type = {".html": "text/html", ".htm": "text/html", ".xhtml": "application/xhtml+xml"}.get(
        suffix) or _sniff_type(body)
    if content_type not in HTML_TYPES:
        raise UnsupportedContent(f"{path.name} does not look like an HTML page")
    text, charset, how = decode_document(body, None)
    extraction = extract_html(text, url=uri, retrieved=retrieved)
    return CaptureMaterial(
        url=uri, final_url=uri, retrieved=retrieved, extraction=extraction,
        canonical=extraction.text.render().encode("utf-8"),
        warc=resource_to_warc(uri, body, content_type, retrieved), raw_body=body, http_status=None,
        content_type=content_type, charset=charset, charset_source=how, robots="local file")


def _sniff_type(body: bytes) -> str:
    head = body[:1024].lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html", b"<?xml")) or b"<body" in head or b"<head" in head:
        return "text/html"
    return ""


def write_capture_bag(root: Path, material: CaptureMaterial, collection_id: str, organization: str,
                      name: str | None = None, update_catalogue: bool = True) -> Path:
    """Write one bag for a capture, log its ``capture`` event, update the catalogue.

    ``name`` is a bag name reserved by the caller; by default one is chosen
    from the final URL and the retrieval time."""
    canonical_text = material.extraction.text
    text_sha = hashlib.sha256(material.canonical).hexdigest()
    metadata = {
        **{k: v for k, v in canonical_text.to_dict().items() if k != "body"},
        "date_iso": material.extraction.date_iso,
        "url": material.url,
        "final_url": material.final_url,
        "retrieved": iso(material.retrieved),
        "http_status": material.http_status,
        "content_type": material.content_type,
        "charset": material.charset,
        "charset_source": material.charset_source,
        "etag": material.etag,
        "last_modified": material.last_modified,
        "redirects": material.redirects,
        "robots": material.robots,
        "extractor": material.extraction.extractor,
        "extractor_version": material.extraction.extractor_version,
        "archiver_version": __version__,
        "text_sha256": text_sha,
        "body_sha256": hashlib.sha256(material.raw_body).hexdigest(),
        "downloads": material.extraction.links,
        "attachments": material.attachments.listing if material.attachments else [],
        "derived_from": material.derived_from,
        **({"provenance": material.provenance} if material.provenance else {}),
    }
    info = [
        ("Source-Organization", organization),
        ("External-Identifier", material.url),
        ("External-Description", canonical_text.title or material.final_url),
        ("Bag-Group-Identifier", collection_id),
        ("Source-URL", material.url),
        ("Retrieval-Date", iso(material.retrieved)),
    ]
    payload = {
        "text.txt": material.canonical,
        "metadata.json": (json.dumps(metadata, ensure_ascii=False, indent=1) + "\n").encode("utf-8"),
        "capture.warc.gz": material.warc,
        **(material.attachments.payload if material.attachments else {}),
    }
    # The bag stays held (flock) until its capture event is written, so that a concurrent
    # run does not take it for a bag a crash left unrecorded (see record_unlogged_bags).
    if name is None:
        with BagNames(root).reserve(slug_for(material.final_url, canonical_text.title),
                                    material.retrieved) as reserved:
            bag_dir = write_bag(root, reserved, payload, info, keep_held=True)
    else:
        bag_dir = write_bag(root, name, payload, info, keep_held=True)
    try:
        append_event(root, Event(type="capture", outcome="success", bag=bag_dir.name, detail={
            "url": material.url, "final_url": material.final_url, "text_sha256": text_sha,
            "etag": material.etag, "last_modified": material.last_modified,
            "extractor_version": material.extraction.extractor_version,
            "derived_from": material.derived_from,
        }))
    finally:
        release_temp_dir(bag_dir)
    if update_catalogue:
        _update_catalogue(root, bag_dir)
    return bag_dir


def _update_catalogue(root: Path, bag_dir: Path) -> None:
    # The catalogue is derived and rebuildable: a broken catalogue never fails a capture.
    try:
        from archiver.collection.catalog import catalog_add_bag
    except ImportError:
        return
    try:
        catalog_add_bag(root, bag_dir)
    except ArchiverError:
        pass


def _log_unchanged(root: Path, url: str, prior: PreviousCapture, why: str,
                   material: CaptureMaterial | None = None) -> None:
    append_event(root, Event(type="capture", outcome="unchanged", bag=prior.bag, detail={
        "url": url, "reason": why, "text_sha256": prior.text_sha256,
        "etag": (material.etag if material else None) or prior.etag,
        "last_modified": (material.last_modified if material else None) or prior.last_modified,
    }))


def _log_failure(root: Path, url: str, reason: str) -> None:
    try:
        append_event(root, Event(type="capture", outcome="failure", detail={"url": url, "reason": reason}))
    except StorageError:
        pass


def record_unlogged_bags(root: Path) -> list[str]:
    """Log a ``capture`` event for every archiver bag in ``root`` that has none: a run
    killed between a bag's rename and its event leaves such a bag, complete but unknown
    to the log, the catalogue and re-checks. The event says it was recovered; its
    details come from the bag's metadata.json. Bags a live run still holds, and
    folders that are not archiver captures (no metadata.json with a url), are left."""
    recorded = {e.bag for e in read_events(root).events if e.type == "capture" and e.bag}
    logged = []
    for bag_dir in list_bag_dirs(root):
        if bag_dir.name in recorded or held_by_a_live_writer(bag_dir):
            continue
        try:
            metadata = json.loads((bag_dir / "data" / "metadata.json").read_bytes())
        except (OSError, ValueError):
            continue
        if not isinstance(metadata, dict) or not metadata.get("url"):
            continue
        append_event(root, Event(type="capture", outcome="success", bag=bag_dir.name, detail={
            **{key: metadata.get(key) for key in ("url", "final_url", "retrieved", "text_sha256", "etag",
                                                  "last_modified", "extractor_version", "derived_from")},
            "recovered": "bag found without a capture event (a run interrupted between writing the "
                         "bag and logging it, or a bag copied in); recorded from its metadata.json",
        }))
        logged.append(bag_dir.name)
    return logged


def last_captures(root: Path) -> dict[str, PreviousCapture]:
    """The latest successful or unchanged capture state of each URL, from the event log."""
    state: dict[str, PreviousCapture] = {}
    when: dict[str, str] = {}  # url -> retrieval time of the state kept
    for event in read_events(root).events:
        if event.type != "capture" or event.outcome not in ("success", "unchanged"):
            continue
        url = event.detail.get("url")
        if not url:
            continue
        if event.outcome == "success" and event.detail.get("derived_from"):
            continue  # a rebuilt bag is not a new retrieval of its URL
        retrieved = event.detail.get("retrieved") if event.detail.get("recovered") else event.time
        if url in when and retrieved and when[url] > retrieved:
            continue  # a bag recovered late, older than the URL's latest capture
        when[url] = retrieved or event.time
        old = state.get(url)
        state[url] = PreviousCapture(
            bag=event.bag or (old.bag if old else None),
            text_sha256=event.detail.get("text_sha256") or (old.text_sha256 if old else None),
            etag=event.detail.get("etag") or None,
            last_modified=event.detail.get("last_modified") or None,
        )
    return {url: prior for url, prior in state.items() if prior.bag and (root / prior.bag).is_dir()}


def slug_for(final_url: str, title: str | None = None) -> str:
    """The slug of a bag name: the URL's last path segment, else its host, else the title."""
    parts = urlsplit(final_url)
    segments = [s for s in unquote(parts.path).split("/") if s]
    base = segments[-1] if segments else parts.netloc
    base = re.sub(r"\.(html?|php|aspx?)$", "", base.lower())
    slug = _SLUG_CHARS.sub("-", base).strip("-")[:60].strip("-")
    if not slug:
        slug = _SLUG_CHARS.sub("-", (title or "capture").lower()).strip("-")[:60]
    return slug or "capture"


class BagNames:
    """Hands out unique ``<slug>-<YYYYMMDDTHHMMSSZ>`` names, across threads."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock = threading.Lock()
        self._taken: set[str] = set()

    def reserve(self, slug: str, when: datetime) -> "_Reservation":
        stamp = when.strftime("%Y%m%dT%H%M%SZ")
        with self._lock:
            candidate = f"{slug}-{stamp}"
            n = 2
            while candidate in self._taken or (self.root / candidate).exists():
                candidate = f"{slug}-{stamp}-{n}"
                n += 1
            self._taken.add(candidate)
        return _Reservation(self, candidate)


class _Reservation:
    def __init__(self, names: BagNames, name: str) -> None:
        self.names, self.name = names, name

    def __enter__(self) -> str:
        return self.name

    def __exit__(self, *exc: object) -> None:
        with self.names._lock:
            self.names._taken.discard(self.name)


