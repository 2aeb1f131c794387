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

import copy
from typing import Any

from lxml.etree import _Element
from trafilatura.metadata import extract_metadata

from archiver.capture.extract.metadata import NOT_PUBLISHED, author_name, displayed_date, iso_date
from archiver.capture.extract.parts import PageParts


def _trafilatura_header(tree: _Element) -> tuple[str | None, str | None]:
    """(author, ISO date) as trafilatura's metadata reader finds them."""
    try:
        # It prunes bylines from the tree it reads: give it a copy.
        document: Any = extract_metadata(copy.deepcopy(tree))
    except Exception:  # trafilatura and htmldate raise a variety of errors on odd pages
        return None, None
    author = document.author.replace("; ", ", ") if document.author else None
    return author_name(author), iso_date(document.date)


def complete(parts: PageParts, tree: _Element) -> None:
    """Fill ``parts``' author, date and date_iso in place (see the module's rules)."""
    parts.author = author_name(parts.author)
    if parts.date and NOT_PUBLISHED.search(parts.date):
        parts.date = None  # "Updated on …" is not the date of the text
    if parts.date:
        parts.date_iso = parts.date_iso or iso_date(parts.date)
    if not parts.author or not parts.date_iso:
        author, date = _trafilatura_header(tree)
        parts.author = parts.author or author
        if date and not parts.date_iso:
            # A date the page shows without a year ("December 8") stays as shown.
            parts.date = parts.date or displayed_date(tree, date) or date
            parts.date_iso = date
    if parts.date and parts.date == parts.date_iso:
        parts.date = displayed_date(tree, parts.date_iso) or parts.date
