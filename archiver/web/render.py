"""Templates (jinja2, autoescaping always on) and the links between pages.

Templates never build a URL themselves: they ask ``links`` (a ``ServerLinks``
for ``archiver serve``, a ``SiteLinks`` for the static site, whose links are
relative so the site works from ``file://`` wherever it is copied).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape

from archiver import __version__

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"


def human_size(value: Any) -> str:
    if not isinstance(value, int) or value < 0:
        return "–"
    size = float(value)
    for unit in ("bytes", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{int(size)} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return str(value)


def day(value: Any) -> str:
    return str(value)[:10] if value else "–"


def when(value: Any) -> str:
    """``2026-11-25T09:30:00Z`` as ``2026-11-25 09:30 UTC``."""
    text = str(value or "")
    return f"{text[:10]} {text[11:16]} UTC" if len(text) >= 16 and text[10] == "T" else (text or "–")


def make_environment() -> Environment:
    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(default=True),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters.update(size=human_size, day=day, when=when)
    env.globals.update(version=__version__)
    return env


def source_key(url: str) -> str:
    return hashlib.sha256(url.encode("utf-8")).hexdigest()[:20]


class ServerLinks:
    """Links of ``archiver serve``: absolute paths on the one server."""

    static_site = False

    def static(self, file: str) -> str:
        return f"/static/{file}"

    def home(self) -> str:
        return "/"

    def browse(self, page: int = 1, **filters: Any) -> str:
        params = {k: v for k, v in filters.items() if v}
        if page > 1:
            params["page"] = page
        return "/browse" + (f"?{urlencode(params)}" if params else "")

    def search(self, query: str = "", page: int = 1) -> str:
        params: dict[str, Any] = {"q": query} if query else {}
        if page > 1:
            params["page"] = page
        return "/search" + (f"?{urlencode(params)}" if params else "")

    def bag(self, name: str) -> str:
        return f"/bag/{quote(name)}"

    def text(self, name: str) -> str:
        return f"/bag/{quote(name)}/text.txt"

    def tar(self, name: str) -> str | None:
        return f"/bag/{quote(name)}/bag.tar"

    def file(self, name: str, path: str) -> str | None:
        return f"/bag/{quote(name)}/files/{quote(path)}"

    def timeline(self, url: str) -> str:
        return "/source?" + urlencode({"url": url})

    def diff(self, old: str, new: str) -> str | None:
        return f"/diff/{quote(old)}/{quote(new)}"

    def captured(self, name: str) -> str | None:
        return f"/bag/{quote(name)}/captured"

    def captured_page(self, name: str) -> str:
        return f"/bag/{quote(name)}/captured/page"


class SiteLinks:
    """Links of the static site, relative to a page ``depth`` folders down."""

    static_site = True

    def __init__(self, depth: int = 0) -> None:
        self.prefix = "../" * depth

    def static(self, file: str) -> str:
        return f"{self.prefix}static/{file}"

    def home(self) -> str:
        return f"{self.prefix}index.html"

    def browse(self, page: int = 1, **filters: Any) -> str:
        return f"{self.prefix}browse/{'index' if page <= 1 else f'page-{page}'}.html"

    def search(self, query: str = "", page: int = 1) -> str:
        return f"{self.prefix}search.html"

    def bag(self, name: str) -> str:
        return f"{self.prefix}bags/{quote(name)}.html"

    def text(self, name: str) -> str:
        return f"{self.prefix}bags/{quote(name)}.txt"

    def tar(self, name: str) -> str | None:
        return None  # the static site carries texts, not whole bags

    def file(self, name: str, path: str) -> str | None:
        return None  # the static site carries texts, not whole bags

    def timeline(self, url: str) -> str:
        return f"{self.prefix}sources/{source_key(url)}.html"

    def diff(self, old: str, new: str) -> str | None:
        return f"{self.prefix}diff/{quote(new)}.html"  # the site has diffs of consecutive captures

    def captured(self, name: str) -> str | None:
        return None  # archived HTML is served only by `archiver serve`, with its CSP headers
