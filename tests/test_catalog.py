"""The catalogue: real SQLite files built from real bags and a real event log."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from archiver.bagit.write import write_bag
from archiver.collection.catalog import (
    SCHEMA_VERSION, NotInCatalog, catalog_add_bag, catalog_path, fts_query, open_catalog,
    read_bag_record, rebuild_catalog,
)
from archiver.cli import app
from archiver.errors import UsageError
from archiver.collection.events import Event, append_event

URL_A = "https://example.org/library/always-against-the-tanks"
URL_B = "https://example.org/library/mutual-aid"


def make_bag(root: Path, name: str, *, url: str, title: str, author: str | None, body: str,
             retrieved: str, derived_from: dict | None = None, date: str | None = None,
             date_iso: str | None = None) -> Path:
    """A bag as the snapshot pipeline writes it (with a stand-in WARC)."""
    header = f"Title: {title}\n" + (f"Author: {author}\n" if author else "")
    text = (header + "\n" + body + "\n").encode("utf-8")
    metadata = {
        "title": title, "subtitle": None, "author": author, "date": date, "source": None,
        "url": url, "final_url": url, "retrieved": retrieved, "http_status": 200,
        "content_type": "text/html", "charset": "utf-8", "charset_source": "header",
        "etag": None, "last_modified": None, "redirects": [], "extractor": "generic",
        "extractor_version": "1", "archiver_version": "0.1.0",
        "text_sha256": hashlib.sha256(text).hexdigest(), "body_sha256": None,
        "attachments": [], "derived_from": derived_from,
    }
    if date_iso is not None:  # bags written before date_iso existed have no such key
        metadata["date_iso"] = date_iso
    payload = {"text.txt": text, "metadata.json": json.dumps(metadata).encode(),
               "capture.warc.gz": b"not a real warc"}
    info = [("External-Identifier", url), ("External-Description", title), ("Source-URL", url),
            ("Retrieval-Date", retrieved)]
    return write_bag(root, name, payload, info)


@pytest.fixture
def collection(tmp_path: Path) -> Path:
    return three_captures(tmp_path / "bags")


def three_captures(root: Path) -> Path:
    """Three captures of two URLs, the first capture's event and two re-checks."""
    root.mkdir(parents=True)
    make_bag(root, "tanks-20261101T100000Z", url=URL_A, title="Always Against The Tanks",
             author="Various Authors", retrieved="2026-11-01T10:00:00Z",
             body="Red nationalism is a contradiction. It's a tank with a flag.")
    make_bag(root, "mutual-aid-20261102T100000Z", url=URL_B, title="Mutual Aid",
             author="Peter Kropotkin", retrieved="2026-11-02T10:00:00Z",
             body="Mutual aid is a factor of evolution among animals and among men. Tanks are not.")
    make_bag(root, "tanks-20261120T100000Z", url=URL_A, title="Always Against The Tanks",
             author="Various Authors", retrieved="2026-11-20T10:00:00Z",
             body="Red nationalism is a contradiction, second edition, with a new preface.")
    append_event(root, Event("capture", "success", bag="tanks-20261101T100000Z",
                             detail={"url": URL_A}, time="2026-11-01T10:00:00Z"))
    append_event(root, Event("capture", "unchanged", bag="tanks-20261101T100000Z",
                             detail={"url": URL_A, "final_url": URL_A, "reason": "not-modified"},
                             time="2026-11-10T10:00:00Z"))
    append_event(root, Event("capture", "unchanged", bag="mutual-aid-20261102T100000Z",
                             detail={"url": URL_B, "reason": "same-text"}, time="2026-11-11T10:00:00Z"))
    return root


def search_names(root: Path, query: str) -> list[str]:
    with open_catalog(root) as catalog:
        return [hit.name for hit in catalog.search(query)]


