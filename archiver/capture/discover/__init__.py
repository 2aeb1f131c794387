"""Discovery: find the texts a site publishes, with the fewest requests.

    >>> report = discover("https://theanarchistlibrary.org", DiscoverOptions(), Fetcher())
    >>> report.via, len(report.texts), report.texts[0].lastmod
    ('amusewiki', 12034, '2023-11-14T22:13:20Z')

One module per kind of listing: ``amusewiki`` (``/mirror.ts.txt``: one
request, every text and its change time), ``sitemap``, ``feed`` (RSS/Atom),
``oaipmh``. ``via="auto"`` tries them in that order and keeps the first the
site has. Every request goes through the given ``Fetcher`` (robots.txt and
its Crawl-delay, the per-host delay, retries, size caps). A listing that
fails (5xx after retries, a timeout, too large) stops the site with that
reason: the other kinds are not tried against a failing server.
"""

from __future__ import annotations

from typing import Callable

from archiver.capture.discover import amusewiki, feed, oaipmh, sitemap
from archiver.capture.discover.listing import (DiscoverOptions, DiscoveryReport, Findings, Listed,
                                               NotThisKind)
from archiver.capture.fetch import Fetcher
from archiver.errors import SourceError

KINDS: dict[str, Callable[[str, Fetcher, Findings, DiscoverOptions], None]] = {
    "amusewiki": amusewiki.find, "sitemap": sitemap.find, "feed": feed.find, "oai-pmh": oaipmh.find,
}
AUTO_ORDER = ("amusewiki", "sitemap", "feed", "oai-pmh")

__all__ = ["DiscoverOptions", "DiscoveryReport", "Listed", "discover", "KINDS"]


def discover(site: str, options: DiscoverOptions, fetcher: Fetcher) -> DiscoveryReport:
    """The texts ``site`` lists. Never raises for the site's faults: they are the report's problems."""
    found = Findings(site, options)
    tried = []
    for kind in AUTO_ORDER if options.via == "auto" else (options.via,):
        try:
            KINDS[kind](site, fetcher, found, options)
        except NotThisKind as exc:
            tried.append(str(exc))
            continue
        except SourceError as exc:
            found.problem(f"{kind} listing: {exc}")
            return found.report(kind)
        return found.report(kind)
    found.problem("no listing found: " + "; ".join(tried))
    return found.report(None)
