"""The catalogue's query language and queries: what a user types becomes an
FTS5 query; search ranks with bm25 and cuts a snippet; history merges bags and
re-checks. Functions take an open connection to a catalogue (see
``archiver.collection.catalog``, which owns the schema) and return values.
"""

from __future__ import annotations

import sqlite3
from dataclasses import asdict, dataclass
from typing import Any

from archiver.errors import UsageError

SNIPPET_OPEN, SNIPPET_CLOSE = "**", "**"  # markdown bold around matched words
RANK_AT_MOST = 5000  # matches; see search_hits


@dataclass(frozen=True)
class SearchHit:
    name: str
    title: str | None
    author: str | None
    url: str | None
    retrieved: str | None
    score: float | None  # bm25, lower is better; None: one of too many matches to rank
    snippet: str
    date_iso: str | None = None  # the text's date as an ISO 8601 date, when known

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class HistoryEntry:
    """One look at a source: a ``capture`` (a bag), a ``rebuilt`` bag (text
    re-derived offline from an earlier capture; ``time`` is that capture's), or
    an ``unchanged`` re-check (an event; ``bag`` is the bag whose text it matched),
    or a sync's ``gone``/``unlisted`` finding (``reason`` says what the URL answered)."""

    kind: str
    time: str
    bag: str | None
    url: str
    final_url: str | None
    text_sha256: str | None
    reason: str | None = None
    event_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def fts_query(text: str) -> str:
    """Turn what a user types into an FTS5 query where plain words just work.

    Every word is quoted (so ``it's``, ``C++`` or ``don't-stop`` are searched
    for as written); ``"a phrase"`` stays a phrase; ``word*`` is a prefix
    search; bare ``AND``, ``OR``, ``NOT`` and parentheses stay operators.
    All words must match unless joined with OR. UsageError for an unclosed quote
    or an empty query.
    """
    parts: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch in "()":
            parts.append(ch)
            i += 1
        elif ch == '"':
            end = text.find('"', i + 1)
            if end < 0:
                raise UsageError(f"search query {text!r} has an unclosed double quote")
            phrase = text[i + 1:end]
            i = end + 1
            prefix = i < n and text[i] == "*"
            i += prefix
            if phrase.strip():
                parts.append('"' + phrase + '"' + (" *" if prefix else ""))
        else:
            start = i
            while i < n and not text[i].isspace() and text[i] not in '()"':
                i += 1
            word = text[start:i]
            if word in ("AND", "OR", "NOT"):
                parts.append(word)
            elif word.endswith("*") and word.strip("*"):
                parts.append('"' + word.rstrip("*") + '" *')
            elif word.strip("*"):
                parts.append('"' + word + '"')
    if not any(p not in ("AND", "OR", "NOT", "(", ")") for p in parts):
        raise UsageError(f"search query {text!r} has no words to search for")
    return " ".join(parts)


_HIT_COLUMNS = ("SELECT b.name, b.title, b.author, b.url, b.retrieved, {score}, "
                f"snippet(bag_text, -1, '{SNIPPET_OPEN}', '{SNIPPET_CLOSE}', ' … ', 16), b.date_iso "
                "FROM bag_text f JOIN bags b ON b.id = f.rowid WHERE bag_text MATCH ? ")


def search_hits(conn: sqlite3.Connection, match: str, limit: int,
                rank_at_most: int = RANK_AT_MOST) -> list[SearchHit]:
    """The best ``limit`` hits of the FTS5 query ``match``.

    Ranking is bm25 (title 10, author 5, text 1) and costs a few microseconds
    a match, so when more than ``rank_at_most`` texts match (a word in most of
    a large collection, whose bm25 weight is ~0 anyway) the hits are those with
    the words in their title or author, ranked, then the most recently
    catalogued; these have ``score`` None.
    """
    return [SearchHit(name=r[0], title=r[1], author=r[2], url=r[3], retrieved=r[4],
                      score=r[5], snippet=r[6] or "", date_iso=r[7])
            for r in _search_rows(conn, match, limit, rank_at_most)]


def _search_rows(conn: sqlite3.Connection, match: str, limit: int, rank_at_most: int) -> list[tuple]:
    many = conn.execute("SELECT rowid FROM bag_text WHERE bag_text MATCH ? LIMIT 1 OFFSET ?",
                        (match, rank_at_most)).fetchone() is not None
    if not many:
        sql = _HIT_COLUMNS.format(score="f.rank") + "ORDER BY f.rank LIMIT ?"
        return conn.execute(sql, (match, limit)).fetchall()
    in_title = conn.execute("SELECT rowid FROM bag_text WHERE bag_text MATCH ? ORDER BY rank LIMIT ?",
                            (f"{{title author}} : ({match})", limit)).fetchall()
    one = _HIT_COLUMNS.format(score="f.rank") + "AND f.rowid = ?"
    hits = [row for (rowid,) in in_title if (row := conn.execute(one, (match, rowid)).fetchone())]
    shown = {row[0] for row in hits}
    recent = _HIT_COLUMNS.format(score="NULL") + "ORDER BY f.rowid DESC LIMIT ?"
    for row in conn.execute(recent, (match, limit)):
        if len(hits) >= limit:
            break
        if row[0] not in shown:
            hits.append(row)
    return hits


def history_entries(conn: sqlite3.Connection, url: str) -> list[HistoryEntry]:
    """Every bag and unchanged re-check of ``url`` (as given or as finally
    redirected to), and every gone/unlisted finding of ``sync``, oldest first;
    at equal times a capture comes first."""
    sql = (
        "SELECT * FROM ("
        "SELECT iif(b.derived_from IS NULL, 'capture', 'rebuilt') AS kind, b.retrieved AS time, b.name, "
        "b.url, b.final_url, b.text_sha256, "
        "iif(b.derived_from IS NULL, NULL, 'derived from ' || b.derived_from), NULL, "
        "(SELECT min(e.seq) FROM capture_events e WHERE e.bag = b.name AND e.outcome = 'success') AS seq "
        "FROM bags b WHERE b.url = ?1 OR b.final_url = ?1 "
        "UNION ALL "
        "SELECT outcome, time, bag, url, final_url, text_sha256, reason, event_id, seq "
        "FROM capture_events WHERE outcome IN ('unchanged', 'gone', 'unlisted') AND (url = ?1 OR final_url = ?1)) "
        # Times have whole seconds; within one, the event log's order tells (a bag
        # without a capture event first).
        "ORDER BY time, coalesce(seq, -1), kind")
    return [HistoryEntry(kind=r[0], time=r[1] or "", bag=r[2], url=r[3] or url, final_url=r[4],
                         text_sha256=r[5], reason=r[6], event_id=r[7]) for r in conn.execute(sql, (url,))]