def test_open_builds_missing_catalogue_with_every_bag(collection: Path) -> None:
    assert not catalog_path(collection).exists()
    with open_catalog(collection) as catalog:
        names = [record.name for record in catalog.list_bags()]
    assert names == ["tanks-20261101T100000Z", "mutual-aid-20261102T100000Z", "tanks-20261120T100000Z"]
    conn = sqlite3.connect(catalog_path(collection))
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    conn.close()


def test_record_holds_metadata_and_payload_size(collection: Path) -> None:
    bag = collection / "mutual-aid-20261102T100000Z"
    with open_catalog(collection) as catalog:
        record = catalog.show(bag.name)
    payload = [p for p in (bag / "data").rglob("*") if p.is_file()]
    assert record.payload_bytes == sum(p.stat().st_size for p in payload)
    assert record.payload_files == len(payload) == 3
    assert (record.title, record.author, record.url) == ("Mutual Aid", "Peter Kropotkin", URL_B)
    metadata = json.loads((bag / "data" / "metadata.json").read_text())
    assert record.text_sha256 == metadata["text_sha256"]
    assert record.retrieved == "2026-11-02T10:00:00Z"


def test_show_by_url_gives_latest_capture_and_by_path(collection: Path) -> None:
    with open_catalog(collection) as catalog:
        assert catalog.show(URL_A).name == "tanks-20261120T100000Z"
        assert catalog.show(str(collection / "tanks-20261101T100000Z") + "/").name == "tanks-20261101T100000Z"
        with pytest.raises(NotInCatalog):
            catalog.show("https://example.org/never-captured")


def test_search_ranks_title_over_body_and_marks_snippet(collection: Path) -> None:
    with open_catalog(collection) as catalog:
        hits = catalog.search("tanks")
    # Both captures of the tanks text have the word in their title; Mutual Aid only in its body.
    assert [h.name for h in hits][-1] == "mutual-aid-20261102T100000Z"
    assert len(hits) == 3
    assert all("**" in hit.snippet for hit in hits)
    assert hits[0].score <= hits[-1].score


def test_search_with_too_many_matches_to_rank(collection: Path) -> None:
    with open_catalog(collection) as catalog:
        ranked = catalog.search("tanks")
        hits = catalog.search("tanks", rank_at_most=1)
        body_only = catalog.search("nationalism", rank_at_most=1)
        assert [h.name for h in catalog.search("nationalism", limit=1, rank_at_most=1)] == [body_only[0].name]
    # Title matches first, ranked as before; then the rest, unranked, newest in the catalogue first.
    assert [h.name for h in hits] == [h.name for h in ranked]
    assert [h.score is None for h in hits] == [False, False, True]
    assert [h.score for h in hits[:2]] == [h.score for h in ranked[:2]]
    assert [h.name for h in body_only] == ["tanks-20261120T100000Z", "tanks-20261101T100000Z"]
    assert all(h.score is None and "**" in h.snippet for h in body_only)


def test_search_plain_words_with_apostrophes_and_phrases(collection: Path) -> None:
    assert search_names(collection, "it's") == ["tanks-20261101T100000Z"]
    assert search_names(collection, '"factor of evolution"') == ["mutual-aid-20261102T100000Z"]
    assert search_names(collection, '"evolution of factor"') == []
    assert search_names(collection, "kropotkin") == ["mutual-aid-20261102T100000Z"]
    assert sorted(search_names(collection, "preface OR evolution")) == [
        "mutual-aid-20261102T100000Z", "tanks-20261120T100000Z"]
    assert search_names(collection, "contradi*") != []
    assert search_names(collection, "nationalism NOT preface") == ["tanks-20261101T100000Z"]


@pytest.mark.parametrize("query", ['"unclosed', "", "   ", "OR", "AND foo", "foo OR", "(foo"])
def test_bad_queries_are_usage_errors(collection: Path, query: str) -> None:
    with open_catalog(collection) as catalog:
        with pytest.raises(UsageError):
            catalog.search(query)


