"""Bag names: ``<slug>-<YYYYMMDDTHHMMSSZ>``, the slug from the captured URL.

    >>> bag_base_name("https://example.org/library/mutual-aid.html", None, datetime(2026, 11, 25, 9, 30))
    'mutual-aid-20261125T093000Z'

This is the name a capture asks for; ``CaptureRecord.write`` claims it, or the
first free ``-2``, ``-3``… after it, atomically across processes.
"""

from __future__ import annotations

import re
from datetime import datetime
from urllib.parse import unquote, urlsplit

_SLUG_CHARS = re.compile(r"[^a-z0-9]+")


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


def bag_base_name(final_url: str, title: str | None, retrieved: datetime) -> str:
    """The name a capture's bag asks for."""
    return f"{slug_for(final_url, title)}-{retrieved.strftime('%Y%m%dT%H%M%SZ')}"
