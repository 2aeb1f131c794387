"""One function per page: read the collection, return a plain dict.

The dict is the page's JSON twin (``?format=json`` or ``/api/…``) and what
its template renders. Where the CLI has the same verb, the JSON carries the
same fields as its ``--json`` (``list``: ``root``/``bags``; ``show``: the
record and ``path``; ``search``: ``query``/``results``; ``history``:
``url``/``history``), with the page's extras beside them.
"""

from __future__ import annotations

import re
from typing import Any

from archiver.collection.catalog import BagRecord, NotInCatalog
from archiver.collection.query import SNIPPET_CLOSE, SNIPPET_OPEN
from archiver.errors import ArchiverError, UsageError
from archiver.web.captured import archived_page, page_lang
from archiver.web.collection import BagUnavailable, CollectionReader, parse_day
from archiver.web.diff import diff_texts, unified

PER_PAGE = 50
SEARCH_PER_PAGE = 20
MAX_PAGE = 100_000
HEADER_LINE = re.compile(r"^(Title|Subtitle|Author|Date|Source): (.*)$")


def page_number(value: str | None) -> int:
    if not value:
        return 1
    if not value.isdigit() or not 1 <= int(value) <= MAX_PAGE:
        raise UsageError(f"page {value!r} is not a page number")
    return int(value)


def home(reader: CollectionReader, latest: int = 10) -> dict[str, Any]:
    attention = reader.attention(limit=10)
    return {
        "root": str(reader.root),
        "counts": reader.counts(),
        "latest": [r.to_dict() for r in reader.latest(latest)],
        "attention": {**attention, "due": [r.to_dict() for r in attention["due"]]},
        "mirrors": reader.mirrors(),
    }