def test_fts_query_quotes_words() -> None:
    assert fts_query("it's C++") == '"it\'s" "C++"'
    assert fts_query('anar* "mutual aid" OR x') == '"anar" * "mutual aid" OR "x"'


def test_history_lists_captures_and_unchanged_checks_oldest_first(collection: Path) -> None:
    with open_catalog(collection) as catalog:
        history = catalog.history(URL_A)
    assert [(e.kind, e.time, e.bag) for e in history] == [
        ("capture", "2026-11-01T10:00:00Z", "tanks-20261101T100000Z"),
        ("unchanged", "2026-11-10T10:00:00Z", "tanks-20261101T100000Z"),
        ("capture", "2026-11-20T10:00:00Z", "tanks-20261120T100000Z"),
    ]
    assert history[1].reason == "not-modified"


def test_events_appended_later_are_imported_on_next_open(collection: Path) -> None:
    with open_catalog(collection) as catalog:
        assert len(catalog.history(URL_B)) == 2
    append_event(collection, Event("capture", "unchanged", bag="mutual-aid-20261102T100000Z",
                                   detail={"url": URL_B}, time="2026-11-25T10:00:00Z"))
    # A torn line (a crash mid-append) is skipped, and does not stop later events.
    with open(collection / ".archiver" / "events.jsonl", "ab") as f:
        f.write(b'{"id": "torn", "type": "capt')
    append_event(collection, Event("capture", "unchanged", bag="mutual-aid-20261102T100000Z",
                                   detail={"url": URL_B}, time="2026-11-26T10:00:00Z"))
    with open_catalog(collection) as catalog:
        assert [e.time for e in catalog.history(URL_B)][-2:] == ["2026-11-25T10:00:00Z",
                                                                 "2026-11-26T10:00:00Z"]
    with open_catalog(collection) as catalog:  # importing twice doubles nothing
        assert len(catalog.history(URL_B)) == 4


def test_add_bag_indexes_new_capture(collection: Path) -> None:
    open_catalog(collection).close()
    bag = make_bag(collection, "anew-20261125T100000Z", url="https://example.org/new", title="Zapatista",
                   author=None, body="Words of the Zapatistas.", retrieved="2026-11-25T10:00:00Z")
    catalog_add_bag(collection, bag)
    catalog_add_bag(collection, bag)  # idempotent
    with open_catalog(collection) as catalog:
        assert [h.name for h in catalog.search("zapatistas")] == [bag.name]
        assert catalog.count() == 4


def test_add_bag_rebuilds_missing_catalogue(collection: Path) -> None:
    catalog_add_bag(collection, collection / "mutual-aid-20261102T100000Z")
    with open_catalog(collection) as catalog:
        assert catalog.count() == 3


def _snapshot(root: Path) -> tuple:
    with open_catalog(root) as catalog:
        return ([r.to_dict() for r in catalog.list_bags()],
                [h.to_dict() for h in catalog.search("red nationalism")],
                [e.to_dict() for e in catalog.history(URL_A)])


@pytest.mark.parametrize("damage", ["delete", "garbage", "truncate", "zero-pages", "old-schema"])
def test_damaged_catalogue_is_rebuilt_with_same_results(collection: Path, damage: str) -> None:
    before = _snapshot(collection)
    path = catalog_path(collection)
    if damage == "delete":
        path.unlink()
    elif damage == "garbage":
        path.write_bytes(b"this is not sqlite at all" * 100)
    elif damage == "truncate":
        with open(path, "r+b") as f:
            f.truncate(path.stat().st_size // 2)
    elif damage == "zero-pages":
        size = path.stat().st_size
        with open(path, "r+b") as f:
            f.seek(4096)
            f.write(b"\0" * (size - 4096))
    else:
        conn = sqlite3.connect(path)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION - 1}")
        conn.close()
    assert _snapshot(collection) == before


