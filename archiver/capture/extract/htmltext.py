"""HTML elements to canonical paragraphs: the rules every profile shares.

- Block elements (p, headings, list items, table rows, blockquote, div …)
  each make a paragraph; paragraphs are later joined by one blank line.
- Inside a paragraph, HTML white space collapses to single spaces and inline
  markup is flattened with no added spaces: ``30<sup>th</sup>`` → ``30th``.
- ``<br>`` keeps its line break; ``<pre>`` keeps its text exactly.
- Scripts, styles, forms, and hidden elements (``hidden``, ``display:none``,
  ``visibility:hidden``, screen-reader-only classes) are dropped; an element's
  tail text always survives the element.
"""

from __future__ import annotations

import re
from urllib.parse import urljoin
from typing import Callable, Iterable

from lxml import html as lxml_html
from lxml.etree import _Comment, _Element, _ProcessingInstruction

from archiver.errors import ExtractionError

BLOCK_TAGS = frozenset({
    "address", "article", "aside", "blockquote", "body", "caption", "center", "dd", "details",
    "dialog", "dir", "div", "dl", "dt", "fieldset", "figcaption", "figure", "footer", "h1", "h2",
    "h3", "h4", "h5", "h6", "header", "hgroup", "hr", "html", "legend", "li", "main", "menu", "nav",
    "ol", "p", "section", "summary", "table", "tbody", "tfoot", "thead", "tr", "ul",
    # trafilatura's output vocabulary, so its trees serialise by the same rules
    "doc", "head", "item", "list", "quote", "row",
})
CELL_TAGS = frozenset({"td", "th", "cell"})
LINE_BREAK_TAGS = frozenset({"br", "lb"})
PRE_TAGS = frozenset({"pre"})
SKIPPED_TAGS = frozenset({
    "script", "style", "noscript", "template", "form", "button", "input", "select", "textarea",
    "iframe", "svg", "object", "embed", "canvas", "audio", "video", "map", "meta", "link", "title",
    "math",
})
# Visible only to screen readers: not part of the text a reader sees.
HIDDEN_CLASSES = frozenset({
    "visually-hidden", "sr-only", "screen-reader-text", "element-invisible", "hidden", "d-none",
    "hide", "is-hidden", "invisible",
})
_HIDDEN_STYLE = re.compile(r"(?:display\s*:\s*none|visibility\s*:\s*hidden)", re.IGNORECASE)
_INVISIBLE = "\u200b\u200c\u200d\u2060\ufeff\u00ad"
_HTML_SPACE = re.compile(r"[ \t\n\r\f]+")

Drop = Callable[[_Element], bool]


def parse_html(html: str) -> _Element:
    """Parse a document with lxml; ExtractionError when there is nothing to parse."""
    if not html or not html.strip():
        raise ExtractionError("the page is empty")
    # lxml refuses str input that carries an XML encoding declaration.
    html = re.sub(r"^\s*<\?xml[^>]*\?>", "", html)
    try:
        return lxml_html.document_fromstring(html)
    except Exception as exc:  # lxml raises ParserError, ValueError, XMLSyntaxError
        raise ExtractionError(f"the page cannot be parsed as HTML: {exc}") from exc


def outer_bodies(tree: _Element) -> list[_Element]:
    """The document's ``<body>`` elements that are not inside another, in document
    order: walking their subtrees visits what ``//body//…`` selects, each node once."""
    return [body for body in tree.getroottree().iter("body")
            if not any(ancestor.tag == "body" for ancestor in body.iterancestors())]


def has_class(name: str) -> str:
    """An XPath predicate body: the element's class attribute contains the class ``name``.
    (The plain ``contains`` first is the cheap test that rules out most elements.)"""
    return f'(contains(@class, "{name}") and contains(concat(" ", normalize-space(@class), " "), " {name} "))'


def class_list(element: _Element) -> list[str]:
    return (element.get("class") or "").split()


def is_hidden(element: _Element) -> bool:
    """Hidden from a reader of the page: ``hidden``, inline display:none, screen-reader-only."""
    if element.get("hidden") is not None:
        return True
    style = element.get("style")
    if style and _HIDDEN_STYLE.search(style):
        return True
    return any(name in HIDDEN_CLASSES for name in class_list(element))


def remove_keeping_tail(element: _Element) -> None:
    """Remove an element from its tree but keep the text that follows it."""
    parent = element.getparent()
    if parent is None:
        return
    tail = element.tail
    if tail:
        previous = element.getprevious()
        if previous is not None:
            previous.tail = (previous.tail or "") + tail
        else:
            parent.text = (parent.text or "") + tail
    parent.remove(element)


