"""The generic extractor for pages no profile knows: trafilatura, tuned.

trafilatura finds the main text; archiver serialises trafilatura's XML tree by
the same canonical rules as every profile (``<lb/>`` stays a line break,
inline markup is flattened without added spaces, table cells keep a space
between them). Header fields come from the page's JSON-LD/OpenGraph/meta
(``metadata.page_metadata``).

Tuning, each step measured on the article-extraction benchmark
(``benchmarks/extraction.py``; figures in the README):

1. comments are never body text (trafilatura includes them by default);
2. precision-oriented extraction first: it leaves out more boilerplate;
3. when that finds less than a short paragraph's worth of text, or less than
   a share of the page's main-text mass (its visible text outside links,
   navigation, headers, footers, asides and forms), the balanced mode runs
   too and wins if it finds substantially more: precision mode sometimes
   keeps only a reprint notice, or a long article's opening;
4. on a discussion page (a forum thread, a Q&A page) the posts are the
   content, and on a page without article metadata (products, services,
   listings, documentation) there is no one article to single out: the
   balanced mode reads these straight away (precision mode keeps the first
   post only, or one block of a product page), and recall mode when that
   result too looks cut (step 3's signal); A discussion is marked by schema.org
   (``DiscussionForumPosting``, ``QAPage``, repeated ``Comment`` items) or
   by three or more repeated post containers (``id="post-123"``, class
   ``message--post``, ``forum-post`` …);
5. a first paragraph that repeats the page title is dropped: the title is in
   the header already.
"""

from __future__ import annotations

import re
from typing import Any

import trafilatura
from lxml.etree import Element, _Element

from archiver.capture.extract.htmltext import element_paragraphs, outer_bodies
from archiver.capture.extract.metadata import has_article_metadata, page_metadata
from archiver.capture.extract.parts import PageParts

NAME = "generic"
VERSION = f"trafilatura/{trafilatura.__version__}+archiver/1"

PRECISION_OPTIONS: dict[str, Any] = {"include_comments": False, "favor_precision": True}
BALANCED_OPTIONS: dict[str, Any] = {"include_comments": False}
# Recall mode reads what the others leave out, hidden elements too: those are pruned.
RECALL_OPTIONS: dict[str, Any] = {"include_comments": False, "favor_recall": True, "prune_xpath": (
    "//*[@hidden or contains(translate(@style, ' ', ''), 'display:none')"
    " or contains(translate(@style, ' ', ''), 'visibility:hidden')]")}
# Below this many characters, or this share of the page's text mass, a
# precision-mode result is suspect (step 3) …
SHORT_RESULT_CHARS = 400
SHORT_SHARE_OF_MASS = 0.4
# … and the balanced result replaces it only when at least this much longer.
BALANCED_MUST_BE_LONGER = 1.5
# The page's main-text mass: text not in links, page furniture or forms, i.e. the
# text nodes of //body//text()[not(ancestor::script or ancestor::style or …)].
_NOT_MASS_TAGS = frozenset({"script", "style", "noscript", "a", "nav", "header", "footer", "aside",
                            "form", "select", "button"})

_WORDS = re.compile(r"\w+")
_DISCUSSION_TYPES = re.compile(r"DiscussionForumPosting|QAPage")
_POST_ID = re.compile(r"^(?:post|p|msg|message|reply)[-_]?\d+$", re.IGNORECASE)
_POST_CLASS = re.compile(r"^(?:message--post|forum-post|topic-post|post-message|postbody|forumpost|post-container"
                         r"|discussion-post|thread-post|reply-post)$", re.IGNORECASE)
# Elements that may be post containers (then matched against _POST_ID and _POST_CLASS):
# an id starting with one of these, or a class attribute containing one of these.
_POST_CANDIDATE_IDS = ("p", "msg", "message", "reply", "P", "M", "R")
_POST_CANDIDATE_CLASSES = re.compile("post|Post|message")
MIN_REPEATED_POSTS = 3


def _trafilatura_paragraphs(html: str, options: dict[str, Any]) -> list[str]:
    try:
        document = trafilatura.bare_extraction(html, **options)
    except Exception:  # trafilatura raises a variety of parser errors on broken pages
        return []
    body = getattr(document, "body", None)  # a Document (as_dict=False), never the dict form
    if body is None:
        return []
    for code in body.iter("code"):
        # trafilatura writes <pre> blocks as block-level <code>: keep their lines
        parent = code.getparent()
        if parent is not None and parent.tag in ("body", "doc", "quote") and "\n" in (code.text or ""):
            code.tag = "pre"
    return element_paragraphs(body)


