"""amusewiki libraries (The Anarchist Library and its siblings).

The page carries its own header in ``#preamble`` (``#texttitle``,
``#textsubtitle``, ``#authors``, ``#textdate``, ``#preamblesrc``,
``#preamblenotes``) and the work in ``#thework``. Editorial comments
(``div.comment``), the table of contents and the translations block are not
the work. Footnote markers (``a.footnote``) stay in the text as ``[1]``; the
footnote bodies (``p.fnline``) go to the end, in order. ``#preamblenotes``
(translator's or publisher's notes) has no header line of its own in the
canonical format, so its paragraphs open the body.
"""

from __future__ import annotations

import re

from lxml.etree import _Element

from archiver.capture.extract.htmltext import class_list, has_class, element_paragraphs, element_text, linked_documents
from archiver.capture.extract.parts import PageParts

NAME = "amusewiki"
VERSION = "archiver-amusewiki/1"

_FOOTNOTE_NUMBER = re.compile(r"^\[?\s*(\d+|\*+)\s*\]?$")


def matches(tree: _Element) -> bool:
    """An amusewiki page: the preamble and the work container are both there."""
    return bool(tree.xpath('//*[@id="thework"]')) and bool(tree.xpath('//*[@id="preamble"]'))


def _by_id(tree: _Element, element_id: str) -> _Element | None:
    found = tree.xpath(f'//*[@id="{element_id}"]')
    return found[0] if found else None


def _preamble_value(tree: _Element, element_id: str) -> str | None:
    """A preamble field without its ``<strong>Label:</strong>`` span."""
    element = _by_id(tree, element_id)
    if element is None:
        return None

    def is_label(child: _Element) -> bool:
        return (child.get("id") or "").endswith("-label")

    paragraphs = element_paragraphs(element, drop=is_label)
    text = " ".join(" ".join(paragraphs).split())
    return text or None


def _footnote_marker(anchor: _Element) -> None:
    """Make the marker read ``[n]`` whatever the link text was (``1``, ``[1]``)."""
    text = "".join(anchor.itertext()).strip()
    match = _FOOTNOTE_NUMBER.match(text)
    if match is None:
        return
    tail = anchor.tail
    for child in list(anchor):
        anchor.remove(child)
    anchor.text = f"[{match.group(1)}]"
    anchor.tail = tail


def _is_not_the_work(element: _Element) -> bool:
    classes = class_list(element)
    return ("comment" in classes or "table-of-contents" in classes or "fnline" in classes
            or "secondary-fnline" in classes
            or element.get("id") in ("translations", "text-optional-footer"))


def body_paragraphs(tree: _Element) -> list[str]:
    work = _by_id(tree, "thework")
    if work is None:
        work = _by_id(tree, "htmltextbody")
    if work is None:
        return []
    for anchor in work.xpath(f'.//a[{has_class("footnote")}]'):
        _footnote_marker(anchor)
    # Secondary footnotes (notes on notes, marked {1}) follow the same rule.
    footnotes = work.xpath(f'.//p[{has_class("fnline")} or {has_class("secondary-fnline")}]')
    for footnote in footnotes:
        for anchor in footnote.xpath('.//a[contains(@class, "footnotebody")]'):
            _footnote_marker(anchor)
    paragraphs: list[str] = []
    notes = _by_id(tree, "preamblenotes")
    if notes is not None:
        paragraphs += element_paragraphs(notes, drop=lambda el: (el.get("id") or "").endswith("-label"))
    paragraphs += element_paragraphs(work, drop=_is_not_the_work)
    paragraphs += element_paragraphs(footnotes)
    return paragraphs


def header(tree: _Element) -> dict[str, str | None]:
    return {
        "title": _preamble_value(tree, "texttitle") or element_text(_by_id(tree, "text-title")),
        "subtitle": _preamble_value(tree, "textsubtitle"),
        "author": _preamble_value(tree, "authors"),
        "date": _preamble_value(tree, "textdate"),
        "source": _preamble_value(tree, "preamblesrc"),
    }


def download_links(tree: _Element, url: str | None) -> list[dict[str, str]]:
    """The formats the page offers (``#downloadformats``): .muse, .epub, .pdf, …"""
    box = _by_id(tree, "downloadformats")
    return linked_documents(box, url, kinds=None) if box is not None else []


def extract(tree: _Element, url: str | None) -> PageParts:
    return PageParts(**header(tree), paragraphs=body_paragraphs(tree), links=download_links(tree, url))
