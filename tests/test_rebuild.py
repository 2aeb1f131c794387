"""Rebuilding bags from their own raw capture, offline: real captures over a
loopback server, real bags, validated with the bagit library."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import bagit
import pytest
from typer.testing import CliRunner

from archiver.bagit.write import write_bag
from archiver.collection.catalog import open_catalog
from archiver.cli import app
from archiver.collection.root import list_bag_dirs, open_collection
from archiver.capture.fetch import Fetcher, FetchSettings
from archiver.capture.rebuild import rebuild_bags
from archiver.capture.material import material_from_capture
from archiver.capture.snapshot import write_capture_bag

PAGE = """<html><head><title>On Bread</title><meta name="author" content="P. K."></head><body>
<nav>Home | About</nav><article><h1>On Bread</h1>
<p>The first paragraph speaks of bread and of the commons, at some length, so that it is read.</p>
<p>The second paragraph, it's about mutual aid among the bakers of the town and their guild.</p>
</article><footer>c 2026</footer></body></html>"""


def capture(http_server, root: Path, *, stale: bool) -> Path:
    """Capture the page into a bag; ``stale`` makes its text what an older
    extractor would have made (it lost the second paragraph)."""
    url = http_server.add("/on-bread", PAGE)
    fetched = Fetcher(FetchSettings(delay=0, retries=0, obey_robots=False)).fetch(url)
    material = material_from_capture(fetched)
    if stale:
        old_text = dataclasses.replace(material.extraction.text,
                                       body=material.extraction.text.body.split("\n\n")[0])
        old_extraction = dataclasses.replace(material.extraction, text=old_text,
                                             extractor_version="archiver-generic/0")
        material = dataclasses.replace(material, extraction=old_extraction,
                                       canonical=old_text.render().encode("utf-8"))
    return write_capture_bag(root, material, "test-collection", "Test Library")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return open_collection(tmp_path / "bags")


def test_stale_bag_is_rebuilt_into_a_new_valid_bag_pointing_at_it(http_server, root: Path) -> None:
    old = capture(http_server, root, stale=True)
    (result,) = rebuild_bags(root, [old.name])
    assert result.outcome == "rebuilt" and result.exit_code == 0
    new = root / result.new_bag
    assert new != old and bagit.Bag(str(new)).is_valid()
    metadata = json.loads((new / "data" / "metadata.json").read_text())
    old_metadata = json.loads((old / "data" / "metadata.json").read_text())
    assert metadata["derived_from"] == {"bag": old.name, "text_sha256": old_metadata["text_sha256"],
                                        "extractor_version": "archiver-generic/0"}
    assert metadata["extractor_version"] != "archiver-generic/0"
    assert metadata["retrieved"] == old_metadata["retrieved"]
    text = (new / "data" / "text.txt").read_text()
    assert "mutual aid among the bakers" in text
    assert "mutual aid" not in (old / "data" / "text.txt").read_text()
    # The raw capture is carried over byte for byte; the old bag is untouched.
    assert (new / "data" / "capture.warc.gz").read_bytes() == (old / "data" / "capture.warc.gz").read_bytes()
    assert bagit.Bag(str(old)).is_valid()
    with open_catalog(root) as catalog:
        assert [h.name for h in catalog.search("bakers")] == [new.name]
        kinds = [(e.kind, e.bag) for e in catalog.history(metadata["url"])]
    assert kinds == [("capture", old.name), ("rebuilt", new.name)]


def test_rebuilding_twice_makes_no_second_bag(http_server, root: Path) -> None:
    old = capture(http_server, root, stale=True)
    (first,) = rebuild_bags(root, [old.name])
    (again,) = rebuild_bags(root, [old.name])
    assert again.outcome == "unchanged" and again.new_bag == first.new_bag
    assert {r.outcome for r in rebuild_bags(root)} == {"unchanged"}
    assert len(list_bag_dirs(root)) == 2


def test_current_bag_is_unchanged(http_server, root: Path) -> None:
    bag = capture(http_server, root, stale=False)
    (result,) = rebuild_bags(root, [bag.name])
    assert result.outcome == "unchanged" and result.new_bag is None
    assert list_bag_dirs(root) == [bag]


def test_bag_without_warc_and_unknown_name_fail_without_stopping(http_server, root: Path) -> None:
    bag = capture(http_server, root, stale=True)
    (bag / "data" / "capture.warc.gz").unlink()
    results = rebuild_bags(root, ["no-such-bag", bag.name])
    assert [(r.outcome, r.exit_code) for r in results] == [("failed", 1), ("failed", 1)]
    assert "capture.warc.gz" in results[1].reason
    assert len(list_bag_dirs(root)) == 1


def test_truncated_warc_fails_and_makes_no_bag(http_server, root: Path) -> None:
    stale = capture(http_server, root, stale=True)
    data = stale / "data"
    cut = write_bag(root, "cut-20261125T000000Z",
                    {"text.txt": (data / "text.txt").read_bytes(),
                     "metadata.json": (data / "metadata.json").read_bytes(),
                     "capture.warc.gz": (data / "capture.warc.gz").read_bytes()[:-200]}, [])
    (result,) = rebuild_bags(root, [cut.name])
    assert (result.outcome, result.exit_code) == ("failed", 1) and "damaged" in result.reason
    assert len(list_bag_dirs(root)) == 2


def test_cli_rebuild(http_server, root: Path) -> None:
    old = capture(http_server, root, stale=True)
    runner = CliRunner()
    result = runner.invoke(app, ["rebuild", old.name, "--root", str(root), "--json"])
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert (document["rebuilt"], document["unchanged"], document["failed"]) == (1, 0, 0)
    result = runner.invoke(app, ["rebuild", "--all", "--root", str(root)])
    assert result.exit_code == 0 and "unchanged" in result.stdout
    result = runner.invoke(app, ["rebuild", "missing-bag", "--root", str(root)])
    assert result.exit_code == 1
    result = runner.invoke(app, ["rebuild", "--root", str(root)])
    assert result.exit_code == 2


def test_history_of_resnapshots_over_loopback(http_server, root: Path) -> None:
    """The whole path: capture, unchanged re-check, changed page; history shows all three."""
    from archiver.capture.snapshot import SnapshotOptions, snapshot

    options = SnapshotOptions(root=root, fetch=FetchSettings(delay=0, retries=0, obey_robots=False), workers=1)
    url = http_server.add("/on-bread", PAGE, ETag='"v1"')
    first = snapshot([url], options)[0]
    again = snapshot([url], options)[0]
    http_server.add("/on-bread", PAGE.replace("their guild", "their new guild"), ETag='"v2"')
    changed = snapshot([url], options)[0]
    assert [first.outcome, again.outcome, changed.outcome] == ["captured", "unchanged", "captured"]
    result = CliRunner().invoke(app, ["history", url, "--root", str(root), "--json"])
    assert result.exit_code == 0
    entries = json.loads(result.stdout)["history"]
    assert [(e["kind"], e["bag"]) for e in entries] == [
        ("capture", first.bag), ("unchanged", first.bag), ("capture", changed.bag)]
    result = CliRunner().invoke(app, ["search", "new guild", "--root", str(root), "--json"])
    assert [h["name"] for h in json.loads(result.stdout)["results"]] == [changed.bag]
