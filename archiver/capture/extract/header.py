"""Completing a page's header: author and date where the profile and the
page's metadata found none, and the date as the page shows it.

- An author field that is a URL, an e-mail address or a link label ("View all
  posts by Jane Doe") is read as a name or dropped (``metadata.author_name``).
- A date that says it is an update ("Updated on …") is not the text's date.
- A missing author or date (or a date that names no day) comes from trafilatura's metadata reader (bylines,
  ``rel=author``, htmldate's date search), the reader trafilatura itself uses.
- The canonical header keeps the date in the page's own words ("March 11th,
  2015"): a machine date (``2015-03-11``) is replaced by the text the page
  shows for that day, when it shows one. ``date_iso`` is the day read as ISO
  8601, kept in metadata.json beside it.
"""

from __future__ import annotations

from datetime import date

from htmldate import find_date
from lxml.etree import _Element
from trafilatura.metadata import examine_meta, extract_author, extract_meta_json, extract_url

from archiver.capture.extract.metadata import NOT_PUBLISHED, author_name, displayed_date, iso_date
from archiver.capture.extract.parts import PageParts


def _trafilatura_author(tree: _Element) -> str | None:
    """The author as trafilatura's metadata reader finds it (meta, JSON-LD, bylines)."""
    try:
        document = extract_meta_json(tree, examine_meta(tree))
        author = document.author if document.author and " " in document.author else None
        author = author or extract_author(tree)  # reads a copy of the tree
    except Exception:  # trafilatura raises a variety of errors on odd pages
        return None
    return author_name(author.replace("; ", ", ")) if author else None


def _htmldate_date(tree: _Element, url: str | None) -> str | None:
    """The publication date as htmldate finds it (trafilatura's date reader), ISO.
    With the page's URL (given, else its canonical link) htmldate settles
    most pages early, as in trafilatura."""
    try:
        return iso_date(find_date(tree, extensive_search=True, original_date=True,
                                  max_date=date.today().isoformat(), url=url or extract_url(tree)))
    except Exception:  # htmldate raises on odd pages; the date then stays unknown
        return None


def complete(parts: PageParts, tree: _Element, url: str | None = None) -> None:
    """Fill ``parts``' author, date and date_iso in place (see the module's rules)."""
    parts.author = author_name(parts.author)
    if parts.date and NOT_PUBLISHED.search(parts.date):
        parts.date = None  # "Updated on …" is not the date of the text
    if parts.date:
        parts.date_iso = parts.date_iso or iso_date(parts.date)
    if not parts.author:
        parts.author = _trafilatura_author(tree)
    looked_for: str | None = None  # the day displayed_date has looked for already: the tree is unchanged since
    if not parts.date_iso:
        found = _htmldate_date(tree, url)
        if found:
            # A date the page shows without a year ("December 8") stays as shown.
            if not parts.date:
                parts.date, looked_for = displayed_date(tree, found) or found, found
            parts.date_iso = found
    if parts.date and parts.date == parts.date_iso and parts.date_iso != looked_for:
        parts.date = displayed_date(tree, parts.date_iso) or parts.date