def test_rebuild_replaces_file_and_lists_unreadable_bags_as_damaged(collection: Path) -> None:
    open_catalog(collection).close()
    reader = sqlite3.connect(catalog_path(collection))
    reader.execute("BEGIN")
    old_count = reader.execute("SELECT count(*) FROM bags").fetchone()[0]
    broken = make_bag(collection, "broken-20261125T000000Z", url="https://x", title="x", author=None,
                      body="x", retrieved="2026-11-25T00:00:00Z")
    (broken / "data" / "metadata.json").write_text("{not json")
    report = rebuild_catalog(collection)
    assert report.bags == 4 and report.checks == 2
    assert [name for name, _ in report.damaged] == ["broken-20261125T000000Z"]
    assert "metadata.json is not valid JSON" in report.damaged[0][1]
    with open_catalog(collection) as catalog:
        listed = {r.name: r for r in catalog.list_bags()}
        assert "metadata.json" in (listed["broken-20261125T000000Z"].damaged or "")
        assert listed["tanks-20261101T100000Z"].damaged is None
    # A reader that was inside a transaction keeps its whole, old catalogue.
    assert reader.execute("SELECT count(*) FROM bags").fetchone()[0] == old_count
    reader.close()
    assert not list((collection / ".archiver").glob(".tmp-*"))


def test_readers_during_rebuilds_always_see_a_whole_catalogue(collection: Path) -> None:
    open_catalog(collection).close()
    seen: list[object] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            try:
                conn = sqlite3.connect(f"file:{catalog_path(collection)}?mode=ro", uri=True, timeout=10)
                seen.append(conn.execute("SELECT count(*) FROM bags JOIN bag_text ON bag_text.rowid = bags.id "
                                         "WHERE bag_text MATCH 'nationalism'").fetchone()[0])
                conn.close()
            except sqlite3.Error as exc:  # pragma: no cover - the failure this test looks for
                seen.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for _ in range(5):
            rebuild_catalog(collection)
    finally:
        stop.set()
        reader.join()
    assert seen and set(seen) == {2}


def test_add_bag_to_corrupt_catalogue_rebuilds_with_it(collection: Path) -> None:
    open_catalog(collection).close()
    catalog_path(collection).write_bytes(b"\0" * 8192)
    bag = make_bag(collection, "anew-20261125T100000Z", url="https://example.org/new", title="Zapatista",
                   author=None, body="Words of the Zapatistas.", retrieved="2026-11-25T10:00:00Z")
    catalog_add_bag(collection, bag)
    with open_catalog(collection) as catalog:
        assert catalog.count() == 4 and catalog.search("zapatistas")[0].name == bag.name


def test_read_bag_record_without_bag_info(collection: Path) -> None:
    bag = collection / "tanks-20261101T100000Z"
    os.unlink(bag / "bag-info.txt")
    record = read_bag_record(bag)
    assert record.payload_bytes is None and record.title == "Always Against The Tanks"


# --------------------------------------------------------------------------- CLI

runner = CliRunner()


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_cli_list_show_search_history_json(collection: Path) -> None:
    root = ["--root", str(collection)]
    code, out, _ = run("list", *root, "--json")
    assert code == 0 and len(json.loads(out)["bags"]) == 3
    code, out, _ = run("show", "mutual-aid-20261102T100000Z", *root, "--json")
    assert code == 0 and json.loads(out)["author"] == "Peter Kropotkin"
    code, out, _ = run("search", "tanks", "--limit", "1", *root, "--json")
    hits = json.loads(out)["results"]
    assert code == 0 and len(hits) == 1 and "**" in hits[0]["snippet"]
    code, out, _ = run("history", URL_A, *root, "--json")
    assert code == 0 and [e["kind"] for e in json.loads(out)["history"]] == ["capture", "unchanged", "capture"]


