"""Loopback sites that behave like the real ones, each with its own request log.

- ``AmusewikiSite``: pages at ``/library/<slug>``, sources at ``/mirror/<a>/<ab>/<slug>.muse``
  (and ``/library/<slug>.muse``), ``/mirror.ts.txt``, ``/mirror.txt``, ``/sitemap.txt``,
  ``/feed`` (RSS), an OAI-PMH endpoint at ``/oai-pmh`` (ListRecords/ListIdentifiers, oai_dc,
  resumption tokens every ``OAI_PAGE`` records, ``from``). ``from_renderings`` serves the
  179 real amusewiki renderings of ``../shared/realpages/amusewiki`` (their absolute links
  rewritten to this server); ``synthetic(n)`` makes n small pages from amusewiki's markup.
  The renderings come without their ``.muse`` source, so each text gets a small plausible
  ``.muse`` synthesised from its expected header and first paragraphs.
- ``WordPressSite``: ``/wp-sitemap.xml`` (index) with posts and pages sub-sitemaps, ``/feed/``,
  posts at ``/YYYY/MM/DD/slug/``, robots.txt naming the sitemap.
- ``DrupalSite``: ``/sitemap.xml`` (urlset), ``/rss.xml``, nodes at ``/node/N``.

Every site answers If-None-Match with 304 when its ETag matches; ``routes`` overrides any
path with ``(status, headers, body)`` or a function of the request handler (hostile cases).
"""

from __future__ import annotations

import gzip
import hashlib
import html
import http.server
import json
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import format_datetime
from pathlib import Path
from typing import Callable
from urllib.parse import parse_qs, urlsplit

BASE_TIME = 1_700_000_000
OAI_PAGE = 50
Response = tuple[int, dict[str, str], bytes]


@dataclass
class Text:
    slug: str
    title: str
    page: str            # HTML, with "{BASE}" for the site's origin
    mtime: int
    muse: str = ""
    path: str = ""       # mirror path, amusewiki only

    @property
    def body(self) -> bytes:
        return self.page.encode("utf-8")


class SiteServer:
    """A threaded HTTP/1.1 server on 127.0.0.1:0; subclasses answer ``respond(path, query)``."""

    robots = "User-agent: *\nDisallow: /private/\n"
    page_delay = 0.0  # seconds before answering a /library/ page (kill tests: work that takes time)

    def __init__(self) -> None:
        self.texts: dict[str, Text] = {}
        self.requests: list[tuple[str, str]] = []
        self.routes: dict[str, Response | Callable[[http.server.BaseHTTPRequestHandler], None]] = {}
        self.lock = threading.Lock()
        site = self

        class _Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                with site.lock:
                    site.requests.append(("GET", self.path))
                parts = urlsplit(self.path)
                if site.page_delay and parts.path.startswith("/library/"):
                    time.sleep(site.page_delay)
                route = site.routes.get(parts.path) or site.routes.get(self.path)
                if callable(route):
                    route(self)
                    return
                status, headers, body = route if route else site.answer(parts.path, parse_qs(parts.query))
                etag = headers.get("ETag")
                if etag and self.headers.get("If-None-Match") == etag and status == 200:
                    status, body = 304, b""
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return self.base + path

    def answer(self, path: str, query: dict[str, list[str]]) -> Response:
        if path == "/robots.txt":
            return 200, {"Content-Type": "text/plain"}, self.robots.encode()
        with self.lock:
            return self.respond(path, query)

    def respond(self, path: str, query: dict[str, list[str]]) -> Response:
        raise NotImplementedError

    def page(self, text: Text) -> Response:
        body = text.page.replace("{BASE}", self.base).encode("utf-8")
        return 200, {"Content-Type": "text/html; charset=utf-8", "ETag": '"' + hashlib.sha1(body).hexdigest() + '"',
                     "Last-Modified": format_datetime(datetime.fromtimestamp(text.mtime, timezone.utc), usegmt=True)
                     }, body

    def paths_requested(self) -> list[str]:
        with self.lock:
            return [path for _, path in self.requests]

    def clear_log(self) -> None:
        with self.lock:
            self.requests.clear()

    # -- changes between syncs ------------------------------------------------
    def edit(self, slug: str, words: str) -> None:
        with self.lock:
            text = self.texts[slug]
            marker = '<div id="thework" dir="ltr">' if 'id="thework"' in text.page else '<div class="entry-content">'
            text.page = text.page.replace(marker, f"{marker}\n<p>{html.escape(words)}</p>", 1)
            text.mtime += 1000

    def remove(self, slug: str) -> None:
        with self.lock:
            del self.texts[slug]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _xml(body: str) -> Response:
    return 200, {"Content-Type": "application/xml; charset=utf-8"}, body.encode("utf-8")


