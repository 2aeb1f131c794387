"""Header fields from a page's machine-readable metadata, and the profile for
blogs whose markup is otherwise unknown (Medium-style platforms).

Precedence, field by field: JSON-LD (``Article``/``BlogPosting``/
``NewsArticle``… ``headline``, ``alternativeHeadline``, ``author``,
``datePublished``), then OpenGraph (``og:title``, ``article:author``,
``article:published_time``), then plain ``<meta name=…>``, then ``<title>``.

Dates: a machine date (``2024-03-05T10:00:00Z``) is read as its date part
(``2024-03-05``), which the header shows in the page's own words when the
page shows that day (``header.complete``); the full value stays in the raw
capture. ``iso_date`` reads a displayed date back as an ISO day.

The ``jsonld`` profile applies to blog platforms (Medium, Substack, Ghost)
whose markup marks the post body: the body is that element without its
header, byline, footer, asides and share widgets, and the header comes from
the metadata. Other pages take their header from here and their body from
the generic extractor.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from typing import Any

from htmldate.extractors import try_date_expr
from lxml.etree import Element, _Element

from archiver.capture.extract.htmltext import class_list, element_paragraphs, element_text, outer_bodies
from archiver.capture.extract.parts import PageParts

NAME = "jsonld"
VERSION = "archiver-jsonld/1"

ARTICLE_TYPES = frozenset({
    "Article", "BlogPosting", "NewsArticle", "Report", "ScholarlyArticle", "TechArticle",
    "SocialMediaPosting", "OpinionNewsArticle", "AnalysisNewsArticle", "ReportageNewsArticle",
    "LiveBlogPosting", "CreativeWork", "Book", "Chapter",
})
_ISO_DATE = re.compile(r"^(\d{4}-\d{2}-\d{2})(?:[T ][0-9:.]+(?:Z|[+-]\d{2}:?\d{2})?)?$")
# Inside an <article>, what is page furniture rather than the text.
_FURNITURE_CLASSES = re.compile(
    r"(?:^|[-_])(?:share|sharing|social|byline|author-?bio|related|newsletter|subscribe|"
    r"comments?|tags?|breadcrumbs?|meta|footer|promo|advert|ad-slot|signup|paywall)(?:$|[-_])",
    re.IGNORECASE)
_FURNITURE_TAGS = frozenset({"header", "footer", "nav", "aside", "h1"})
_FURNITURE_TEST_IDS = re.compile(r"byline|author|title|publishdate|readtime|clap|share|follow|response",
                                 re.IGNORECASE)
_EARLIEST = datetime(1000, 1, 1)
_CDATA = re.compile(r"^\s*(?://\s*)?<!\[CDATA\[|(?://\s*)?\]\]>\s*$")
_TITLE_SEPARATORS = frozenset({"|", "—", "–", "-", "::", "·", "•", ":"})
_HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6", "p"})


def _one_line(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    value = " ".join(value.split())
    return value or None


def display_date(value: str | None) -> str | None:
    """An ISO 8601 timestamp shown as its date; anything else as written."""
    value = _one_line(value)
    if value is None:
        return None
    match = _ISO_DATE.match(value)
    return match.group(1) if match else value


def iso_date(value: str | None) -> str | None:
    """A displayed date ("March 11th, 2015", "12. März 2019", "2015-03-11T08:00Z")
    as an ISO 8601 calendar date; None when it names no whole day."""
    value = _one_line(value)
    if value is None:
        return None
    match = _ISO_DATE.match(value)
    if match:
        return match.group(1)
    try:
        return try_date_expr(value, "%Y-%m-%d", True, _EARLIEST, datetime.now() + timedelta(days=2))
    except Exception:  # htmldate's parsers raise on odd input; the date then stays unparsed
        return None


# Where pages show their date: <time>, then elements named for dates or bylines
# (in the body, a class, itemprop or data-testid attribute containing one of _DATE_WORDS).
_TIME_PLACES = "//time | //body//*[@datetime]"
_DATE_WORDS = re.compile("date|Date|publish|posted|byline")
_DISPLAYED_DATE_MAX_CHARS = 60
NOT_PUBLISHED = re.compile(r"updat|modif|edited|aktualisiert|mis à jour", re.IGNORECASE)


def _time_places(tree: _Element) -> list[_Element]:
    return tree.xpath(_TIME_PLACES)


def _date_places(tree: _Element) -> list[_Element]:
    """The body's elements named for dates or bylines, in document order (one walk
    of the tree: an XPath of fifteen ``contains`` tests costs several times more)."""
    return [element for body in outer_bodies(tree) for element in body.iterdescendants(Element)
            if element.attrib and _DATE_WORDS.search(" ".join(  # no word holds a space: none is found across two
                filter(None, (element.get("class"), element.get("itemprop"), element.get("data-testid")))))]


def displayed_date(tree: _Element, iso: str) -> str | None:
    """The shortest text the page shows for the day ``iso`` (a ``<time>``, a
    dateline); None when the page shows it nowhere."""
    year, short_year = iso[:4], iso[2:4]
    readings: dict[str, str | None] = {}  # a page repeats its dates: each text is read once
    for places in (_time_places, _date_places):
        best: str | None = None
        for element in places(tree):
            text = " ".join(element.text_content().split())
            if (not text or len(text) > _DISPLAYED_DATE_MAX_CHARS or short_year not in text
                    or (best is not None and len(text) >= len(best)) or NOT_PUBLISHED.search(text)):
                continue
            if year in text or not re.search(r"\d{4}", text):
                if text not in readings:
                    readings[text] = iso_date(text)
                if readings[text] == iso:
                    best = text
        if best is not None:
            return best
    return None


_LINK_LABEL = re.compile(
    r"^(?:(?:view|see|read|browse|more)\s+(?:all\s+)?(?:posts|articles|stories|entries|from|by)(?:\s+by)?"
    r"|(?:posts|articles|stories)\s+by|written\s+by|posted\s+by|by)\s+", re.IGNORECASE)
_NOT_A_NAME = re.compile(r"^(?:https?:|www\.)|://|^\S+@\S+$|^[\w.-]+\.(?:com|org|net)\b", re.IGNORECASE)


def author_name(value: str | None) -> str | None:
    """An author field as a name: None for a URL or an e-mail address, and a
    link label ("View all posts by Jane Doe", "By Jane Doe") read as its name."""
    value = _one_line(value)
    if value is None or _NOT_A_NAME.search(value):
        return None
    value = _LINK_LABEL.sub("", value).strip()
    return value or None


def _names(value: Any) -> list[str]:
    """Author names from a JSON-LD ``author``: a string, a Person, or a list of them."""
    if isinstance(value, list):
        return [name for item in value for name in _names(item)]
    if isinstance(value, dict):
        name = _one_line(value.get("name"))
        return [name] if name else []
    name = _one_line(value)
    return [name] if name and not name.startswith("http") else []


def _json_ld_objects(tree: _Element) -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = []
    for script in tree.xpath('//script[@type="application/ld+json"]'):
        try:
            # Some pages wrap their JSON-LD in a CDATA section for old XHTML parsers.
            data = json.loads(_CDATA.sub("", script.text or ""))
        except ValueError:
            continue  # broken JSON-LD is common; it just gives no metadata
        stack = [data]
        while stack:
            item = stack.pop()
            if isinstance(item, list):
                stack.extend(reversed(item))
            elif isinstance(item, dict):
                objects.append(item)
                if "@graph" in item:
                    stack.append(item["@graph"])
    return objects


def _article_object(tree: _Element) -> dict[str, Any] | None:
    for item in _json_ld_objects(tree):
        types = item.get("@type")
        types = types if isinstance(types, list) else [types]
        if any(isinstance(t, str) and t in ARTICLE_TYPES for t in types):
            return item
    return None


def _meta(tree: _Element, *keys: str) -> str | None:
    metas = [element for element in tree.getroottree().iter("meta") if element.get("content") is not None]
    for key in keys:
        for attribute in ("property", "name", "itemprop"):
            for element in (element for element in metas if element.get(attribute) == key):
                value = _one_line(element.get("content"))
                if value:
                    return value
    return None


def _title_without_site_name(tree: _Element, title: str | None) -> str | None:
    """``<title>`` often reads "Post title — Site name"; when a heading on the
    page gives the post title alone, prefer it."""
    if not title:
        return None
    for heading in tree.xpath("//h1 | //h2"):
        text = element_text(heading)
        if text and text != title and title.startswith(text) and title[len(text):][:3].strip() in _TITLE_SEPARATORS:
            return text
    return title


def page_metadata(tree: _Element) -> dict[str, str | None]:
    """title, subtitle, author, date from JSON-LD, OpenGraph, <meta> and <title>."""
    article = _article_object(tree) or {}
    title_element = tree.find(".//title")
    authors = _names(article.get("author"))
    subtitle = _one_line(article.get("alternativeHeadline"))
    headline = _one_line(article.get("headline"))
    return {
        "title": (headline or _one_line(article.get("name"))
                  or _meta(tree, "og:title", "twitter:title", "dc.title", "DC.title")
                  or _title_without_site_name(tree, element_text(title_element))),
        "subtitle": subtitle if subtitle != headline else None,  # some sites repeat the headline
        "author": (", ".join(dict.fromkeys(authors)) or None) if authors else
        _meta(tree, "author", "article:author", "dc.creator", "DC.creator", "parsely-author"),
        "date": display_date(_one_line(article.get("datePublished"))
                             or _meta(tree, "article:published_time", "datePublished",
                                      "dc.date", "DC.date", "date")),
        "source": None,
    }


def has_article_metadata(tree: _Element) -> bool:
    return _article_object(tree) is not None or _meta(tree, "og:type") == "article"


# Blog platforms whose markup marks the post body unambiguously. On other
# pages with article metadata the generic extractor reads the body better
# (measured: benchmarks/extraction.py), and only the header comes from here.
_PLATFORM_BODIES = (
    # Medium: the post is the <article> holding the story title and body paragraphs
    '//article[.//*[@data-testid="storyTitle"] or .//p[contains(@class, "pw-post-body-paragraph")]]',
    # Substack
    '//div[contains(concat(" ", normalize-space(@class), " "), " available-content ")]',
    # Ghost
    '//section[contains(concat(" ", normalize-space(@class), " "), " gh-content ")]',
)


def _text_container(tree: _Element) -> _Element | None:
    for xpath in _PLATFORM_BODIES:
        found = tree.xpath(xpath)
        if found:
            return found[0]
    return None


def matches(tree: _Element) -> bool:
    return has_article_metadata(tree) and _text_container(tree) is not None


def _is_furniture(element: _Element) -> bool:
    if not isinstance(element.tag, str):
        return False
    if element.tag.lower() in _FURNITURE_TAGS:
        return True
    if _FURNITURE_TEST_IDS.search(element.get("data-testid") or ""):
        return True
    return any(_FURNITURE_CLASSES.search(name) for name in class_list(element)) or bool(
        element.get("rel") == "author" or element.get("itemprop") in ("author", "datePublished"))


def extract(tree: _Element, url: str | None) -> PageParts:
    container = _text_container(tree)
    parts = PageParts.from_header(page_metadata(tree))
    # Platforms repeat the title and subtitle as headings at the top of the
    # article; the header already carries them.
    repeated = {value for value in (parts.title, parts.subtitle) if value}

    def drop(element: _Element) -> bool:
        if _is_furniture(element):
            return True
        return (isinstance(element.tag, str) and element.tag.lower() in _HEADINGS
                and element_text(element) in repeated)

    if container is not None:
        parts.paragraphs = element_paragraphs(container, drop=drop)
    return parts
