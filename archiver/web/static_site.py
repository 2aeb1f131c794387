"""``archiver site OUT``: the collection's pages as a static site.

The site works from ``file://`` (every link is relative) and can be copied or
mirrored beside the collection, so a partner can browse what it received with
nothing but a browser. Layout of OUT::

    index.html                 home
    browse/index.html, browse/page-N.html
    search.html                search with a small script over static/search-index.js;
                               with scripts off it points to the listing
    bags/NAME.html, bags/NAME.txt     a bag's page and its canonical text
    sources/KEY.html           a source's timeline (KEY: sha256 of its URL, 20 hex)
    diff/NEW.html              the capture NEW compared with the one before it
    static/                    style sheets and the search script
    .archiver-site.json        what was written, to make re-runs incremental

The "as captured" view is not part of the site: archived HTML is shown only by
``archiver serve``, whose response headers disarm it.

Incremental: a bag is immutable, so its page is rendered again only when what
the page shows from the event log (fixity checks, mirror copies) changed, or
the site was written by another version or other templates; any page is written only when its
bytes differ from the file already there, by a temporary file renamed into
place. Files of bags no longer in the collection are removed.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable

from archiver import __version__
from archiver.errors import ArchiverError, StorageError
from archiver.web import views
from archiver.web.collection import CollectionReader
from archiver.web.render import STATIC, TEMPLATES, SiteLinks, make_environment, source_key

STATE_FILE = ".archiver-site.json"
SITE_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            "form-action 'self'; base-uri 'none'")
BROWSE_PER_PAGE = 100
INDEX_WORDS = 60  # opening words of each text put in the search index


@dataclass
class SiteReport:
    out: Path
    pages: int = 0
    written: int = 0
    written_files: list[str] = field(default_factory=list)
    unchanged: int = 0
    removed: int = 0
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"out": str(self.out), "pages": self.pages, "written": self.written,
                "unchanged": self.unchanged, "removed": self.removed, "problems": self.problems,
                "written_files": self.written_files}


class SiteWriter:
    """Writes files under ``out`` only when their bytes changed, atomically."""

    def __init__(self, out: Path, report: SiteReport) -> None:
        self.out = out
        self.report = report
        try:
            state = json.loads((out / STATE_FILE).read_text("utf-8"))
        except (OSError, ValueError):
            state = {}
        self.version = site_version()
        same_version = isinstance(state, dict) and state.get("version") == self.version
        self.old_files: dict[str, str] = state.get("files", {}) if same_version else {}
        self.old_keys: dict[str, str] = state.get("keys", {}) if same_version else {}
        self.files: dict[str, str] = {}
        self.keys: dict[str, str] = {}

    def fresh(self, rel: str, key: str) -> bool:
        """Whether ``rel`` was written from the same ``key`` and is still there;
        then it is kept without being rendered again."""
        if self.old_keys.get(rel) == key and rel in self.old_files and (self.out / rel).is_file():
            self.files[rel], self.keys[rel] = self.old_files[rel], key
            self.report.pages += rel.endswith(".html")
            self.report.unchanged += 1
            return True
        return False

    def write(self, rel: str, content: bytes | str, key: str | None = None) -> None:
        data = content.encode("utf-8") if isinstance(content, str) else content
        digest = hashlib.sha256(data).hexdigest()
        self.files[rel] = digest
        if key is not None:
            self.keys[rel] = key
        self.report.pages += rel.endswith(".html")
        path = self.out / rel
        if self.old_files.get(rel) == digest and path.is_file() or self._same_file(path, digest):
            self.report.unchanged += 1
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except OSError as exc:
            raise StorageError(f"cannot write {path}: {exc.strerror}") from exc
        self.report.written += 1
        self.report.written_files.append(rel)

    @staticmethod
    def _same_file(path: Path, digest: str) -> bool:
        try:
            return hashlib.sha256(path.read_bytes()).hexdigest() == digest
        except OSError:
            return False

    def finish(self) -> None:
        for rel in sorted(set(self.old_files) - set(self.files)):
            target = self.out / rel
            if target.is_file() and not target.is_symlink():
                target.unlink()
                self.report.removed += 1
        state = {"version": self.version, "files": self.files, "keys": self.keys}
        self.write(STATE_FILE, json.dumps(state, sort_keys=True, indent=0))


def site_version() -> str:
    """archiver's version and a digest of the templates and static files: pages
    kept from an earlier run are kept only if they were made the same way."""
    digest = hashlib.sha256()
    for path in sorted([*TEMPLATES.glob("*.html"), *STATIC.glob("*")]):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return f"{__version__}+{digest.hexdigest()[:16]}"


def build_site(root: Path, out: Path, audit_window: timedelta = timedelta(days=90),
               on_progress: Callable[..., None] | None = None) -> SiteReport:
    """Write (or bring up to date) the static site of the collection at ``root`` in ``out``."""
    root, out = Path(root), Path(out)
    if out.resolve() == root.resolve() or root.resolve() in out.resolve().parents:
        raise StorageError(f"write the site outside the collection, not into {out}")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"cannot create {out}: {exc.strerror}") from exc
    report = SiteReport(out)
    reader = CollectionReader(root, audit_window)
    env = make_environment()
    writer = SiteWriter(out, report)

    def render(rel: str, template: str, document: dict[str, Any], section: str, **extra: Any) -> None:
        links = SiteLinks(rel.count("/"))
        html = env.get_template(template).render(d=document, links=links, section=section, json_link=None,
                                                 root_label=root.name, site_csp=SITE_CSP, **extra)
        writer.write(rel, html)

    try:
        for name in ("style.css", "print.css", "search.js"):
            writer.write(f"static/{name}", (STATIC / name).read_bytes())
        render("index.html", "home.html", views.home(reader), "home")
        first = views.browse(reader, page=1, per_page=BROWSE_PER_PAGE)
        for number in range(1, first["pages"] + 1):
            document = first if number == 1 else views.browse(reader, page=number, per_page=BROWSE_PER_PAGE)
            render("browse/index.html" if number == 1 else f"browse/page-{number}.html", "browse.html",
                   document, "browse")
        render("search.html", "search.html", {"query": "", "results": []}, "search")
        names = [row["name"] for row in reader.query("SELECT name FROM bags ORDER BY name")]
        urls = [row[0] for row in reader.query("SELECT DISTINCT url FROM bags WHERE url IS NOT NULL ORDER BY url")]
        total, done = len(names) + len(urls), 0
        index: list[list[str]] = []
        for name in names:
            _bag_pages(reader, writer, render, name, index, report)
            done += 1
            if on_progress and done % 100 == 0:
                on_progress(done, total, "pages")
        for url in urls:
            _source_pages(reader, writer, render, url, report)
            done += 1
            if on_progress and done % 100 == 0:
                on_progress(done, total, "pages")
        writer.write("static/search-index.js",
                     "window.ARCHIVER_INDEX = " + json.dumps(index, ensure_ascii=True).replace("<", "\\u003c") + ";\n")
        writer.finish()
    finally:
        reader.close()
    if on_progress:
        on_progress(total, total, "pages")
    return report


def _bag_key(reader: CollectionReader, name: str, url: str | None) -> str:
    """What a bag page shows that can change: its fixity state, checks and mirror
    copies, and how many captures its source has."""
    events = reader.events
    parts = [reader.health([name])[name], len(events.fixity.get(name, [])), len(events.replication.get(name, [])),
             len(reader.captures_of(url)) if url else 0]
    return json.dumps(parts)


def _bag_pages(reader: CollectionReader, writer: SiteWriter, render: Callable[..., None], name: str,
               index: list[list[str]], report: SiteReport) -> None:
    record = reader.find(name)
    entry = [name, record.title or "", record.author or "", record.url or "", record.retrieved or ""]
    rel = f"bags/{name}.html"
    key = _bag_key(reader, name, record.url)
    state_key = f"index:{name}"
    if writer.fresh(rel, key) and writer.fresh(f"bags/{name}.txt", key) and state_key in writer.old_keys:
        index.append(json.loads(writer.old_keys[state_key]))
        writer.keys[state_key] = writer.old_keys[state_key]
        return
    try:
        document = views.bag(reader, name)
    except ArchiverError as exc:
        report.problems.append(f"bag {name}: {exc}")
        return
    if document["error"]:
        report.problems.append(f"bag {name}: {document['error']}")
    render(rel, "bag.html", document, "browse")
    writer.keys[rel] = key
    writer.write(f"bags/{name}.txt", document["text"], key)
    entry.append(" ".join(" ".join(document["reading"]["paragraphs"]).split()[:INDEX_WORDS]))
    writer.keys[state_key] = json.dumps(entry)
    index.append(entry)


def _source_pages(reader: CollectionReader, writer: SiteWriter, render: Callable[..., None], url: str,
                  report: SiteReport) -> None:
    try:
        document = views.timeline(reader, url)
    except ArchiverError as exc:
        report.problems.append(f"source {url}: {exc}")
        return
    render(f"sources/{source_key(url)}.html", "timeline.html", document, "browse")
    for row in document["events"]:
        if row.get("previous") and row.get("bag"):
            rel = f"diff/{row['bag']}.html"
            if writer.fresh(rel, row["previous"]):
                continue
            try:
                compared = views.diff(reader, row["previous"], row["bag"])
            except ArchiverError as exc:
                report.problems.append(f"diff {row['previous']} → {row['bag']}: {exc}")
                continue
            render(rel, "diff.html", compared, "browse", layout="side")
            writer.keys[rel] = row["previous"]


__all__ = ["SiteReport", "build_site"]