def _text(body: str) -> Response:
    return 200, {"Content-Type": "text/plain; charset=utf-8"}, body.encode("utf-8")


NOT_FOUND: Response = (404, {"Content-Type": "text/html"}, b"<html><body><p>Not found</p></body></html>")


def rss(base: str, items: list[tuple[str, str, int]]) -> str:
    entries = "".join(
        f"<item><title>{html.escape(title)}</title><link>{base}{path}</link>"
        f"<pubDate>{format_datetime(datetime.fromtimestamp(t, timezone.utc), usegmt=True)}</pubDate></item>"
        for path, title, t in items)
    return (f'<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>site</title>'
            f"<link>{base}/</link><description>d</description>{entries}</channel></rss>")


def urlset(base: str, items: list[tuple[str, int]]) -> str:
    entries = "".join(f"<url><loc>{base}{path}</loc><lastmod>{_w3c(t)}</lastmod></url>" for path, t in items)
    return (f'<?xml version="1.0" encoding="UTF-8"?>'
            f'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{entries}</urlset>')


def _w3c(t: int) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S+00:00")


# -- amusewiki -------------------------------------------------------------------------------------

AMUSEWIKI_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title} | Loopback Library</title>
<meta name="generator" content="AMuseWiki - https://amusewiki.org" /></head>
<body><div id="wrap"><div id="page">
<div id="preamble-container" class="well"><div id="preamble">
<div id="texttitle"><span id="texttitle-label"><strong>Title:</strong></span> {title}</div>
<div id="authors"><span id="authors-label"><strong>Author:</strong></span> {author}</div>
<div id="textdate"><span id="textdate-label"><strong>Date:</strong></span> 2024-0{month}-1{day}</div>
</div></div>
<div id="downloadformats"><div id="downloadformats-list">
<a href="{{BASE}}/library/{slug}.pdf">PDF</a> <a href="{{BASE}}/library/{slug}.epub">EPUB</a></div></div>
<div id="htmltextbody"><div id="thework" dir="ltr">
{paragraphs}
</div></div></div></div></body></html>
"""


class AmusewikiSite(SiteServer):
    def add_text(self, slug: str, title: str, page: str, muse: str, mtime: int | None = None) -> None:
        path = f"{slug[0]}/{slug[:2]}/{slug}.muse"
        with self.lock:
            self.texts[slug] = Text(slug, title, page, mtime or BASE_TIME + len(self.texts), muse, path)

    def add_synthetic(self, slug: str, words: str = "", mtime: int | None = None) -> None:
        n = len(self.texts)
        title = f"Essay {slug}"
        paragraphs = "\n".join(
            f"<p>Paragraph {i} of {html.escape(slug)}: mutual aid, federation and the long work of "
            f"keeping libraries open for everyone who wants to read. {html.escape(words)}</p>"
            for i in range(1, 9))
        page = AMUSEWIKI_PAGE.format(title=html.escape(title), author="A. Writer", month=1 + n % 9,
                                     day=n % 10, slug=slug, paragraphs=paragraphs)
        self.add_text(slug, title, page, f"#title {title}\n#author A. Writer\n\nParagraph 1 of {slug}.\n", mtime)

    @classmethod
    def synthetic(cls, count: int) -> "AmusewikiSite":
        site = cls()
        for i in range(count):
            site.add_synthetic(f"a-writer-essay-{i:05d}")
        return site

    @classmethod
    def from_renderings(cls, folder: Path, limit: int | None = None) -> "AmusewikiSite":
        """The real renderings under ``folder`` (``../shared/realpages/amusewiki``)."""
        site = cls()
        for case in sorted(p for p in folder.iterdir() if (p / "page.html.gz").is_file())[:limit]:
            expected = json.loads((case / "expected.json").read_text(encoding="utf-8"))
            url = expected.get("url") or f"https://example.org/library/{case.name}"
            slug = urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1].lower() or case.name
            while slug in site.texts:
                slug += "-2"
            origin = "{0.scheme}://{0.netloc}".format(urlsplit(url))
            page = gzip.decompress((case / "page.html.gz").read_bytes()).decode("utf-8")
            page = page.replace(origin + "/library/" + urlsplit(url).path.rsplit("/", 1)[-1],
                                "{BASE}/library/" + slug).replace(origin, "{BASE}")
            body = (case / "expected.txt").read_text(encoding="utf-8").split("\n\n", 1)[-1]
            muse = "".join(f"#{key} {expected[key]}\n" for key in ("title", "subtitle", "author", "date", "source")
                           if expected.get(key))
            muse += "\n" + "\n\n".join(body.split("\n\n")[:2]) + "\n"
            site.add_text(slug, expected.get("title") or slug, page, muse)
        return site

    def respond(self, path: str, query: dict[str, list[str]]) -> Response:
        texts = sorted(self.texts.values(), key=lambda t: t.path)
        if path == "/":
            return 200, {"Content-Type": "text/html; charset=utf-8"}, (
                f'<html><head><link rel="alternate" type="application/rss+xml" href="{self.base}/feed">'
                "</head><body><p>Loopback Library</p></body></html>").encode()
        if path == "/mirror.ts.txt":
            return _text("".join(f"{t.path}#{t.mtime}\n" for t in texts) + "specials/index.muse#1700000000\n")
        if path == "/mirror.txt":
            return _text("".join(f"{self.base}/mirror/{t.path}\n" for t in texts))
        if path == "/sitemap.txt":
            return _text("".join(f"{self.base}/library/{t.slug}\n" for t in texts))
        if path == "/feed":
            recent = sorted(texts, key=lambda t: -t.mtime)[:20]
            return _xml(rss(self.base, [(f"/library/{t.slug}", t.title, t.mtime) for t in recent]))
        if path == "/oai-pmh":
            return self._oai(texts, query)
        if path.startswith("/mirror/"):
            text = next((t for t in texts if t.path == path[len("/mirror/"):]), None)
            return _text(text.muse) if text else NOT_FOUND
        if path.startswith("/library/"):
            name = path[len("/library/"):]
            slug, dot, kind = name.partition(".")
            text = self.texts.get(slug)
            if text is None:
                return NOT_FOUND
            if not dot:
                return self.page(text)
            if kind == "muse":
                return _text(text.muse)
            return 200, {"Content-Type": "application/octet-stream"}, f"{kind} of {slug}".encode()
        return NOT_FOUND

    def _oai(self, texts: list[Text], query: dict[str, list[str]]) -> Response:
        verb = query.get("verb", [""])[0]
        token = query.get("resumptionToken", [""])[0]
        start = int(token) if token.isdigit() else 0
        since = query.get("from", [""])[0]
        chosen = [t for t in texts if not since or _w3c(t.mtime)[:10] >= since]
        page = chosen[start:start + OAI_PAGE]
        more = start + OAI_PAGE < len(chosen)
        records = []
        for t in page:
            header = (f"<header><identifier>oai:127.0.0.1:/library/{t.slug}</identifier>"
                      f"<datestamp>{_w3c(t.mtime)[:19]}Z</datestamp></header>")
            if verb == "ListIdentifiers":
                records.append(header)
            else:
                records.append(f"<record>{header}<metadata><oai_dc:dc xmlns:oai_dc="
                               f'"http://www.openarchives.org/OAI/2.0/oai_dc/" xmlns:dc="http://purl.org/dc/elements/1.1/">'
                               f"<dc:title>{html.escape(t.title)}</dc:title>"
                               f"<dc:identifier>{self.base}/library/{t.slug}</dc:identifier>"
                               f"</oai_dc:dc></metadata></record>")
        resumption = f"<resumptionToken>{start + OAI_PAGE}</resumptionToken>" if more else (
            "<resumptionToken/>" if start else "")
        inner = (f"<{verb}>{''.join(records)}{resumption}</{verb}>" if chosen
                 else '<error code="noRecordsMatch">none</error>')
        return _xml('<?xml version="1.0" encoding="UTF-8"?><OAI-PMH xmlns="http://www.openarchives.org/OAI/2.0/">'
                    f"<responseDate>2026-11-30T00:00:00Z</responseDate><request>{self.base}/oai-pmh</request>"
                    f"{inner}</OAI-PMH>")


# -- WordPress and Drupal --------------------------------------------------------------------------

POST_PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{title} – {site}</title>
<link rel="alternate" type="application/rss+xml" href="{{BASE}}{feed}"></head>
<body class="post-template-default single"><header><nav><a href="/">Home</a></nav></header>
<main><article class="post type-post"><h1 class="entry-title">{title}</h1>
<div class="entry-meta"><span class="author">Sam Printer</span></div>
<div class="entry-content">
{paragraphs}
</div></article></main><footer><p>Powered by a loopback</p></footer></body></html>
"""


