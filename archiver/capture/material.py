"""The material of a capture: decode → extract → canonical text → metadata.

``build_material`` is the one place a capture's raw body becomes what a bag
holds, for every way in: a live fetch (``material_from_capture``), a local
file (``material_from_file``), a response of someone else's WARC
(``warc_import``) and a bag's own raw capture (``rebuild``).
``CaptureMaterial.to_record`` lays it out as a ``CaptureRecord``.

    >>> material = material_from_file("file:///srv/saved/essay.html")
    >>> material.extraction.text.title, material.charset
    ('On Bread', 'utf-8')
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from archiver import __version__
from archiver.capture.attachments import FetchedAttachments
from archiver.capture.charset import decode_document
from archiver.capture.extract import Extraction, extract_html
from archiver.capture.fetch import Capture
from archiver.capture.warc import capture_to_warc, resource_to_warc
from archiver.clock import iso, utc_now
from archiver.collection.record import CaptureRecord
from archiver.errors import ExtractionError, SourceError, UnsupportedContent

HTML_TYPES = ("text/html", "application/xhtml+xml")
_LOCAL_TYPES = {".html": "text/html", ".htm": "text/html", ".xhtml": "application/xhtml+xml"}


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
    redirects: list[dict[str, Any]] = field(default_factory=list)
    robots: str = ""
    derived_from: dict[str, Any] | None = None
    attachments: FetchedAttachments | None = None
    provenance: dict[str, Any] | None = None          # e.g. {"from_warc": path, "warc_date": …}

    @property
    def text_sha256(self) -> str:
        return hashlib.sha256(self.canonical).hexdigest()

    def metadata(self) -> dict[str, Any]:
        """The bag's ``data/metadata.json``."""
        return {
            **{k: v for k, v in self.extraction.text.to_dict().items() if k != "body"},
            "date_iso": self.extraction.date_iso,
            "url": self.url,
            "final_url": self.final_url,
            "retrieved": iso(self.retrieved),
            "http_status": self.http_status,
            "content_type": self.content_type,
            "charset": self.charset,
            "charset_source": self.charset_source,
            "etag": self.etag,
            "last_modified": self.last_modified,
            "redirects": self.redirects,
            "robots": self.robots,
            "extractor": self.extraction.extractor,
            "extractor_version": self.extraction.extractor_version,
            "archiver_version": __version__,
            "text_sha256": self.text_sha256,
            "body_sha256": hashlib.sha256(self.raw_body).hexdigest(),
            "downloads": self.extraction.links,
            "attachments": self.attachments.listing if self.attachments else [],
            "derived_from": self.derived_from,
            **({"provenance": self.provenance} if self.provenance else {}),
        }

    def to_record(self, collection_id: str, organization: str) -> CaptureRecord:
        return CaptureRecord.new(self.metadata(), self.canonical, self.warc, organization=organization,
                                 collection_id=collection_id,
                                 attachments=self.attachments.payload if self.attachments else None)


def build_material(body: bytes, *, url: str, retrieved: datetime, warc: bytes, final_url: str | None = None,
                   content_type: str = "", header_charset: str | None = None, http_status: int | None = None,
                   etag: str | None = None, last_modified: str | None = None,
                   redirects: list[dict[str, Any]] | None = None, robots: str = "",
                   derived_from: dict[str, Any] | None = None,
                   provenance: dict[str, Any] | None = None) -> CaptureMaterial:
    """Check, decode and extract a captured body into the material of a bag.

    ``content_type`` is the declared media type (sniffed from the body when
    empty); anything but HTML/XHTML is UnsupportedContent, an empty body or a
    page without text ExtractionError (both exit 1)."""
    final_url = final_url or url
    content_type = content_type or sniff_type(body)
    if content_type not in HTML_TYPES:
        raise UnsupportedContent(f"content type {content_type or 'unknown'!r} is not an HTML page "
                                 "(bagging other downloads is not supported yet)")
    if not body.strip():
        raise ExtractionError("empty body: the server sent no content")
    html, charset, how = decode_document(body, header_charset)
    extraction = extract_html(html, url=final_url, retrieved=retrieved)
    return CaptureMaterial(
        url=url, final_url=final_url, retrieved=retrieved, extraction=extraction,
        canonical=extraction.text.render().encode("utf-8"), warc=warc, raw_body=body,
        http_status=http_status, content_type=content_type, charset=charset, charset_source=how,
        etag=etag, last_modified=last_modified, redirects=redirects or [], robots=robots,
        derived_from=derived_from, provenance=provenance)


def material_from_capture(capture: Capture) -> CaptureMaterial:
    """The material of a page fetched over HTTP(S); its WARC holds every hop."""
    return build_material(
        capture.body, url=capture.url, final_url=capture.final_url, retrieved=capture.retrieved,
        warc=capture_to_warc(capture), content_type=capture.content_type,
        header_charset=capture.header_charset, http_status=capture.status,
        etag=capture.header("ETag"), last_modified=capture.header("Last-Modified"),
        redirects=capture.redirects, robots=capture.robots)


def material_from_file(uri: str) -> CaptureMaterial:
    """The material of a local file, given by its ``file://`` URI; its WARC is one resource record."""
    path = Path(unquote(urlsplit(uri).path))
    try:
        body = path.read_bytes()
    except OSError as exc:
        raise SourceError(f"cannot read {path}: {exc.strerror}") from exc
    if not body.strip():
        raise ExtractionError(f"{path} is empty")
    content_type = _LOCAL_TYPES.get(path.suffix.lower()) or sniff_type(body)
    if content_type not in HTML_TYPES:
        raise UnsupportedContent(f"{path.name} does not look like an HTML page")
    retrieved = utc_now()
    return build_material(body, url=uri, retrieved=retrieved, content_type=content_type,
                          warc=resource_to_warc(uri, body, content_type, retrieved), robots="local file")


def sniff_type(body: bytes) -> str:
    """``text/html`` when the body starts like an HTML document, else ``''``."""
    head = body[:1024].lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html", b"<?xml")) or b"<body" in head or b"<head" in head:
        return "text/html"
    return ""