def browse(reader: CollectionReader, site: str = "", author: str = "", since: str = "", until: str = "",
           status: str = "", page: int = 1, per_page: int = PER_PAGE) -> dict[str, Any]:
    filters = {"site": site.strip(), "author": author.strip(), "since": parse_day(since),
               "until": parse_day(until), "status": status.strip()}
    total, rows = reader.browse(**filters, offset=(page - 1) * per_page, limit=per_page)
    states = reader.health([row["latest"].name for row in rows])
    gone = reader.events.gone
    sources = [{"url": row["latest"].url, "bags": row["bags"], "latest": row["latest"].to_dict(),
                "fixity": states.get(row["latest"].name), "gone": bool(gone.get(row["latest"].url or ""))}
               for row in rows]
    return {"root": str(reader.root), "filters": filters, "page": page, "per_page": per_page,
            "total": total, "pages": max(1, -(-total // per_page)), "sources": sources,
            "bags": [s["latest"] for s in sources]}


def snippet_parts(snippet: str) -> list[tuple[str, bool]]:
    """A search snippet as (text, matched) pieces, for safe highlighting."""
    pieces = snippet.split(SNIPPET_OPEN) if SNIPPET_OPEN == SNIPPET_CLOSE else [snippet]
    return [(re.sub(r"\s+", " ", piece), i % 2 == 1)
            for i, piece in enumerate(pieces) if piece]


def search(reader: CollectionReader, query: str, page: int = 1,
           per_page: int = SEARCH_PER_PAGE) -> dict[str, Any]:
    query = query.strip()
    document: dict[str, Any] = {"query": query, "results": [], "page": page, "per_page": per_page,
                                "more": False}
    if not query:
        return document
    hits = reader.search(query, limit=page * per_page + 1)
    shown = hits[(page - 1) * per_page: page * per_page]
    document["results"] = [h.to_dict() for h in shown]
    document["more"] = len(hits) > page * per_page
    return document


def timeline(reader: CollectionReader, url: str) -> dict[str, Any]:
    """Every capture, unchanged re-check and gone/unlisted event of a source,
    oldest first; each capture after the first links to a diff with the one before."""
    history = reader.history(url)
    reader.events.refresh()
    gone = reader.events.gone.get(url, [])
    if not history and not gone:
        raise NotInCatalog(f"{url!r} was never captured in this collection")
    rows: list[dict[str, Any]] = [{**e.to_dict(), "previous": None} for e in history]
    previous = None
    for row in rows:
        if row["kind"] in ("capture", "rebuilt") and row["bag"]:
            row["previous"] = previous
            previous = row["bag"]
    logged = {row["event_id"] for row in rows if row.get("event_id")}
    for event in gone:
        if event.get("id") in logged:
            continue  # a catalogue that knows sync's findings already lists it
        raw_detail = event.get("detail")
        detail: dict[str, Any] = raw_detail if isinstance(raw_detail, dict) else {}
        rows.append({"kind": str(event.get("type")), "time": event["time"], "bag": None, "url": url,
                     "final_url": None, "text_sha256": None, "reason": detail.get("reason"),
                     "event_id": event.get("id"), "previous": None})
    rows.sort(key=lambda r: r["time"])
    titles = {r.name: r.title for r in reader.captures_of(url)}
    return {"url": url, "history": [e.to_dict() for e in history], "events": rows,
            "title": next((t for t in reversed(list(titles.values())) if t), None)}


def reading_text(text: str) -> dict[str, Any]:
    """Canonical text split for reading: its header fields and its paragraphs."""
    head, _, body = text.partition("\n\n")
    fields = [m.groups() if m else None for m in map(HEADER_LINE.match, head.split("\n"))]
    if head and all(fields):
        return {"header": [{"label": f[0], "value": f[1]} for f in fields if f],
                "paragraphs": [p for p in body.split("\n\n") if p.strip()]}
    return {"header": [], "paragraphs": [p for p in text.split("\n\n") if p.strip()]}


def bag(reader: CollectionReader, name: str) -> dict[str, Any]:
    record = reader.find(name)
    document: dict[str, Any] = {**record.to_dict(), "path": str(reader.root / record.name)}
    reader.events.refresh()
    document["fixity"] = [_event_summary(e) for e in reader.events.fixity.get(name, [])]
    document["health"] = reader.health([name])[name]
    document["mirrors"] = [_event_summary(e) for e in reader.events.replication.get(name, [])]
    document["captures_of_source"] = [r.name for r in reader.captures_of(record.url or "")] if record.url else []
    try:
        text = reader.text(name)
        document["metadata"] = reader.metadata(name)
        document["bag_info"] = [{"label": k, "value": v} for k, v in reader.bag_info(name)]
        document["files"] = reader.files(name)
        document["error"] = None
    except BagUnavailable as exc:
        text = ""
        document.update(metadata={}, bag_info=[], files=[], error=str(exc))
    document["text"] = text
    document["reading"] = reading_text(text)
    lang = document["metadata"].get("lang") if isinstance(document["metadata"].get("lang"), str) else None
    if lang is None and document["error"] is None:
        lang = archived_lang(reader, name)
    document["lang"] = lang
    return document


_LANGS: dict[tuple[str, str], str | None] = {}


def archived_lang(reader: CollectionReader, name: str) -> str | None:
    """The ``lang`` of the bag's archived page, remembered (a bag never changes)."""
    key = (str(reader.root), name)
    if key not in _LANGS:
        try:
            _LANGS[key] = page_lang(archived_page(reader, name)[1])
        except ArchiverError:
            return None
        if len(_LANGS) > 100_000:
            _LANGS.clear()
    return _LANGS[key]


def _event_summary(event: dict[str, Any]) -> dict[str, Any]:
    detail = event.get("detail") if isinstance(event.get("detail"), dict) else {}
    return {"time": event.get("time"), "type": event.get("type"), "outcome": event.get("outcome"),
            "target": event.get("target"), "detail": detail}


def diff(reader: CollectionReader, old_name: str, new_name: str) -> dict[str, Any]:
    """Two bags' canonical texts compared (paragraphs, then words), and as a
    unified diff; the same document ``archiver diff --json`` prints."""
    old, new = reader.find(old_name), reader.find(new_name)
    old_text, new_text = reader.text(old_name), reader.text(new_name)
    return diff_document(old, new, old_text, new_text)


def diff_document(old: BagRecord, new: BagRecord, old_text: str, new_text: str) -> dict[str, Any]:
    compared = diff_texts(old_text, new_text)
    return {"old": old.to_dict(), "new": new.to_dict(), **compared.to_dict(),
            "unified": unified(old_text, new_text, f"{old.name}/data/text.txt", f"{new.name}/data/text.txt")}


def last_two(reader: CollectionReader, url: str) -> tuple[str, str]:
    """The names of the last two captures of ``url``; UsageError when it has fewer."""
    captures = [r.name for r in reader.captures_of(url)]
    if len(captures) < 2:
        raise NotInCatalog(f"{url!r} has {len(captures)} capture(s) in this collection; a diff needs two")
    return captures[-2], captures[-1]
