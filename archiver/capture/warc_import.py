"""Bags from captures someone else made: ``snapshot --from-warc FILE``.

Each 200 HTML response record of a WARC (Browsertrix, wget, Heritrix…)
becomes a bag whose provenance is the record's own: ``Source-URL`` is its
``WARC-Target-URI`` and ``Retrieval-Date`` its ``WARC-Date``. The bag's
``capture.warc.gz`` holds our warcinfo record and then the original response
(and request) records copied byte for byte. Importing the same WARC twice
makes no second bag: the text is unchanged, and an ``unchanged`` event says so.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable

from archiver.bagit.hashing import hash_file
from archiver.capture.fetch import parse_content_type
from archiver.capture.material import build_material
from archiver.capture.snapshot import SnapshotOptions, SourceResult, bag_unless_unchanged, failed_result
from archiver.capture.warc import ArchivedResponse, archived_to_warc, iter_html_responses
from archiver.clock import parse_iso, utc_now
from archiver.collection.capture_log import PreviousCapture, last_captures, log_failure
from archiver.collection.root import collection_name, open_collection
from archiver.errors import UsageError


def snapshot_from_warc(warc_path: Path, url_filters: list[str], options: SnapshotOptions,
                       on_progress: Callable[..., None] | None = None) -> list[SourceResult]:
    """One bag per HTML response in ``warc_path`` whose URI matches any filter (regexes)."""
    warc_path = Path(warc_path)
    if not warc_path.is_file():
        raise UsageError(f"--from-warc: {warc_path} is not a file")
    try:
        pattern = "|".join(f"(?:{f})" for f in url_filters) if url_filters else None
        if pattern:
            re.compile(pattern)
    except re.error as exc:
        raise UsageError(f"bad URL filter: {exc}") from exc
    root = open_collection(options.root)
    collection_id = options.collection_id or collection_name(root)
    previous = {} if options.force else last_captures(root)
    results = []
    warc_sha256 = _sha256_file(warc_path)
    for count, response in enumerate(iter_html_responses(warc_path, pattern, options.fetch.max_bytes), 1):
        results.append(_import_one(response, warc_path, warc_sha256, root, collection_id,
                                   options, previous))
        if on_progress:
            on_progress(count, None, response.uri)
    return results


def _import_one(response: ArchivedResponse, warc_path: Path, warc_sha256: str, root: Path, collection_id: str,
                options: SnapshotOptions, previous: dict[str, PreviousCapture]) -> SourceResult:
    uri = response.uri
    if response.error:
        log_failure(root, uri, response.error)
        return SourceResult(uri, "failed", url=uri, reason=response.error, exit_code=1)
    try:
        retrieved = parse_iso(response.date)
    except ValueError:
        return SourceResult(uri, "failed", url=uri, reason=f"bad WARC-Date {response.date!r}", exit_code=1)
    try:
        headers = {k.lower(): v for k, v in response.headers}
        mime, header_charset = parse_content_type(headers.get("content-type", ""))
        material = build_material(
            response.body, url=uri, retrieved=retrieved, content_type=mime, header_charset=header_charset,
            warc=archived_to_warc(response, warc_path.name, utc_now()), http_status=response.status,
            etag=headers.get("etag"), last_modified=headers.get("last-modified"),
            robots="not applicable (imported from a WARC)",
            provenance={"from_warc": warc_path.name, "warc_date": response.date, "warc_sha256": warc_sha256})
        result, _bag_dir = bag_unless_unchanged(root, uri, material, previous.get(uri), collection_id,
                                                options.organization, timestamp_url=options.timestamp_url)
        return result
    except Exception as exc:  # noqa: BLE001 - one response's bug must not end the import
        return failed_result(root, uri, uri, exc)


def _sha256_file(path: Path) -> str:
    return hash_file(path, ["sha256"])[0]["sha256"]
