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
   post only, or one block of a product page; on a discussion page the
   replies trafilatura reads as comments follow the first post), and recall mode when that
   result too looks cut (step 3's signal); A discussion is marked by schema.org
   (``DiscussionForumPosting``, ``QAPage``, repeated ``Comment`` items) or
   by three or more repeated post containers (``id="post-123"``, class
   ``message--post``, ``forum-post``, Vanilla's ``Message`` …);
5. a first paragraph that repeats the page title is dropped: the title is in
   the header already;
6. elements styled ``display:none`` or ``visibility:hidden`` are never body
   text, in every mode (not the ``hidden`` attribute: see ``_HIDDEN_XPATH``);
7. a paragraph the page repeats within one container is kept as often as the
   page has it: trafilatura drops a repeated paragraph, the archive keeps the
   source's words;
8. a container marked as a comment section (``id="comment…"``, class
   ``comment…``/``post-comments``, the markers trafilatura prunes when comments
   are excluded) that holds the page's headline (``<h1>``) is the article's
   wrapper, not a comment section: it is unmarked before extraction (the
   comment sections inside it stay marked), else trafilatura loses the article
   and bags the navigation;
9. on an article page (step 2's branch) a teaser stream after the text is
   dropped: trailing paragraphs that are the summaries in a list of three or
   more items each with a linked headline (``drop_teaser_stream``). Listings
   and discussions keep theirs: there the teasers are the content;
10. a formula is text: a visible MathML ``<math>`` element (one a script such as
   MathJax renders into glyph-only custom elements, whose MathML copy is the
   formula's only text) is read as its tokens, space-separated, in place of its
   rendering container; trafilatura drops ``<math>``. A hidden one (Wikipedia's
   ``display:none`` MathML beside the formula's image) stays out (step 6);
11. on an article page a numbered slideshow is not the text: a list of three or
   more items in which item k opens with the counter "k/N", N the number of
   items (a photo gallery's captions, often unrelated to the article around
   them), is removed before extraction;
12. on a page without article metadata (step 4's balanced branch) whose one
   ``<article>`` element holds the page's ``<h1>`` and less than half its text, that element is read, not
   the page: a news front page with one story open beside its stream of teasers
   (trafilatura's fallback otherwise prefers the longer stream).
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import trafilatura
from lxml import html as lxml_html
from lxml.etree import Element, _Element

from archiver.capture.extract.htmltext import element_paragraphs, is_hidden, outer_bodies, remove_keeping_tail
from archiver.capture.extract.metadata import has_article_metadata, page_metadata
from archiver.capture.extract.parts import PageParts

NAME = "generic"
VERSION = f"trafilatura/{trafilatura.__version__}+archiver/1"

# Hidden elements are never body text (step 6), except a formula's MathML kept hidden for
# assistive technology beside its image. The ``hidden`` attribute is not pruned: streaming
# frameworks deliver the page's content in ``<div hidden>`` for scripts to move into place.
_HIDDEN_XPATH = ("//*[(contains(translate(@style, ' ', ''), 'display:none')"
                 " or contains(translate(@style, ' ', ''), 'visibility:hidden')) and not(.//math)]")
PRECISION_OPTIONS: dict[str, Any] = {"include_comments": False, "favor_precision": True, "prune_xpath": _HIDDEN_XPATH}
BALANCED_OPTIONS: dict[str, Any] = {"include_comments": False, "prune_xpath": _HIDDEN_XPATH}
RECALL_OPTIONS: dict[str, Any] = {"include_comments": False, "favor_recall": True, "prune_xpath": _HIDDEN_XPATH}
# On a discussion page the replies trafilatura reads as comments are posts: they follow the first.
DISCUSSION_OPTIONS: dict[str, Any] = {"include_comments": True, "prune_xpath": _HIDDEN_XPATH}
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
_CLOSING_PUNCTUATION = frozenset(",.;:!?)]")
_COUNTER = re.compile(r"\s*(\d+)\s*/\s*(\d+)")
_DISCUSSION_TYPES = re.compile(r"DiscussionForumPosting|QAPage")
_POST_ID = re.compile(r"^(?:post|p|msg|message|reply)[-_]?\d+$", re.IGNORECASE)
_POST_CLASS = re.compile(r"^(?:message--post|forum-post|topic-post|post-message|postbody|forumpost|post-container"
                         r"|discussion-post|thread-post|reply-post|message)$", re.IGNORECASE)
# Elements that may be post containers (then matched against _POST_ID and _POST_CLASS):
# an id starting with one of these, or a class attribute containing one of these.
_POST_CANDIDATE_IDS = ("p", "msg", "message", "reply", "P", "M", "R")
_POST_CANDIDATE_CLASSES = re.compile("post|Post|message|Message")
MIN_REPEATED_POSTS = 3
# Step 7: only paragraphs longer than this are restored (trafilatura keeps shorter repeats).
MIN_RESTORED_REPEAT = 50
_HEAD_WORDS = 5
# Step 9: a teaser stream is at least this many list items with a linked headline of this many words.
MIN_TEASERS = 3
MIN_HEADLINE_WORDS = 3


# Step 8: trafilatura's comment-section markers (its REMOVE_COMMENTS_XPATH), on the elements it prunes.
_COMMENT_ID = re.compile(r"^(?:[Cc]omment(?!ary)|comol|disqus_thread|dsq-comments)")
_COMMENT_CLASS = re.compile(r"^[Cc]omment(?!ary)|(?:article|post)-comments")
_COMMENT_CANDIDATES = ("//body//*[(self::div or self::section or self::ul or self::ol or self::details)"
                       " and (contains(@id, 'omment') or contains(@class, 'omment') or starts-with(@id, 'comol')"
                       " or starts-with(@id, 'dsq') or starts-with(@id, 'disqus'))][.//h1]")


def comment_marked_wrappers(tree: _Element) -> list[_Element]:
    """Elements marked as comment sections that hold the page's headline (step 8)."""
    return [element for element in tree.xpath(_COMMENT_CANDIDATES)
            if _COMMENT_ID.search(element.get("id") or "") or _COMMENT_CLASS.search(element.get("class") or "")]


def unmark_article_wrappers(html: str, tree: _Element) -> str:
    """``html`` with step 8's wrappers unmarked; ``html`` itself (no copy made) when there are none.
    ``tree`` is left as it was."""
    wrappers = comment_marked_wrappers(tree)
    if not wrappers:
        return html
    saved = [(element, element.get("id"), element.get("class")) for element in wrappers]
    for element, _id, _class in saved:
        element.attrib.pop("id", None)
        element.attrib.pop("class", None)
    try:
        return lxml_html.tostring(tree, encoding="unicode")
    finally:
        for element, old_id, old_class in saved:
            for name, value in (("id", old_id), ("class", old_class)):
                if value is not None:
                    element.set(name, value)


def visible_formulas(tree: _Element) -> list[_Element]:
    """The page's visible MathML ``<math>`` elements (step 10)."""
    return [math for math in tree.iter("math", "{http://www.w3.org/1998/Math/MathML}math")
            if not any(is_hidden(node) for node in (math, *math.iterancestors()))]


def formulas_as_text(tree: _Element) -> bool:
    """Each visible formula replaced, in ``tree``, by a ``<span>`` of its tokens (step 10):
    the ``<math>`` element itself, or the outermost of the custom elements (``mjx-container``
    …) directly around it, which hold its rendering. False when the page has none."""
    formulas = visible_formulas(tree)
    for math in formulas:
        target = math
        for ancestor in math.iterancestors():
            if "-" not in ancestor.tag:
                break
            target = ancestor
        parent = target.getparent()
        if parent is None:
            continue
        span = tree.makeelement("span", {})
        span.text = " " + " ".join(token.strip() for token in math.itertext() if token.strip())
        tail = target.tail or ""
        span.tail = tail if tail[:1] in _CLOSING_PUNCTUATION else " " + tail
        parent.replace(target, span)
    return bool(formulas)


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
    paragraphs = element_paragraphs(body)
    comments = getattr(document, "commentsbody", None) if options.get("include_comments") else None
    if comments is not None:
        paragraphs += element_paragraphs(comments)   # a discussion's replies (step 4)
    return paragraphs


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
    ``tree`` is the parsed page, to measure its main-text mass; its formulas become text
    (step 10) and, on an article page, its numbered slideshows are removed (step 11)."""
    kind = "article"
    if tree is not None:
        kind = ("discussion" if is_discussion(tree) else "article" if has_article_metadata(tree)
                else "listing")
        changed = formulas_as_text(tree)
        if kind == "article":
            changed = drop_slideshows(tree) or changed
        unmarked = unmark_article_wrappers(html, tree)
        if unmarked is not html or changed:
            html = unmarked if unmarked is not html else lxml_html.tostring(tree, encoding="unicode")
    article = sole_headlined_article(tree) if kind == "listing" and tree is not None else None
    if article is not None:
        html = "<html><body>" + lxml_html.tostring(article, encoding="unicode") + "</body></html>"
    if kind == "discussion":
        paragraphs = _unless_cut(html, tree, DISCUSSION_OPTIONS, RECALL_OPTIONS)
    elif kind == "listing":
        paragraphs = _unless_cut(html, tree, BALANCED_OPTIONS, RECALL_OPTIONS)
    else:
        paragraphs = _unless_cut(html, tree, PRECISION_OPTIONS, BALANCED_OPTIONS)
        if tree is not None:   # an article: a list of teasers after it is not its text
            paragraphs = drop_teaser_stream(paragraphs, tree)
    if tree is not None:
        paragraphs = restore_repeats(paragraphs, tree)
    return drop_repeated_title(paragraphs, title)


def sole_headlined_article(tree: _Element) -> _Element | None:
    """The page's one ``<article>`` element when it holds the page's headline and less than
    half the page's text (the rest is a stream beside it, not text the article lost) (step 12)."""
    articles = tree.xpath("//body//article")
    body = tree.find("body")
    if len(articles) == 1 and articles[0].find(".//h1") is not None and body is not None \
            and 2 * len(articles[0].text_content()) < len(body.text_content()):
        return articles[0]
    return None


def numbered_slideshows(tree: _Element) -> list[_Element]:
    """Lists of MIN_TEASERS or more items in which item k opens with the counter "k/N",
    N the number of items: a slideshow's captions (step 11)."""
    found: list[_Element] = []
    for first in tree.xpath("//body//li[1][starts-with(normalize-space(.), '1/')]"):
        listing = first.getparent()
        items = list(listing.iterchildren("li")) if listing is not None else []
        if len(items) < MIN_TEASERS or listing in found:
            continue
        counters = [_COUNTER.match(item.text_content()) for item in items]
        if all(match is not None and int(match[1]) == number and int(match[2]) == len(items)
               for number, match in enumerate(counters, start=1)):
            found.append(listing)
    return found


def drop_slideshows(tree: _Element) -> bool:
    """``tree`` without its numbered slideshows (step 11); False when it has none."""
    slideshows = numbered_slideshows(tree)
    for listing in slideshows:
        remove_keeping_tail(listing)
    return bool(slideshows)


def _is_teaser(item: _Element) -> bool:
    """A list item holding a linked headline (a link of three words or more) and its summary."""
    return any(len((link.text_content() or "").split()) >= MIN_HEADLINE_WORDS for link in item.iter("a"))


def drop_teaser_stream(paragraphs: list[str], tree: _Element) -> list[str]:
    """Without the teaser stream after the text (step 9): trailing paragraphs that are
    the summaries in a list of at least MIN_TEASERS linked-headline items."""
    summaries: dict[str, _Element] = {}
    for paragraph in tree.xpath("//li//p"):
        summaries.setdefault(" ".join(paragraph.text_content().split()), paragraph)
    if len(summaries) < MIN_TEASERS:
        return paragraphs
    end = len(paragraphs)
    while end > 0:
        element = summaries.get(" ".join(paragraphs[end - 1].split()))
        item = next((node for node in element.iterancestors("li")), None) if element is not None else None
        if item is None or not _is_teaser(item):
            break
        listing = item.getparent()
        if listing is None or sum(_is_teaser(other) for other in listing.iterchildren("li")) < MIN_TEASERS:
            break
        end -= 1
    if len(paragraphs) - end < MIN_TEASERS or end == 0:
        return paragraphs
    return paragraphs[:end]


def restore_repeats(paragraphs: list[str], tree: _Element) -> list[str]:
    """``paragraphs`` with each long paragraph as many times as the page repeats it
    in one visible container (step 7): a copy trafilatura dropped follows the one it kept."""
    found = Counter(" ".join(paragraph.split()) for paragraph in paragraphs)
    heads = {" ".join(key.split()[:_HEAD_WORDS]) for key in found if len(key) > MIN_RESTORED_REPEAT}
    if not heads:
        return paragraphs
    copies: Counter = Counter()
    for element in tree.iter("p", "div", "blockquote", "pre"):
        # Only elements whose own text opens like a candidate are read in full.
        if " ".join((element.text or "").split()[:_HEAD_WORDS]) in heads:
            key = " ".join(element.text_content().split())
            if key in found and not any(is_hidden(node) for node in (element, *element.iterancestors())):
                copies[key, element.getparent()] += 1
    on_page: Counter = Counter()
    for (key, _parent), count in copies.items():
        on_page[key] = max(on_page[key], count)
    result: list[str] = []
    for index, paragraph in enumerate(paragraphs):
        result.append(paragraph)
        key = " ".join(paragraph.split())
        missing = on_page[key] - found[key]
        if missing > 0 and all(" ".join(later.split()) != key for later in paragraphs[index + 1:]):
            result.extend([paragraph] * missing)
    return result


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
