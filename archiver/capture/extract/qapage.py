"""Question-and-answer pages marked up with schema.org microdata (``QAPage``).

On a Q&A page the question and every answer are the content; trafilatura keeps
the question and loses the answers (it reads them as comments, or as a
second block). Such a page says where each text is: ``itemprop="text"`` of the
``Question`` and of each ``Answer`` item. The body is the question's text,
then each answer's, in page order; comments on them (``Comment`` items) are
not. A page whose microdata holds no answer text is left to the other
profiles.
"""

from __future__ import annotations

from lxml.etree import _Element

from archiver.capture.extract.htmltext import element_paragraphs
from archiver.capture.extract.parts import PageParts

NAME = "qapage"
VERSION = "archiver-qapage/1"

_QA_PAGE = '//*[@itemtype and contains(@itemtype, "schema.org/QAPage")]'
_POSTS = ('//*[@itemtype and (contains(@itemtype, "schema.org/Question")'
          ' or contains(@itemtype, "schema.org/Answer"))]')


def _own_text(item: _Element) -> _Element | None:
    """The item's ``itemprop="text"`` element, not one of a nested item (a comment's)."""
    for element in item.iterdescendants():
        if element.get("itemprop") == "text":
            owner = next((a for a in element.iterancestors() if a.get("itemtype") is not None), None)
            if owner is item:
                return element
    return None


def _post_texts(tree: _Element) -> list[tuple[str, _Element]]:
    """(``Question``/``Answer``, its text element) in page order."""
    texts = []
    for item in tree.xpath(_POSTS):
        text = _own_text(item)
        if text is not None:
            texts.append(("Answer" if "Answer" in item.get("itemtype", "") else "Question", text))
    return texts


def matches(tree: _Element) -> bool:
    if not tree.xpath(_QA_PAGE):
        return False
    kinds = [kind for kind, _ in _post_texts(tree)]
    return "Question" in kinds and "Answer" in kinds


def extract(tree: _Element, url: str | None) -> PageParts:
    parts = PageParts()
    for _kind, text in _post_texts(tree):
        parts.paragraphs.extend(element_paragraphs(text))
    return parts
