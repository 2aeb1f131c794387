"""The ``capture`` events of the event log: writing them, and reading back the
last capture state of each URL (what a re-check compares against).

A successful capture's details are taken from its bag's metadata
(``CAPTURE_DETAIL``), whether it is logged as it is written or recovered later.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pathlib import Path

from archiver.collection.events import Event, append_event, read_events
from archiver.collection.record import CaptureRecord
from archiver.collection.root import remote_of
from archiver.errors import StorageError

# metadata.json keys copied into a successful capture event
CAPTURE_DETAIL = ("url", "final_url", "text_sha256", "etag", "last_modified", "extractor_version",
                  "derived_from")


@dataclass
class PreviousCapture:
    bag: str | None
    text_sha256: str | None
    etag: str | None
    last_modified: str | None


def log_captured(root: Path, bag: str, record: CaptureRecord, recovered: str | None = None,
                 timestamp: dict[str, Any] | None = None) -> None:
    """Log the successful capture that wrote (or, ``recovered``, left unlogged) ``bag``;
    ``timestamp``: the RFC 3161 stamping outcome, when a TSA was asked."""
    detail = {key: record.metadata.get(key) for key in CAPTURE_DETAIL}
    if timestamp:
        detail = {**detail, "timestamp": timestamp}
    if recovered:
        detail = {**detail, "retrieved": record.metadata.get("retrieved"), "recovered": recovered}
    append_event(root, Event(type="capture", outcome="success", bag=bag, detail=detail))


def log_unchanged(root: Path, url: str, prior: PreviousCapture, why: str,
                  etag: str | None = None, last_modified: str | None = None) -> None:
    append_event(root, Event(type="capture", outcome="unchanged", bag=prior.bag, detail={
        "url": url, "reason": why, "text_sha256": prior.text_sha256,
        "etag": etag or prior.etag, "last_modified": last_modified or prior.last_modified,
    }))


def log_failure(root: Path, url: str, reason: str) -> None:
    """Log a failed capture; a log that cannot be written does not hide the failure itself."""
    try:
        append_event(root, Event(type="capture", outcome="failure", detail={"url": url, "reason": reason}))
    except StorageError:
        pass


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
    remote = remote_of(root)
    present = remote.has_bag if remote is not None else (lambda bag: (root / bag).is_dir())
    return {url: prior for url, prior in state.items() if prior.bag and present(prior.bag)}
