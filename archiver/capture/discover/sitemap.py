"""Sitemaps: ``Sitemap:`` lines of robots.txt, else ``/sitemap.xml``,
``/sitemap_index.xml``, ``/wp-sitemap.xml``, ``/sitemap.txt`` (the first that answers).

XML sitemaps are read with lxml's ``iterparse``, each ``<url>`` cleared once
read, so a 50,000-URL sitemap costs its body (already capped by the fetcher)
and little more. Indexes are followed depth first, at most
``options.max_depth`` deep; a sitemap listed twice is read once and the loop
is reported. Gzipped sitemaps are inflated under the same cap. Entity
expansion, DTDs and network access are off in the parser.
"""

from __future__ import annotations

import io

from lxml import etree

from archiver.capture.discover.listing import (DiscoverOptions, Findings, NotThisKind, fetch_listing,
                                               lastmod_from_text, looks_like_html, origin_of)
from archiver.capture.fetch import Fetcher
from archiver.errors import SourceError

WELL_KNOWN = ("/sitemap.xml", "/sitemap_index.xml", "/wp-sitemap.xml", "/sitemap.txt")


def find(site: str, fetcher: Fetcher, found: Findings, options: DiscoverOptions) -> None:
    origin = origin_of(site)
    declared = fetcher.robots_sitemaps(site)
    seen: set[str] = set()
    reasons: list[str] = []
    if declared:
        answered = 0
        for url in declared:
            if not found.on_this_site(url):
                found.other_host(url)
                continue
            try:
                read_sitemap(url, fetcher, found, options, seen, depth=0, parent="robots.txt")
                answered += 1
            except NotThisKind as exc:
                reasons.append(str(exc))
        if answered:
            for reason in reasons:
                found.problem(f"robots.txt names a sitemap that is not one: {reason}")
            return
    tried = reasons  # what robots.txt named, then the usual places
    for path in WELL_KNOWN:
        if origin + path in seen:
            continue  # robots.txt named it, and it was not a sitemap
        try:
            read_sitemap(origin + path, fetcher, found, options, seen, depth=0, parent=None)
            return
        except NotThisKind as exc:
            tried.append(str(exc))
    raise NotThisKind("no sitemap (" + "; ".join(tried) + ")")


def read_sitemap(url: str, fetcher: Fetcher, found: Findings, options: DiscoverOptions, seen: set[str],
                 depth: int, parent: str | None) -> None:
    """Read one sitemap (or index, recursively). At the top (``parent`` None or
    robots.txt) a listing that is absent or not a sitemap raises NotThisKind;
    below, every fault is a problem of the listing and the others are read."""
    top = depth == 0
    if url in seen:
        found.problem(f"sitemap loop: {url} is listed again by {parent}", incomplete=False)
        return
    seen.add(url)
    if depth > options.max_depth:
        found.problem(f"sitemap index nested deeper than {options.max_depth} levels: {url} (from {parent}) "
                      "left unread")
        return
    try:
        body = fetch_listing(fetcher, url)
    except NotThisKind as exc:
        if top:
            raise
        found.problem(f"sitemap {url} (listed by {parent}): {str(exc).rsplit(': ', 1)[-1]}")
        return
    except SourceError as exc:
        if top:
            raise
        found.problem(f"sitemap {url} (listed by {parent}): {exc}")
        return
    if looks_like_html(body):
        if top:
            raise NotThisKind(f"{url} is an HTML page, not a sitemap")
        found.problem(f"sitemap {url} (listed by {parent}) is an HTML page, not a sitemap")
        return
    if body.lstrip()[:1] == b"<":
        children = _read_xml(url, body, found, top)
    else:
        children = []
        _read_text(url, body, found, top)
    for child in children:
        if not found.on_this_site(child):
            found.other_host(child)
            continue
        read_sitemap(child, fetcher, found, options, seen, depth + 1, parent=url)


def _local(tag: object) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _read_xml(url: str, body: bytes, found: Findings, top: bool) -> list[str]:
    """Add a urlset's pages to ``found``; return an index's sitemaps."""
    children: list[str] = []
    kind = None
    events = etree.iterparse(io.BytesIO(body), events=("start", "end"), resolve_entities=False,
                             no_network=True, load_dtd=False, huge_tree=False)
    try:
        for event, element in events:
            name = _local(element.tag)
            if kind is None:
                if name not in ("urlset", "sitemapindex"):
                    if top:
                        raise NotThisKind(f"{url} is XML but not a sitemap (root <{name}>)")
                    found.problem(f"sitemap {url} is XML but not a sitemap (root <{name}>)")
                    return []
                kind = name
                continue
            if event != "end" or name not in ("url", "sitemap"):
                continue
            loc = lastmod = None
            for child in element:
                child_name = _local(child.tag)
                if child_name == "loc":
                    loc = (child.text or "").strip()
                elif child_name == "lastmod":
                    lastmod = lastmod_from_text(child.text)
            if loc:
                if name == "sitemap" and kind == "sitemapindex":
                    children.append(loc)
                elif name == "url" and kind == "urlset":
                    found.add(loc, lastmod, url)
            element.clear()
            parent = element.getparent()
            while parent is not None and element.getprevious() is not None:
                del parent[0]
    except etree.XMLSyntaxError as exc:
        if kind is None:
            if top:
                raise NotThisKind(f"{url} is not XML ({exc.msg})") from None
            found.problem(f"sitemap {url} is not XML ({exc.msg})")
            return children
        found.problem(f"sitemap {url} is truncated or malformed (line {exc.lineno}: {exc.msg}); "
                      "the entries before that point were kept")
    return children


def _read_text(url: str, body: bytes, found: Findings, top: bool) -> None:
    """A text sitemap: one absolute URL a line."""
    count = 0
    for number, line in enumerate(body.decode("utf-8", errors="replace").splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        if not line.startswith(("http://", "https://")) or " " in line:
            if count == 0 and top:
                raise NotThisKind(f"{url} is not a sitemap (line {number}: {line[:60]!r})")
            found.problem(f"sitemap {url}: line {number} is not a URL ({line[:60]!r})")
            if count == 0:
                return
            continue
        count += 1
        found.add(line, None, url)
