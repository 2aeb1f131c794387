"""What every kind of listing shares: the texts found so far, the problems met,
fetching a listing through the one polite fetcher, and reading its dates.

A kind's ``find(site, fetcher, found, options)`` adds what it lists to
``found`` (a ``Findings``) and returns; it raises ``NotThisKind`` when the
site has no listing of that kind (a 404, an HTML page where XML belongs), so
``via = "auto"`` tries the next kind. A listing of the right kind that is
damaged (truncated, looping, a sub-sitemap answering 5xx) is a *problem*:
what could be read is kept, and the listing is marked incomplete, so that
``sync`` never takes a text missing from it for a vanished one.
"""

from __future__ import annotations

import calendar
import re
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urldefrag, urlsplit

from archiver.capture.fetch import Fetcher, gunzip_capped
from archiver.clock import iso
from archiver.errors import HTTPStatusError

ABSENT = (404, 410)   # a listing that is not there: not a site of this kind


class NotThisKind(Exception):
    """The site publishes no listing of this kind (the reason says what was tried)."""


@dataclass
class DiscoverOptions:
    via: str = "auto"                        # auto | amusewiki | sitemap | feed | oai-pmh
    match: str | None = None                 # regular expressions on each text's URL
    exclude: str | None = None
    since: datetime | None = None            # only texts changed since (texts without a date are kept)
    limit: int | None = None
    allow_other_hosts: bool = False
    max_depth: int = 3                       # sitemap indexes nested at most this deep


@dataclass
class Listed:
    """One text a site lists: its page, when it last changed (ISO 8601 UTC, when
    known), the listing it was found in and, for amusewiki, its ``.muse`` source."""

    url: str
    lastmod: str | None
    found_in: str
    muse: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None or k == "lastmod"}


@dataclass
class DiscoveryReport:
    site: str
    via: str | None                          # the kind of listing that answered
    texts: list[Listed] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    complete: bool = True                    # False: a listing could not be read whole

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {"site": self.site, "via": self.via, "complete": self.complete, "problems": self.problems,
                "count": len(self.texts), "texts": [t.to_dict() for t in self.texts]}


class Findings:
    """The texts found for one site, filtered as the options say, each URL once."""

    def __init__(self, site: str, options: DiscoverOptions) -> None:
        self.site = site
        self.options = options
        self.host = urlsplit(site).netloc.lower()
        self.texts: dict[str, Listed] = {}
        self.problems: list[str] = []
        self.complete = not (options.since or options.limit)
        self._match = re.compile(options.match) if options.match else None
        self._exclude = re.compile(options.exclude) if options.exclude else None
        self._since = iso(options.since) if options.since else None
        self._other_hosts: list[str] = []

    def on_this_site(self, url: str) -> bool:
        return self.options.allow_other_hosts or urlsplit(url).netloc.lower() == self.host

    def add(self, url: str, lastmod: str | None, found_in: str, muse: str | None = None) -> None:
        url = urldefrag(url.strip())[0]
        if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).netloc:
            return
        if not self.on_this_site(url):
            self._other_hosts.append(url)
            return
        if (self._match and not self._match.search(url)) or (self._exclude and self._exclude.search(url)):
            return
        if self._since and lastmod and lastmod < self._since:
            return
        known = self.texts.get(url)
        if known is not None:
            if lastmod and (known.lastmod is None or lastmod > known.lastmod):
                known.lastmod = lastmod
            return
        if self.options.limit is not None and len(self.texts) >= self.options.limit:
            return
        self.texts[url] = Listed(url, lastmod, found_in, muse)

    def other_host(self, url: str) -> None:
        """A listing on another host, left unread."""
        self._other_hosts.append(url)

    def problem(self, message: str, incomplete: bool = True) -> None:
        self.problems.append(message)
        if incomplete:
            self.complete = False

    def report(self, via: str | None) -> DiscoveryReport:
        problems = list(self.problems)
        if self._other_hosts:
            problems.append(f"{len(self._other_hosts)} URL(s) on other hosts left out (first: "
                            f"{self._other_hosts[0]}); --allow-other-hosts keeps them")
        return DiscoveryReport(self.site, via, list(self.texts.values()), problems, self.complete)


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def fetch_listing(fetcher: Fetcher, url: str) -> bytes:
    """A listing's bytes (gzip undone, under the size cap). 404/410 raise
    NotThisKind; any other failure is the fetcher's SourceError."""
    try:
        capture = fetcher.fetch(url)
    except HTTPStatusError as exc:
        if exc.status in ABSENT:
            raise NotThisKind(f"{url}: HTTP {exc.status}") from None
        raise
    body = capture.body
    if body[:2] == b"\x1f\x8b":  # a .gz sitemap (served as a file, not a Content-Encoding)
        body = gunzip_capped(body, fetcher.settings.max_bytes)
    return body


def looks_like_html(body: bytes) -> bool:
    head = body[:1024].lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html")) or re.search(rb"<(head|body)[\s>]", head) is not None


def lastmod_from_text(value: str | None) -> str | None:
    """A W3C datetime (``2024-01-05``, ``2024-01-05T10:00:00+02:00``) as ISO 8601 UTC; None if unreadable."""
    if not value or not value.strip():
        return None
    text = value.strip().replace("Z", "+00:00")
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return iso(when)


def lastmod_from_unix(value: int) -> str:
    return iso(datetime.fromtimestamp(value, timezone.utc))


def lastmod_from_struct(value: time.struct_time | None) -> str | None:
    """A date feedparser parsed (a UTC struct_time) as ISO 8601 UTC."""
    return lastmod_from_unix(calendar.timegm(value)) if value else None
