"""amusewiki sites (The Anarchist Library and its sister sites): ``/mirror.ts.txt``.

One request lists every file of the site's repository with its change time::

    a/ab/author-title.muse#1700000000
    specials/index.muse#1700000000

The text ``BASENAME.muse`` has its page at ``/library/BASENAME`` and its source
at ``/mirror/PATH``. Specials (``specials/…``) and non-text files (images,
attachments) are not texts of the library and are left out. Without
``mirror.ts.txt``, ``/mirror.txt`` (the same files as absolute URLs, no times)
is read instead when ``via="amusewiki"`` was asked for (``auto`` spends one
request to tell whether a site is amusewiki).
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote

from archiver.capture.discover.listing import (DiscoverOptions, Findings, NotThisKind, fetch_listing,
                                               lastmod_from_unix, looks_like_html, origin_of)
from archiver.capture.fetch import Fetcher

_LINE = re.compile(r"(?P<path>[^#\s]+)#(?P<time>\d{1,12})")


def find(site: str, fetcher: Fetcher, found: Findings, options: DiscoverOptions) -> None:
    origin = origin_of(site)
    listing = f"{origin}/mirror.ts.txt"
    try:
        body = fetch_listing(fetcher, listing)
    except NotThisKind:
        if options.via != "amusewiki":
            raise  # auto: one request to tell; mirror.txt is read only when amusewiki is asked for
        _read_mirror_txt(origin, fetcher, found)
        return
    entries = _parse_mirror_ts(body, listing, found)
    for path, when in entries:
        _add_file(origin, path, lastmod_from_unix(when), listing, found)


def _parse_mirror_ts(body: bytes, listing: str, found: Findings) -> list[tuple[str, int]]:
    if looks_like_html(body):
        raise NotThisKind(f"{listing} is an HTML page, not a mirror.ts.txt listing")
    lines = body.decode("utf-8", errors="replace").split("\n")
    entries: list[tuple[str, int]] = []
    for number, line in enumerate(lines, start=1):
        line = line.strip()
        if not line:
            continue
        m = _LINE.fullmatch(line)
        if m is None:
            if not entries:
                raise NotThisKind(f"{listing} is not a mirror.ts.txt listing (line {number}: {line[:60]!r})")
            last = number == len(lines) or all(not rest.strip() for rest in lines[number:])
            found.problem(f"{listing}: {'truncated' if last else 'malformed'} at line {number} "
                          f"({line[:60]!r} is not PATH#UNIXTIME)")
            continue
        entries.append((m["path"], int(m["time"])))
    if not entries:
        raise NotThisKind(f"{listing} lists no files")
    return entries


def _read_mirror_txt(origin: str, fetcher: Fetcher, found: Findings) -> None:
    listing = f"{origin}/mirror.txt"
    try:
        body = fetch_listing(fetcher, listing)
    except NotThisKind:
        raise NotThisKind(f"{origin}/mirror.ts.txt and {listing} are not there") from None
    if looks_like_html(body):
        raise NotThisKind(f"{listing} is an HTML page, not a mirror listing")
    prefix = f"{origin}/mirror/"
    count = 0
    for number, line in enumerate(body.decode("utf-8", errors="replace").splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        if not line.startswith(("http://", "https://")):
            if not count:
                raise NotThisKind(f"{listing} is not a mirror listing (line {number}: {line[:60]!r})")
            found.problem(f"{listing}: line {number} is not a URL ({line[:60]!r})")
            continue
        count += 1
        if not line.startswith(prefix):
            if not found.on_this_site(line):
                found.other_host(line)
            continue
        _add_file(origin, unquote(line[len(prefix):]), None, listing, found)


def _add_file(origin: str, path: str, lastmod: str | None, listing: str, found: Findings) -> None:
    if not path.endswith(".muse") or path.startswith(("specials/", "/")) or ".." in path.split("/"):
        return
    basename = path.rsplit("/", 1)[-1][: -len(".muse")]
    if not basename:
        return
    found.add(f"{origin}/library/{quote(basename)}", lastmod, listing, muse=f"{origin}/mirror/{quote(path)}")
