"""Attachments: the download formats a page offers (amusewiki ``.muse``,
``.epub``, ``.pdf``; PDFs linked from a post), captured with the page.

Off by default (``snapshot --with-attachments``). Each attachment is fetched
with the same politeness as the page (robots.txt, per-host delay, retries),
under its own size cap; its HTTP exchanges go into the page's WARC and its
body under ``data/attachments/``. An attachment that cannot be fetched does
not fail the page: metadata.json lists it with the reason, so the bag says
exactly what it holds and what it lacks.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from archiver.errors import SourceError
from archiver.capture.fetch import Capture, Fetcher

DEFAULT_ATTACHMENT_MAX_BYTES = 100 * 1024 * 1024
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass
class FetchedAttachments:
    captures: list[Capture] = field(default_factory=list)
    payload: dict[str, bytes] = field(default_factory=dict)    # path under data/ -> bytes
    listing: list[dict] = field(default_factory=list)          # for metadata.json


def attachment_name(url: str, kind: str, taken: set[str]) -> str:
    """A safe, unique file name under ``attachments/`` for ``url``."""
    last = unquote(urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1]) or f"attachment.{kind}"
    name = _SAFE.sub("-", last).strip(".-")[:100] or f"attachment.{kind}"
    candidate, n = name, 2
    while candidate in taken:
        stem, dot, ext = name.rpartition(".")
        candidate = f"{stem}-{n}.{ext}" if dot else f"{name}-{n}"
        n += 1
    taken.add(candidate)
    return candidate


def fetch_attachments(fetcher: Fetcher, links: list[dict], max_bytes: int) -> FetchedAttachments:
    result = FetchedAttachments()
    taken: set[str] = set()
    seen: set[str] = set()
    for link in links:
        url, kind = link.get("url", ""), link.get("kind", "")
        if not url or url in seen or urlsplit(url).scheme not in ("http", "https"):
            continue
        seen.add(url)
        try:
            capture = fetcher.fetch(url, max_bytes=max_bytes)
        except SourceError as exc:
            result.listing.append({"url": url, "kind": kind, "path": None, "error": str(exc)})
            continue
        path = f"attachments/{attachment_name(capture.final_url, kind, taken)}"
        result.captures.append(capture)
        result.payload[path] = capture.body
        result.listing.append({
            "url": url, "kind": kind, "path": f"data/{path}", "final_url": capture.final_url,
            "content_type": capture.content_type, "size": len(capture.body),
            "sha256": hashlib.sha256(capture.body).hexdigest(), "error": None,
        })
    return result
