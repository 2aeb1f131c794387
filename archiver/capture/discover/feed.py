"""Feeds: RSS and Atom, read with feedparser from bytes our fetcher fetched
(feedparser itself never touches the network here).

Where: the feeds the home page announces (``<link rel="alternate"
type="application/rss+xml">`` or Atom), else WordPress ``/feed/``, else
Drupal ``/rss.xml``. A feed lists recent items only, so a feed listing is
never *complete*: ``sync`` does not take a text that dropped off a feed for a
vanished one.
"""

from __future__ import annotations

import io
from urllib.parse import urljoin

import feedparser
import lxml.html

from archiver.capture.discover.listing import (DiscoverOptions, Findings, NotThisKind, fetch_listing,
                                               lastmod_from_struct, origin_of)
from archiver.capture.fetch import Fetcher
from archiver.errors import SourceError

WELL_KNOWN = ("/feed/", "/rss.xml")
FEED_TYPES = ("application/rss+xml", "application/atom+xml")


def find(site: str, fetcher: Fetcher, found: Findings, options: DiscoverOptions) -> None:
    tried = []
    for url in _announced(site, fetcher) or [origin_of(site) + path for path in WELL_KNOWN]:
        if not found.on_this_site(url):
            found.other_host(url)
            continue
        try:
            read_feed(url, fetcher, found)
        except NotThisKind as exc:
            tried.append(str(exc))
            continue
        found.complete = False  # a feed lists recent items, not everything
        return
    raise NotThisKind("no feed (" + ("; ".join(tried) or "none announced") + ")")


def _announced(site: str, fetcher: Fetcher) -> list[str]:
    """The feeds the home page links to, in page order."""
    try:
        capture = fetcher.fetch(site)
    except SourceError:
        return []
    if not capture.body.strip() or "html" not in (capture.content_type or "text/html"):
        return []
    try:
        tree = lxml.html.fromstring(capture.body)
    except (ValueError, lxml.etree.ParserError):
        return []
    feeds = []
    for link in tree.xpath("//link[@href]"):
        rel = (link.get("rel") or "").lower().split()
        if "alternate" in rel and (link.get("type") or "").lower() in FEED_TYPES:
            href = urljoin(capture.final_url, link.get("href").strip())
            if href not in feeds:
                feeds.append(href)
    return feeds


def read_feed(url: str, fetcher: Fetcher, found: Findings) -> None:
    body = fetch_listing(fetcher, url)
    parsed = feedparser.parse(io.BytesIO(body))
    if not parsed.get("version") and not parsed.entries:
        reason = parsed.get("bozo_exception")
        raise NotThisKind(f"{url} is not an RSS or Atom feed" + (f" ({reason})" if reason else ""))
    if parsed.get("bozo") and parsed.get("bozo_exception") is not None:
        exc = parsed.bozo_exception
        if not isinstance(exc, feedparser.CharacterEncodingOverride):
            found.problem(f"feed {url} is truncated or malformed ({exc}); the items before that point were kept")
    for entry in parsed.entries:
        link = entry.get("link")
        if not link:
            continue
        # dict.get: feedparser's own get maps a missing updated_parsed to published_parsed, with a warning.
        lastmod = lastmod_from_struct(dict.get(entry, "updated_parsed") or dict.get(entry, "published_parsed"))
        found.add(urljoin(url, link), lastmod, url)
