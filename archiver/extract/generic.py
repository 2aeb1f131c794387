"""The generic extractor for pages no profile knows: trafilatura, tuned.

trafilatura finds the main text; archiver serialises trafilatura's XML tree by
the same canonical rules as every profile (so ``<lb/>`` stays a line break and
inline markup is flattened without added spaces). Header fields come from the
page's JSON-LD/OpenGraph/meta (``metadata.page_metadata``).

Tuning, measured on the article-extraction benchmark (benchmarks/extraction.py):
comments are never body text (trafilatura includes them by default), and
precision-oriented extraction scores higher than the default.
"""

from __future__ import annotations

import trafilatura
from lxml.etree import _Element

from .htmltext import element_paragraphs
from .metadata import page_metadata
from .parts import PageParts

NAME = "generic"
VERSION = f"trafilatura/{trafilatura.__version__}+archiver/1"

TRAFILATURA_OPTIONS = {
    "include_comments": False,
    "favor_precision": True,
    "include_tables": True,
}


def main_text_paragraphs(html: str | _Element) -> list[str]:
    """The main text's paragraphs as trafilatura finds them; [] when it finds none."""
    try:
        document = trafilatura.bare_extraction(html, **TRAFILATURA_OPTIONS)
    except Exception:  # trafilatura raises a variety of parser errors on broken pages
        return []
    if document is None or document.body is None:
        return []
    return element_paragraphs(document.body)


def extract(tree: _Element, html: str, url: str | None) -> PageParts:
    parts = PageParts(**page_metadata(tree))
    parts.paragraphs = main_text_paragraphs(html)
    return parts