def _length(paragraphs: list[str]) -> int:
    return sum(len(paragraph) for paragraph in paragraphs)


def _words(text: str | None) -> list[str]:
    return _WORDS.findall((text or "").lower())


def drop_repeated_title(paragraphs: list[str], title: str | None) -> list[str]:
    """Without a first paragraph that is the title (or the start of a
    "Title | Site name" title); the header carries it."""
    if len(paragraphs) < 2 or not title:
        return paragraphs
    first, title_words = _words(paragraphs[0]), _words(title)
    if first and (first == title_words or (len(first) >= 3 and title_words[:len(first)] == first)):
        return paragraphs[1:]
    return paragraphs


def text_mass(tree: _Element) -> int:
    """Characters of visible text outside links, navigation, headers, footers, asides and forms."""
    return sum(_mass(body) for body in outer_bodies(tree)
               if not any(ancestor.tag in _NOT_MASS_TAGS for ancestor in body.iterancestors()))


def _mass(element: _Element) -> int:
    """The stripped length of each text node in ``element`` outside the _NOT_MASS_TAGS
    (one walk of the tree: an XPath ancestor test per text node costs far more)."""
    total = len(element.text.strip()) if element.text else 0
    for child in element:
        if isinstance(child.tag, str) and child.tag not in _NOT_MASS_TAGS:
            total += _mass(child)  # a comment's own text is no text node, its tail is
        if child.tail:
            total += len(child.tail.strip())
    return total


def _is_post_candidate(element: _Element) -> bool:
    identifier, classes = element.get("id"), element.get("class")
    return bool(identifier and identifier.startswith(_POST_CANDIDATE_IDS)
                or classes and _POST_CANDIDATE_CLASSES.search(classes))


def is_discussion(tree: _Element) -> bool:
    """A forum thread or Q&A page: its posts are the content (step 4)."""
    for text in tree.xpath('//script[@type="application/ld+json"]/text()'):
        if _DISCUSSION_TYPES.search(text):
            return True
    itemtypes = tree.xpath("//*[@itemtype]/@itemtype")
    if any(_DISCUSSION_TYPES.search(value) for value in itemtypes) or sum(
            value.rstrip("/").endswith("/Comment") for value in itemtypes) >= MIN_REPEATED_POSTS:
        return True
    return post_containers(tree) >= MIN_REPEATED_POSTS


def post_containers(tree: _Element) -> int:
    """How many elements in the body are post containers (``id="post-123"``, class ``forum-post`` …)."""
    return sum(1 for body in outer_bodies(tree) for element in body.iterdescendants(Element)
               if _is_post_candidate(element) and (_POST_ID.match(element.get("id") or "")
               or any(_POST_CLASS.match(name) for name in (element.get("class") or "").split())))


def _looks_cut(found: int, tree: _Element | None) -> bool:
    if found < SHORT_RESULT_CHARS:
        return True
    if tree is None:
        return False
    body = tree.find("body")
    # The whole text bounds the mass from above and costs less to measure.
    if body is None or found >= SHORT_SHARE_OF_MASS * len(body.text_content()):
        return False
    return found < SHORT_SHARE_OF_MASS * text_mass(tree)


def main_text_paragraphs(html: str, title: str | None = None, tree: _Element | None = None) -> list[str]:
    """The main text's paragraphs (steps 1–4 above); [] when none is found.
    ``tree`` is the parsed page, to measure its main-text mass."""
    if tree is not None and (is_discussion(tree) or not has_article_metadata(tree)):
        paragraphs = _unless_cut(html, tree, BALANCED_OPTIONS, RECALL_OPTIONS)
    else:
        paragraphs = _unless_cut(html, tree, PRECISION_OPTIONS, BALANCED_OPTIONS)
    return drop_repeated_title(paragraphs, title)


def _unless_cut(html: str, tree: _Element | None, first: dict[str, Any], looser: dict[str, Any]) -> list[str]:
    """trafilatura with ``first``; when that looks cut, with ``looser``, whose result
    is taken only if clearly longer (BALANCED_MUST_BE_LONGER times)."""
    paragraphs = _trafilatura_paragraphs(html, first)
    if _looks_cut(_length(paragraphs), tree):
        retry = _trafilatura_paragraphs(html, looser)
        if _length(retry) >= BALANCED_MUST_BE_LONGER * max(_length(paragraphs), 1):
            return retry
    return paragraphs


def extract(tree: _Element, html: str, url: str | None) -> PageParts:
    parts = PageParts.from_header(page_metadata(tree))
    parts.paragraphs = main_text_paragraphs(html, parts.title, tree)
    return parts
