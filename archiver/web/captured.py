"""The "as captured" view: the archived HTML of a bag, from its WARC.

It is a view of the evidence, not a replay. The page is served as it was
received, but with headers that disarm it:

- ``Content-Security-Policy: sandbox`` (no ``allow-scripts``): the document
  is put in a unique origin where no script runs, even when it is opened
  directly rather than in the iframe of the capture page;
- ``default-src 'none'`` with ``img-src``/``style-src`` limited to ``data:``
  and inline styles: no request leaves for the live web (nor reaches anything
  else of this server); images and style sheets that were captured as separate
  files are not replayed (archiver's WARC holds the page's own exchange);
- ``X-Content-Type-Options: nosniff`` and ``Referrer-Policy: no-referrer``.

The capture page puts it in ``<iframe sandbox>`` (no ``allow-scripts``, no
``allow-same-origin``), so both the iframe and the response say the same.
"""

from __future__ import annotations

import re

from archiver.capture.warc import read_final_response
from archiver.errors import ArchiverError
from archiver.web.collection import BagUnavailable, CollectionReader

ARCHIVED_PAGE_CSP = ("sandbox; default-src 'none'; img-src data:; style-src 'unsafe-inline' data:; "
                     "font-src data:; form-action 'none'; frame-ancestors 'self'; base-uri 'none'")
ARCHIVED_PAGE_HEADERS = {
    "Content-Security-Policy": ARCHIVED_PAGE_CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
MAX_WARC_BYTES = 200 * 1024 * 1024
_LANG = re.compile(rb"<html\b[^>]*?\blang\s*=\s*[\"']?([A-Za-z]{2,3}(?:-[A-Za-z0-9]{1,8}){0,3})", re.I)
_CHARSET = re.compile(r"charset=([A-Za-z0-9_.:-]+)", re.I)


class NoArchivedPage(BagUnavailable):
    """The bag's WARC holds no page (a damaged WARC, or none)."""


def archived_page(reader: CollectionReader, name: str) -> tuple[str, bytes, str]:
    """(URI, body as received, content type) of the bag's captured page."""
    record = reader.find(name)
    warc = reader.read_file(name, "data/capture.warc.gz", MAX_WARC_BYTES)
    try:
        found = read_final_response(warc, record.final_url)
    except ArchiverError as exc:
        raise NoArchivedPage(f"the WARC of bag {name} cannot be read: {exc}") from exc
    except Exception as exc:  # warcio raises assorted errors on damaged records
        raise NoArchivedPage(f"the WARC of bag {name} cannot be read: {type(exc).__name__}") from exc
    if found is None:
        raise NoArchivedPage(f"the WARC of bag {name} holds no captured page")
    uri, body, headers = found
    content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "text/html")
    return uri, body, content_type


def served_content_type(content_type: str) -> str:
    """Only HTML or plain text is served, with the captured charset if any."""
    base = content_type.split(";")[0].strip().lower()
    kind = base if base in ("text/html", "application/xhtml+xml", "text/plain") else "text/plain"
    charset = _CHARSET.search(content_type)
    return f"{kind}; charset={charset.group(1)}" if charset else kind


def page_lang(body: bytes) -> str | None:
    """The ``lang`` of the archived page's ``<html>`` element, if it has one."""
    match = _LANG.search(body[:16384])
    return match.group(1).decode("ascii") if match else None