class _BlogSite(SiteServer):
    name = "blog"
    feed = "/feed/"

    def add_post(self, slug: str, path: str, words: str = "", mtime: int | None = None) -> None:
        title = f"Notes from the {slug.replace('-', ' ')}"
        paragraphs = "\n".join(
            f"<p>{i}. The zine distro at {html.escape(slug)} keeps its shelves open on Sundays, and every "
            f"pamphlet is free to copy and pass on. {html.escape(words)}</p>" for i in range(1, 7))
        with self.lock:
            self.texts[slug] = Text(slug, title, POST_PAGE.format(title=title, site=self.name, feed=self.feed,
                                                                  paragraphs=paragraphs),
                                    mtime or BASE_TIME + 100 * len(self.texts), path=path)

    def home(self) -> Response:
        return 200, {"Content-Type": "text/html; charset=utf-8"}, (
            f'<html><head><link rel="alternate" type="application/rss+xml" href="{self.base}{self.feed}">'
            f"</head><body><p>{self.name}</p></body></html>").encode()

    def by_path(self, path: str) -> Text | None:
        return next((t for t in self.texts.values() if t.path == path), None)

    def items(self) -> list[Text]:
        return sorted(self.texts.values(), key=lambda t: t.path)


class WordPressSite(_BlogSite):
    name = "Zine Distro"
    feed = "/feed/"

    def __init__(self, posts: int = 6) -> None:
        super().__init__()
        self.robots = f"User-agent: *\nDisallow: /wp-admin/\nSitemap: {self.base}/wp-sitemap.xml\n"
        for i in range(posts):
            slug = f"post-{i}"
            self.add_post(slug, f"/2025/0{1 + i % 9}/1{i % 10}/{slug}/")

    def respond(self, path: str, query: dict[str, list[str]]) -> Response:
        posts = [t for t in self.items() if not t.slug.startswith("page-")]
        pages = [t for t in self.items() if t.slug.startswith("page-")]
        if path == "/":
            return self.home()
        if path == "/wp-sitemap.xml":
            subs = "".join(f"<sitemap><loc>{self.base}/wp-sitemap-{kind}-1.xml</loc></sitemap>"
                           for kind in ("posts-post", "posts-page"))
            return _xml('<?xml version="1.0" encoding="UTF-8"?>'
                        f'<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{subs}</sitemapindex>')
        if path == "/wp-sitemap-posts-post-1.xml":
            return _xml(urlset(self.base, [(t.path, t.mtime) for t in posts]))
        if path == "/wp-sitemap-posts-page-1.xml":
            return _xml(urlset(self.base, [(t.path, t.mtime) for t in pages]))
        if path == "/feed/":
            return 200, {"Content-Type": "application/rss+xml; charset=UTF-8"}, rss(
                self.base, [(t.path, t.title, t.mtime) for t in posts]).encode()
        text = self.by_path(path)
        return self.page(text) if text else NOT_FOUND


class DrupalSite(_BlogSite):
    name = "Drupal Library"
    feed = "/rss.xml"

    def __init__(self, nodes: int = 5) -> None:
        super().__init__()
        for i in range(nodes):
            self.add_post(f"node-{i + 1}", f"/node/{i + 1}")

    def respond(self, path: str, query: dict[str, list[str]]) -> Response:
        if path == "/":
            return self.home()
        if path == "/sitemap.xml":
            return _xml(urlset(self.base, [(t.path, t.mtime) for t in self.items()]))
        if path == "/rss.xml":
            return 200, {"Content-Type": "application/rss+xml; charset=utf-8"}, rss(
                self.base, [(t.path, t.title, t.mtime) for t in self.items()]).encode()
        text = self.by_path(path)
        return self.page(text) if text else NOT_FOUND