class _Paragraphs:
    """Collects inline pieces and turns them into finished paragraphs."""

    def __init__(self) -> None:
        self.paragraphs: list[str] = []
        self.pieces: list[str] = []

    def add_text(self, text: str | None) -> None:
        if text:
            self.pieces.append(_HTML_SPACE.sub(" ", text))

    def add_line_break(self) -> None:
        self.pieces.append("\n")

    def add_verbatim(self, text: str) -> None:
        self.flush()
        text = text.strip("\n")
        if text.strip():
            self.paragraphs.append(text)

    def flush(self) -> None:
        if not self.pieces:
            return
        lines = [re.sub(" {2,}", " ", line).strip() for line in "".join(self.pieces).split("\n")]
        # A line of only invisible format characters (zero-width spaces that
        # editors leave behind) is as empty as a line of spaces.
        lines = [line if line.strip(_INVISIBLE) else "" for line in lines]
        self.pieces = []
        # A paragraph of only <br> or spaces is no paragraph; blank lines inside
        # one (two <br> in a row) stay and become a paragraph break later.
        while lines and not lines[0]:
            lines.pop(0)
        while lines and not lines[-1]:
            lines.pop()
        if lines:
            self.paragraphs.append("\n".join(lines))


def _walk(element: _Element, out: _Paragraphs, drop: Drop | None) -> None:
    for child in element:
        if isinstance(child, (_Comment, _ProcessingInstruction)) or not isinstance(child.tag, str):
            out.add_text(child.tail)
            continue
        tag = child.tag.lower()
        if tag in SKIPPED_TAGS or is_hidden(child) or (drop is not None and drop(child)):
            out.add_text(child.tail)
            continue
        if tag in LINE_BREAK_TAGS:
            out.add_line_break()
        elif tag in PRE_TAGS:
            out.add_verbatim("".join(child.itertext()))
        elif tag in BLOCK_TAGS:
            out.flush()
            out.add_text(child.text)
            _walk(child, out, drop)
            out.flush()
        elif tag in CELL_TAGS:
            # Cells of one row share a paragraph; a space keeps their words apart.
            out.add_text(" ")
            out.add_text(child.text)
            _walk(child, out, drop)
            out.add_text(" ")
        else:
            out.add_text(child.text)
            _walk(child, out, drop)
        out.add_text(child.tail)


def element_paragraphs(elements: _Element | Iterable[_Element], drop: Drop | None = None) -> list[str]:
    """The paragraphs of one element (or several, in order), by the module's rules.

    ``drop(element)`` may exclude further elements (a profile's share blocks…).
    """
    if isinstance(elements, _Element):
        elements = [elements]
    out = _Paragraphs()
    for element in elements:
        if is_hidden(element) or (drop is not None and drop(element)):
            continue
        tag = element.tag.lower() if isinstance(element.tag, str) else ""
        if tag in PRE_TAGS:
            out.add_verbatim("".join(element.itertext()))
            continue
        out.flush()
        out.add_text(element.text)
        _walk(element, out, drop)
        out.flush()
    return out.paragraphs


def element_text(element: _Element | None) -> str | None:
    """One element as a single line (for titles, bylines, dates); None when empty."""
    if element is None:
        return None
    text = " ".join(" ".join(element_paragraphs(element)).split())
    return text or None


DOCUMENT_KINDS = frozenset({"pdf", "epub", "mobi", "azw3", "muse", "odt", "doc", "docx", "rtf", "txt", "tex", "zip"})


def linked_documents(element: _Element, url: str | None,
                     kinds: frozenset[str] | None = DOCUMENT_KINDS) -> list[dict[str, str]]:
    """Links under ``element`` to downloadable files, as ``{"url", "kind"}``.

    ``kind`` is the file extension (``pdf``, ``epub``, ``muse``); with
    ``kinds=None`` every link that names a file counts. URLs are made absolute
    against ``url`` when it is known. Each URL appears once, in page order.
    """
    links: list[dict[str, str]] = []
    seen: set[str] = set()
    for anchor in element.xpath(".//a[@href]"):
        href = anchor.get("href").strip()
        target = urljoin(url, href) if url else href
        last_segment = target.split("?", 1)[0].split("#", 1)[0].rsplit("/", 1)[-1]
        if "." not in last_segment:
            continue
        kind = last_segment.rsplit(".", 1)[-1].lower()
        if (kinds is None or kind in kinds) and target not in seen:
            seen.add(target)
            links.append({"url": target, "kind": kind})
    return links
