"""The capture record: one owner of an archiver bag's layout, reading only through
the safe bag reader. Bags with symbolic links out of them are planted in a real
collection and every verb that reads bags is run through the CLI: no byte of
the files outside ever shows, and each planted bag is reported damaged."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from archiver.capture.material import build_material
from archiver.capture.warc import resource_to_warc
from archiver.cli import app
from archiver.clock import parse_iso
from archiver.collection.events import events_path, read_events
from archiver.collection.record import (METADATA, TEXT, CaptureRecord, DamagedCapture, rename_no_replace)
from archiver.collection.root import open_collection

runner = CliRunner()
SECRET = "zanzibarsecret"        # in the text outside the bag
SECRET_TITLE = "quixotictitle"   # in metadata outside the bag
PAGE = ("<html><head><title>Bread and Roses</title></head><body><article><h1>Bread and Roses</h1>"
        "<p>The first paragraph speaks of bread and of the commons, at some length, so it is read.</p>"
        "<p>The second paragraph is about mutual aid among the bakers of the town.</p>"
        "</article></body></html>").encode()


def cli(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout + result.stderr


def record_for(url: str, retrieved: str = "2026-11-30T10:00:00Z") -> CaptureRecord:
    when = parse_iso(retrieved)
    material = build_material(PAGE, url=url, retrieved=when, content_type="text/html",
                              warc=resource_to_warc(url, PAGE, "text/html", when), robots="local file")
    return material.to_record("test-collection", "Test Library")


def link_out(bag: Path, relpath: str, outside: Path, content: bytes) -> None:
    """Replace ``relpath`` of ``bag`` by a symlink to a file outside holding ``content``."""
    outside.write_bytes(content)
    (bag / relpath).unlink()
    os.symlink(outside, bag / relpath)


@pytest.fixture
def planted(tmp_path: Path) -> dict[str, Path]:
    root = open_collection(tmp_path / "bags")
    outside = tmp_path / "outside"
    outside.mkdir()
    good = record_for("https://example.org/good").write(root, "good-20261130T100000Z")
    # Its text is a link to a file outside holding the secret (manifests agree with that file).
    text = f"Title: Outside\n\n{SECRET} words from a file outside the bag.\n".encode()
    base = record_for("https://example.org/linked-text")
    linked_text = CaptureRecord.new(base.metadata, text, base.warc, organization="Test Library",
                                    collection_id="test-collection").write(root, "linked-text-20261130T100000Z")
    link_out(linked_text, TEXT, outside / "text.txt", text)
    # Its metadata is a link to a JSON object outside.
    linked_meta = record_for("https://example.org/linked-meta").write(root, "linked-meta-20261130T100000Z")
    link_out(linked_meta, METADATA, outside / "metadata.json",
             json.dumps({"url": "https://example.org/linked-meta", "title": SECRET_TITLE,
                         "retrieved": "2026-11-30T10:00:00Z"}).encode())
    # The bag folder itself is a link to a whole bag outside the collection.
    elsewhere = open_collection(outside / "other-root")
    outside_bag = CaptureRecord.new({**base.metadata, "title": SECRET_TITLE}, text, base.warc,
                                    organization="Elsewhere", collection_id="x").write(elsewhere, "far-bag")
    linked_folder = root / "linked-folder-20261130T100000Z"
    os.symlink(outside_bag, linked_folder)
    return {"root": root, "good": good, "linked-text": linked_text, "linked-meta": linked_meta,
            "linked-folder": linked_folder, "outside": outside}


def assert_no_secret(text: str) -> None:
    assert SECRET not in text and SECRET_TITLE not in text, text


def test_reading_a_bag_with_a_link_is_damaged_with_the_reason(planted: dict[str, Path]) -> None:
    assert CaptureRecord.read(planted["good"]).metadata["url"] == "https://example.org/good"
    for key, reason in (("linked-text", "data/text.txt is a symbolic link"),
                        ("linked-meta", "data/metadata.json is a symbolic link"),
                        ("linked-folder", "bag folder is a symbolic link")):
        with pytest.raises(DamagedCapture, match=reason) as caught:
            CaptureRecord.read(planted[key], warc=True)
        assert caught.value.exit_code == 1
        assert_no_secret(str(caught.value))


def test_no_verb_reads_a_byte_outside_a_bag(planted: dict[str, Path], tmp_path: Path) -> None:
    root = str(planted["root"])
    damaged = ("linked-text-20261130T100000Z", "linked-meta-20261130T100000Z", "linked-folder-20261130T100000Z")
    outside_before = {p: p.read_bytes() for p in planted["outside"].rglob("*") if p.is_file()}

    code, output = cli("catalog", "rebuild", "--root", root, "--json")
    assert code == 0, output
    assert_no_secret(output)
    report = json.loads(output[:output.rindex("}") + 1])
    assert report["bags"] == 4
    assert {d["bag"]: d["reason"] for d in report["damaged"]}.keys() == set(damaged)
    assert all("symbolic link" in d["reason"] for d in report["damaged"])

    for query in (SECRET, SECRET_TITLE, "outside"):
        code, output = cli("search", query, "--root", root, "--json")
        assert code == 0, output
        assert json.loads(output)["results"] == []
    code, output = cli("search", "bakers", "--root", root, "--json")
    assert [hit["name"] for hit in json.loads(output)["results"]] == ["good-20261130T100000Z"]

    code, output = cli("list", "--root", root, "--json")
    assert code == 0, output
    assert_no_secret(output)
    listed = {bag["name"]: bag for bag in json.loads(output)["bags"]}
    assert listed["good-20261130T100000Z"]["damaged"] is None
    for name in damaged:
        assert "symbolic link" in listed[name]["damaged"] and listed[name]["title"] is None
    code, output = cli("list", "--root", root)
    assert_no_secret(output)
    assert "linked-text-20261130T100000Z  DAMAGED: " in output

    for name in damaged:
        code, output = cli("show", name, "--root", root)
        assert code == 0, output
        assert_no_secret(output)
        assert "damaged: " in output and "symbolic link" in output

    code, output = cli("rebuild", "--all", "--root", root, "--json")
    assert_no_secret(output)
    results = {r["bag"]: r for r in json.loads(output)["results"]}
    for name in damaged:
        assert results[name]["outcome"] == "failed" and "symbolic link" in results[name]["reason"]
    assert results["good-20261130T100000Z"]["outcome"] == "unchanged"
    assert code == 1

    code, output = cli("audit", "--root", root, "--json")
    assert code == 1, output
    assert_no_secret(output)
    audit = json.loads(output)
    assert audit["ok"] == ["good-20261130T100000Z"]
    assert {f["bag"] for f in audit["failed"]} == set(damaged)
    codes = {f["bag"]: {p["code"] for p in f["problems"]} for f in audit["failed"]}
    assert "symlink-in-bag" in codes["linked-text-20261130T100000Z"]
    assert codes["linked-folder-20261130T100000Z"] == {"bag-is-symlink"}

    # A snapshot run records unlogged bags from their metadata: never a damaged one's.
    page = tmp_path / "page.html"
    page.write_bytes(PAGE)
    code, output = cli("snapshot", str(page), "--root", root, "--json")
    assert code == 0, output
    recovered = {e.bag for e in read_events(planted["root"]).events if e.detail.get("recovered")}
    assert recovered == {"good-20261130T100000Z"}

    # Nothing anywhere in the collection (bags, event log, catalogue) holds the outside bytes,
    # and nothing outside changed.
    for path in planted["root"].rglob("*"):
        if path.is_file() and not path.is_symlink() and not any(p.is_symlink() for p in path.parents):
            content = path.read_bytes()
            assert SECRET.encode() not in content and SECRET_TITLE.encode() not in content, path
    assert events_path(planted["root"]).is_file()
    assert {p: p.read_bytes() for p in planted["outside"].rglob("*") if p.is_file()} == outside_before


def test_rename_no_replace_never_replaces_an_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "file").write_bytes(b"x")
    (tmp_path / "taken").mkdir()  # plain rename(2) would replace this empty folder
    with pytest.raises(FileExistsError):
        rename_no_replace(tmp_path / "src", tmp_path / "taken")
    assert (tmp_path / "src" / "file").is_file() and not any((tmp_path / "taken").iterdir())
    rename_no_replace(tmp_path / "src", tmp_path / "free")
    assert (tmp_path / "free" / "file").read_bytes() == b"x"


def test_a_taken_name_gives_the_next_free_one(tmp_path: Path) -> None:
    root = open_collection(tmp_path / "bags")
    (root / "essay-20261130T100000Z").mkdir()          # an empty folder: still taken
    record = record_for("https://example.org/essay")
    first = record.write(root, "essay-20261130T100000Z")
    second = record.write(root, "essay-20261130T100000Z")
    assert [first.name, second.name] == ["essay-20261130T100000Z-2", "essay-20261130T100000Z-3"]
    assert CaptureRecord.read(second).text == record.text
    assert not [p for p in root.iterdir() if p.name.startswith(".tmp-")]


# -- two processes, one name -------------------------------------------------------------------------

STARTER = r"""
import sys
import archiver.cli, archiver.capture.snapshot, archiver.collection.catalog
print("ready", flush=True)
sys.stdin.readline()
sys.argv = ["archiver", *sys.argv[1:]]
archiver.cli.app()
"""


def test_two_processes_capturing_same_slug_sources_in_one_second_both_succeed(http_server, tmp_path: Path) -> None:
    """Two ``snapshot`` runs on one root capture different sources whose bags ask for
    the same name in the same second: both are captured, under distinct names, and logged."""
    import subprocess
    import sys
    import threading
    import time

    from conftest import REPO, send_body

    for attempt in range(3):
        arrived = threading.Barrier(2, timeout=30)

        def page(handler, _barrier=arrived) -> None:
            _barrier.wait()  # both runs hold a fetched page at once, then race to write its bag
            body = PAGE.replace(b"Bread and Roses", handler.path.encode())
            send_body(handler, body)

        http_server.routes["/a/p1"] = http_server.routes["/b/p1"] = page
        root = tmp_path / f"bags-{attempt}"
        runs = [subprocess.Popen([sys.executable, "-c", STARTER, "snapshot", http_server.url(path), "--root",
                                  str(root), "--delay", "0", "--retries", "0", "--json"],
                                 cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                for path in ("/a/p1", "/b/p1")]
        for run in runs:
            assert run.stdout is not None and run.stdout.readline() == b"ready\n"
        time.sleep(1.05 - time.time() % 1)  # start both just after a second begins
        for run in runs:
            assert run.stdin is not None
            run.stdin.write(b"go\n")
            run.stdin.flush()
        outputs = [run.communicate(timeout=120) for run in runs]
        for run, (out, err) in zip(runs, outputs):
            assert run.returncode == 0, err.decode()
        bags = [json.loads(out)["sources"][0]["bag"] for out, _err in outputs]
        if bags[0].removesuffix("-2")[-16:] != bags[1].removesuffix("-2")[-16:]:
            continue  # the two retrievals fell in different seconds: no collision to test; again
        assert sorted(bags) == sorted([bags[0].removesuffix("-2"), bags[0].removesuffix("-2") + "-2"])
        logged = {e.bag for e in read_events(root).events if e.type == "capture" and e.outcome == "success"}
        assert logged == set(bags)
        texts = {CaptureRecord.read(root / bag).metadata["url"] for bag in bags}
        assert texts == {http_server.url("/a/p1"), http_server.url("/b/p1")}
        return
    pytest.fail("three attempts never retrieved both pages in one second")


@pytest.mark.parametrize("metadata, reason", [
    (b"[" * 200_000 + b"]" * 200_000, "not valid JSON"),   # nesting past the recursion limit
    (b"\xff\xfe not utf-8", "not valid JSON"),
    (b"[1, 2]", "not a JSON object"),
])
def test_malformed_metadata_is_damage_not_a_crash(tmp_path: Path, metadata: bytes, reason: str) -> None:
    from archiver.bagit.write import write_bag

    bag = write_bag(tmp_path, "odd-20261130T100000Z", {"text.txt": b"Title: T\n", "metadata.json": metadata}, [])
    with pytest.raises(DamagedCapture, match=reason):
        CaptureRecord.read(bag)
    from archiver.collection.catalog import read_bag_record
    assert reason in (read_bag_record(bag).damaged or "")


# -- a bag held by a writer that is gone -------------------------------------------------------------

def test_a_process_forked_while_a_bag_is_held_does_not_keep_it_held(tmp_path: Path) -> None:
    """A writer holds its new bag (flock) until its capture event is written. A process
    forked meanwhile (a pool worker forked by another thread) shares the descriptor; it must
    not keep the bag "held" once the writer is gone, or no later run records the bag and
    its text is captured again into a second bag."""
    import signal
    import time

    from archiver.collection.recovery import record_unlogged_bags
    from archiver.durable import held_by_a_live_writer, release_temp_dir

    root = open_collection(tmp_path / "bags")
    bag = record_for("https://example.org/essay").write(root, "essay-20261130T100000Z", keep_held=True)
    assert held_by_a_live_writer(bag)
    ready_r, ready_w = os.pipe()
    child = os.fork()
    if child == 0:  # the forked sibling: outlives the writer
        os.write(ready_w, b"1")
        time.sleep(30)
        os._exit(0)
    os.close(ready_w)
    try:
        assert os.read(ready_r, 1) == b"1"  # the child is running
        os.close(ready_r)
        release_temp_dir(bag)  # the writer is gone (killed before logging the bag)
        assert not held_by_a_live_writer(bag), "a forked process keeps the dead writer's bag held"
        assert record_unlogged_bags(root) == [bag.name]
        [event] = [e for e in read_events(root).events if e.bag == bag.name]
        assert event.type == "capture" and event.detail.get("recovered")
    finally:
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)
