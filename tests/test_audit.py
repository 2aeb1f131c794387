"""archiver audit: rotation from the event log, fixity events, failed vs missing, the CLI."""

from __future__ import annotations

import json
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from archiver.collection.audit import audit_collection, parse_max_age, plan_audit
from archiver.bagit.write import write_bag
from archiver.cli import app
from archiver.errors import StorageError, UsageError
from archiver.collection.events import Event, append_event, read_events
from archiver.clock import iso, utc_now

runner = CliRunner()


def make_collection(root: Path, names: list[str]) -> Path:
    root.mkdir()
    for name in names:
        write_bag(root, name, {"text.txt": f"Title: {name}\n\nText.\n".encode(), "metadata.json": b"{}"},
                  [("Source-URL", f"https://example.org/{name}")])
        append_event(root, Event("capture", "success", bag=name, detail={"url": f"https://example.org/{name}"}))
    return root


def fixity_events(root: Path) -> list[Event]:
    return [e for e in read_events(root).events if e.type == "fixity"]


def test_first_audit_checks_every_bag_and_logs_fixity(tmp_path: Path) -> None:
    root = make_collection(tmp_path / "bags", ["a-1", "b-2", "c-3"])
    report = audit_collection(root)
    assert report.ok == ["a-1", "b-2", "c-3"] and report.failed == [] and report.missing == []
    events = fixity_events(root)
    assert [(e.bag, e.outcome) for e in events] == [("a-1", "success"), ("b-2", "success"), ("c-3", "success")]
    assert events[0].detail["file_count"] == 2 and events[0].detail["mode"] == "full"
    again = audit_collection(root)
    assert again.checked == 0
    assert {(s["bag"], s["reason"]) for s in again.skipped} == {
        ("a-1", "checked-recently"), ("b-2", "checked-recently"), ("c-3", "checked-recently")}


def test_oldest_check_first_and_limit(tmp_path: Path) -> None:
    root = make_collection(tmp_path / "bags", ["old", "older", "never", "fresh"])
    now = utc_now()
    for bag, days in (("old", 100), ("older", 200), ("fresh", 1)):
        append_event(root, Event("fixity", "success", bag=bag, time=iso(now - timedelta(days=days))))
    report = audit_collection(root, max_age=parse_max_age("90d"), limit=2)
    assert report.ok == ["never", "older"]
    assert {(s["bag"], s["reason"]) for s in report.skipped} == {("old", "limit"), ("fresh", "checked-recently")}


def test_failed_bag_lists_its_files(tmp_path: Path) -> None:
    root = make_collection(tmp_path / "bags", ["good", "bad"])
    (root / "bad" / "data" / "text.txt").write_bytes(b"Title: tampered\n\nText.\n")
    report = audit_collection(root)
    assert report.ok == ["good"]
    assert [f["bag"] for f in report.failed] == ["bad"]
    assert report.failed[0]["files"] == ["bag-info.txt", "data/text.txt"]  # Payload-Oxum and checksums
    event = [e for e in fixity_events(root) if e.bag == "bad"][0]
    assert event.outcome == "failure" and "data/text.txt" in event.detail["files"]
    assert {p["code"] for p in event.detail["problems"]} == {"checksum-mismatch", "payload-oxum-mismatch"}
    # A failed bag is due again at the next audit: its last *successful* check is still none.
    assert [f["bag"] for f in audit_collection(root).failed] == ["bad"]


def test_vanished_bag_is_missing_not_failed(tmp_path: Path) -> None:
    root = make_collection(tmp_path / "bags", ["kept", "gone", "deleted"])
    shutil.rmtree(root / "gone")
    shutil.rmtree(root / "deleted")
    append_event(root, Event("deletion", "success", bag="deleted"))
    report = audit_collection(root)
    assert report.missing == ["gone"] and report.failed == [] and report.ok == ["kept"]
    gone = [e for e in fixity_events(root) if e.bag == "gone"]
    assert [(e.outcome, e.detail["reason"]) for e in gone] == [("unverifiable", "missing")]


def test_plan_is_pure_and_ignores_mirror_fixity() -> None:
    now = utc_now()
    events = [Event("fixity", "success", bag="a", target="s3://b/p", time=iso(now)),
              Event("capture", "success", bag="b", time=iso(now))]
    plan = plan_audit(["a"], events, now, timedelta(days=90), None)
    assert plan.due == ["a"]          # a mirror copy's check says nothing about this folder
    assert plan.missing == ["b"]


def test_parse_max_age() -> None:
    assert parse_max_age("90d") == timedelta(days=90)
    assert parse_max_age("12h") == timedelta(hours=12)
    assert parse_max_age("2w") == timedelta(weeks=2)
    assert parse_max_age("30") == timedelta(days=30)
    with pytest.raises(UsageError):
        parse_max_age("soon")


def test_audit_of_absent_root_cannot_run(tmp_path: Path) -> None:
    with pytest.raises(StorageError):
        audit_collection(tmp_path / "nowhere")


def test_cli_audit(tmp_path: Path) -> None:
    root = make_collection(tmp_path / "bags", ["one", "two"])
    ok = runner.invoke(app, ["audit", "--root", str(root)])
    assert ok.exit_code == 0, ok.output
    assert "2 checked, 2 ok, 0 failed, 0 missing, 0 skipped" in ok.stdout
    (root / "two" / "data" / "metadata.json").write_bytes(b"{ }")
    shutil.rmtree(root / "one")
    result = runner.invoke(app, ["audit", "--root", str(root), "--max-age", "0s", "--json"])
    assert result.exit_code == 1
    document = json.loads(result.stdout)
    assert document["checked"] == 1 and document["missing"] == ["one"]
    assert document["failed"][0]["bag"] == "two" and "data/metadata.json" in document["failed"][0]["files"]
    human = runner.invoke(app, ["audit", "--root", str(root), "--max-age", "0s"])
    assert "FAILED   two: " in human.stdout and "data/metadata.json" in human.stdout
    assert "MISSING  one" in human.stdout
    assert runner.invoke(app, ["audit", "--root", str(root), "--max-age", "later"]).exit_code == 2
    assert runner.invoke(app, ["audit", "--root", str(tmp_path / "nowhere")]).exit_code == 3
