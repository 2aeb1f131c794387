"""Main text and header fields of a web page, as canonical text.

A profile is chosen by the page's markup (not its host name), most specific
first: amusewiki, schema.org Q&A microdata, Drupal, WordPress, JSON-LD/OpenGraph article markup; any
page none of them reads falls back to the generic (trafilatura) extractor.
Header values a profile does not find come from the page's metadata
(JSON-LD, OpenGraph, <meta>, <title>). When the page has no source note of
its own and its URL is known, the Source line records the retrieval.

    >>> extraction = extract_html(html, url="https://example.org/post")
    >>> extraction.text.render()        # the canonical text
    >>> extraction.extractor            # "wordpress"
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

from archiver.errors import ExtractionError
from archiver.capture.text import CanonicalText, normalise_body, retrieval_source_note
from archiver.capture.extract import amusewiki, drupal, generic, header, metadata, qapage, wordpress
from archiver.capture.extract.htmltext import parse_html
from archiver.capture.extract.parts import PageParts

__all__ = ["Extraction", "extract_html", "PROFILES"]

# Most specific markup first; metadata (JSON-LD/OpenGraph) is the broadest.
PROFILES = (amusewiki, qapage, drupal, wordpress, metadata)


@dataclass
class Extraction:
    text: CanonicalText
    extractor: str            # profile name: "amusewiki", "qapage", "drupal", "wordpress", "jsonld", "generic"
    extractor_version: str    # e.g. "archiver-amusewiki/1", "trafilatura/2.3.1+archiver/1"
    links: list[dict[str, str]] = field(default_factory=list)  # downloads offered: {"url", "kind"}
    date_iso: str | None = None  # the header's date read as an ISO 8601 date, when it reads as one


def _choose(html: str, url: str | None) -> tuple[PageParts, str, str]:
    tree = parse_html(html)
    for profile in PROFILES:
        if profile.matches(tree):
            parts = profile.extract(tree, url)
            if any(paragraph.strip() for paragraph in parts.paragraphs):
                if profile is not amusewiki:
                    # amusewiki's preamble is the whole header; elsewhere fill gaps
                    parts.fill_missing(metadata.page_metadata(tree))
                    header.complete(parts, tree, url)
                return parts, profile.NAME, profile.VERSION
            # The markup looked familiar but held no text: let the generic extractor try.
            tree = parse_html(html)
    parts = generic.extract(tree, html, url)
    header.complete(parts, tree, url)
    return parts, generic.NAME, generic.VERSION


def extract_html(html: str, url: str | None = None, retrieved: datetime | None = None) -> Extraction:
    """Extract one page. ExtractionError when no text at all can be found."""
    parts, name, version = _choose(html, url)
    body = normalise_body("\n\n".join(parts.paragraphs))
    if not body:
        raise ExtractionError("no text could be extracted from the page")
    source = parts.source
    if not source and url:
        source = retrieval_source_note(url, retrieved or datetime.now(timezone.utc))
    text = CanonicalText(title=parts.title, subtitle=parts.subtitle, author=parts.author,
                         date=parts.date, source=source, body=body)
    return Extraction(text=text, extractor=name, extractor_version=version, links=parts.links,
                      date_iso=parts.date_iso or metadata.iso_date(parts.date))
