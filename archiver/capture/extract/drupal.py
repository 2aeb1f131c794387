"""Drupal sites (libcom.org and the like), Drupal 8+ field markup.

Title from ``.page-title`` (or the ``field--name-title`` field), author from
the node's author field (``field--name-field-author``, else the submitted-by
username), date from the created field or the node's ``<time>``, body from
``field--name-body`` of the full node. The summary/teaser field, tags, share
links and the comments section are not the text, even inside the body. The
block headings Drupal hides for screen readers ("Main navigation") are never
read as a title or an author.
"""

from __future__ import annotations

import re

from lxml.etree import _Element

from archiver.capture.extract.htmltext import class_list, has_class, element_paragraphs, element_text, is_hidden, linked_documents
from archiver.capture.extract.metadata import display_date
from archiver.capture.extract.parts import PageParts

NAME = "drupal"
VERSION = "archiver-drupal/1"

_NOT_BODY_CLASSES = re.compile(
    r"^(?:field--name-field-(?:summary|teaser|introduction|tags|topics?|category|share)"
    r"|field--name-(?:comment|links)|links|node__links|comment|comments|comment-wrapper"
    r"|share|share-links|sharethis|social-share|addtoany|a2a_kit|field--name-field-attachments"
    r"|tags|field--type-comment|contextual|element-invisible)$")
_ATTACHMENT_KINDS = frozenset({"pdf", "epub", "mobi", "odt", "doc", "docx", "txt", "rtf", "zip"})


def _first(tree: _Element, *xpaths: str) -> _Element | None:
    for xpath in xpaths:
        for element in tree.xpath(xpath):
            if not is_hidden(element) and not any(is_hidden(a) for a in element.iterancestors()):
                return element
    return None


def matches(tree: _Element) -> bool:
    generator = " ".join(tree.xpath('//meta[@name="generator"]/@content'))
    has_body_field = bool(tree.xpath(f"//*[{has_class('field--name-body')}]"))
    return has_body_field and ("Drupal" in generator or bool(tree.xpath(f"//*[{has_class('node')}]"))
                               or bool(tree.xpath('//*[starts-with(@class, "node--")]')))


_FULL_NODE = re.compile(r"^(?:node--full|node--view-mode-full|view-mode--full|node--[\w-]+--full)$")
_TEASER_NODE = re.compile(r"^(?:node--teaser|node--view-mode-[\w-]*teaser[\w-]*|view-mode--[\w-]*teaser[\w-]*"
                          r"|node--[\w-]+--teaser|node--view-mode-(?:card|tile|compact|small[\w-]*|name-only))$")
# Listings, blocks and page regions around the node shown in full.
_OUTSIDE_CONTENT = ("ancestor::*[self::header or self::footer or self::aside or self::nav or "
                    + " or ".join(f'contains(@class, "{name}")' for name in (
                        "views-row", "view-content", "region-footer", "region-header", "region-sidebar",
                        "region-highlighted", "site-footer", "comment"))
                    + "]")


def _is_node(element: _Element, kind: re.Pattern[str]) -> bool:
    return any(kind.match(name) for name in class_list(element))


def _full_node(tree: _Element) -> _Element | None:
    """The node shown in full, never a teaser of a related node elsewhere on the page.

    A node marked full (``node--full``, ``node--view-mode-full``) is the text
    even when it has no body field (the profile then yields to the generic
    extractor). Otherwise the one unmarked node with a body field outside
    listings, headers, footers and sidebars; None when there is none or several."""
    nodes = tree.xpath('//*[contains(@class, "node")]')
    for node in nodes:
        if _is_node(node, _FULL_NODE):
            return node
    candidates = [node for node in nodes
                  if "node" in class_list(node) and not _is_node(node, _TEASER_NODE)
                  and not node.xpath(_OUTSIDE_CONTENT) and node.xpath(f".//*[{has_class('field--name-body')}]")]
    candidates = [node for node in candidates if not any(a in candidates for a in node.iterancestors())]
    # Several nodes side by side are a listing (events, search results), not one text.
    return candidates[0] if len(candidates) == 1 else None


def _is_not_body(element: _Element) -> bool:
    if element.get("id") in ("comments",):
        return True
    return any(_NOT_BODY_CLASSES.match(name) for name in class_list(element))


def _field_value(field: _Element | None) -> str | None:
    """A field's items without its ``field__label``."""
    if field is None:
        return None
    items = field.xpath(f'.//*[{has_class("field__item")}]')
    if items:
        return ", ".join(filter(None, (element_text(item) for item in items))) or None
    return element_text(field)


def extract(tree: _Element, url: str | None) -> PageParts:
    node = _full_node(tree)
    if node is None:
        return PageParts()  # no node shown in full: not a page this profile reads
    title = _first(tree, f'//h1[{has_class("page-title")}]', f'//*[{has_class("page-title")}]',
                   f'//*[{has_class("field--name-title")}]', "//h1")
    author = _field_value(_first(node, f'.//*[{has_class("field--name-field-author")}]',
                                 f'.//*[{has_class("field--name-field-authors")}]'))
    if author is None:
        author = element_text(_first(node, f'.//*[{has_class("node__meta")}]//*[{has_class("username")}]',
                                     './/*[@rel="author"]', f'.//*[{has_class("field--name-uid")}]'))
    date_element = _first(node, f'.//*[{has_class("field--name-field-date")}]',
                          f'.//*[{has_class("field--name-created")}]',
                          f'.//*[{has_class("node__meta")}]//time')
    date = _field_value(date_element) if date_element is not None else None
    bodies = node.xpath(f'.//*[{has_class("field--name-body")}]')
    # A body field nested inside another (a quoted node) is read with its parent.
    bodies = [b for b in bodies if not any(a in bodies for a in b.iterancestors())]
    paragraphs = element_paragraphs(bodies, drop=_is_not_body)
    links = linked_documents(node, url, _ATTACHMENT_KINDS)
    return PageParts(title=element_text(title), author=author, date=display_date(date),
                     paragraphs=paragraphs, links=links)