def test_date_iso_is_a_column_that_list_show_search_expose(collection: Path) -> None:
    """The page's date as displayed stays in ``date``; its ISO reading is its own column.
    A catalogue of the previous schema (no such column) is rebuilt on first use."""
    make_bag(collection, "dated-20261125T000000Z", url="https://example.org/dated", title="Dated essay",
             author=None, body="An essay on calendars.", retrieved="2026-11-25T00:00:00Z",
             date="March 11th, 2015", date_iso="2015-03-11")
    open_catalog(collection).close()
    conn = sqlite3.connect(catalog_path(collection))
    conn.execute("ALTER TABLE bags DROP COLUMN date_iso")  # what a version-3 catalogue looks like
    conn.execute("PRAGMA user_version = 3")
    conn.commit()
    conn.close()
    root = ["--root", str(collection)]
    code, out, _ = run("show", "dated-20261125T000000Z", *root, "--json")
    assert code == 0 and (json.loads(out)["date"], json.loads(out)["date_iso"]) == ("March 11th, 2015", "2015-03-11")
    code, out, _ = run("list", *root, "--json")
    by_name = {bag["name"]: bag["date_iso"] for bag in json.loads(out)["bags"]}
    assert by_name["dated-20261125T000000Z"] == "2015-03-11" and by_name["tanks-20261101T100000Z"] is None
    code, out, _ = run("search", "calendars", *root, "--json")
    assert code == 0 and [hit["date_iso"] for hit in json.loads(out)["results"]] == ["2015-03-11"]
    conn = sqlite3.connect(catalog_path(collection))
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 4
    conn.close()


def test_cli_text_output(collection: Path) -> None:
    code, out, _ = run("search", "kropotkin", "--root", str(collection))
    assert code == 0 and "mutual-aid-20261102T100000Z" in out
    code, out, _ = run("history", URL_A, "--root", str(collection))
    assert code == 0 and "unchanged" in out and out.count("tanks-20261101T100000Z") == 2
    code, out, _ = run("list", "--root", str(collection))
    assert code == 0 and "Mutual Aid" in out


def test_cli_errors(collection: Path) -> None:
    code, _, err = run("show", "no-such-bag", "--root", str(collection))
    assert code == 1 and "no-such-bag" in err and len(err.strip().splitlines()) == 1
    code, _, err = run("history", "https://nowhere.example", "--root", str(collection))
    assert code == 1
    code, _, err = run("search", '"unclosed', "--root", str(collection))
    assert code == 2 and "quote" in err
    code, _, err = run("search", "x", "--limit", "0", "--root", str(collection))
    assert code == 2


def test_cli_catalog_rebuild(collection: Path) -> None:
    code, out, _ = run("catalog", "rebuild", "--root", str(collection), "--json")
    assert code == 0 and json.loads(out)["bags"] == 3
    assert catalog_path(collection).is_file()
    code, _, err = run("list", "--root", str(collection / "missing"))
    assert code == 3


def test_rebuild_discards_a_crashed_writers_journal(collection: Path) -> None:
    open_catalog(collection).close()
    path = catalog_path(collection)
    # A hot journal of the old file, as a writer killed mid-transaction leaves one.
    Path(f"{path}-journal").write_bytes(path.read_bytes()[:4096] + os.urandom(4096))
    rebuild_catalog(collection)
    assert not Path(f"{path}-journal").exists()
    with open_catalog(collection) as catalog:
        assert catalog.count() == 3


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(query=st.lists(st.sampled_from(list("ab é'\"*()-:^+.,{}") + [" AND ", " OR ", " NOT ", "NEAR"]),
                      max_size=16).map("".join))
def test_any_query_searches_or_is_a_usage_error(collection: Path, query: str) -> None:
    with open_catalog(collection) as catalog:
        try:
            hits = catalog.search(query)
        except UsageError as exc:
            assert str(exc) and "\n" not in str(exc)
        else:
            assert all(hit.name for hit in hits)
