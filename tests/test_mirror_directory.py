"""Mirroring a collection to a directory: real folders, real bags, the real CLI."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from archiver.cli import app
from archiver.collection.events import read_events
from archiver.replication import DirectoryTarget, mirror_collection
from archiver.replication.plan import SourceBag, TargetBagState, plan_bag, send_order
from archiver.replication.target import joined_lines, missing_event_lines
from archiver.bagit.verify import verify_bag
from s3fixture import flip_byte, make_bags, tree

REPO = Path(__file__).resolve().parent.parent


def receipts(target: Path) -> set[str]:
    folder = target / ".archiver" / "receipts"
    return {p.stem for p in folder.glob("*.json")} if folder.is_dir() else set()


@pytest.fixture
def collection(tmp_path: Path) -> Path:
    root = tmp_path / "bags"
    make_bags(root, 3)
    return root


# --- planning (pure) -----------------------------------------------------------------

def test_send_order_is_payload_then_tag_files_then_tag_manifests():
    paths = ["tagmanifest-sha256.txt", "bagit.txt", "data/b.txt", "manifest-sha256.txt", "data/a.txt"]
    assert send_order(paths) == ["data/a.txt", "data/b.txt", "bagit.txt", "manifest-sha256.txt",
                                 "tagmanifest-sha256.txt"]


def test_plan_sends_only_missing_or_resized_files_and_deletes_strays():
    source = SourceBag("b", {"bagit.txt": 5, "data/a": 3, "data/b": 4, "tagmanifest-sha256.txt": 9},
                       {"tagmanifest-sha256.txt": b"x" * 9})
    state = TargetBagState({"bagit.txt": 5, "data/a": 2, "data/zz": 1, "tagmanifest-sha256.txt": 9},
                           has_receipt=True, tagmanifests_identical=True)
    plan = plan_bag(source, state)
    assert plan.status == "changed"
    assert plan.send == ["data/a", "data/b"]
    assert plan.delete == ["data/zz"]
    present = TargetBagState(dict(source.files), has_receipt=True, tagmanifests_identical=True)
    assert plan_bag(source, present).status == "present"
    no_receipt = TargetBagState(dict(source.files), has_receipt=False, tagmanifests_identical=True)
    assert (plan_bag(source, no_receipt).status, plan_bag(source, no_receipt).send) == ("incomplete", [])
    other_manifest = TargetBagState(dict(source.files), has_receipt=True, tagmanifests_identical=False)
    assert plan_bag(source, other_manifest).send == ["tagmanifest-sha256.txt"]


@given(st.lists(st.uuids().map(str), unique=True, max_size=12), st.data())
def test_event_log_merge_only_ever_appends_what_is_missing(ids, data):
    lines = [json.dumps({"id": i, "type": "replication"}).encode() for i in ids]
    have = data.draw(st.lists(st.sampled_from(lines), unique=True) if lines else st.just([]))
    own = [b'{"id": "target-only"}', b"torn {"]
    target_log = b"\n".join(have + own)
    missing = missing_event_lines(b"\n".join(lines), target_log)
    assert missing == [line for line in lines if line not in have]
    merged = target_log + joined_lines(target_log, missing)
    assert missing_event_lines(b"\n".join(lines), merged) == []
    assert merged.startswith(target_log)


# --- mirroring ---------------------------------------------------------------------------

def test_first_mirror_copies_every_bag_verifies_and_logs(collection: Path, tmp_path: Path):
    target = tmp_path / "elsewhere"
    report = mirror_collection(collection, DirectoryTarget(target))
    summary = report.to_dict()
    assert (summary["mirrored"], summary["failed"], summary["copied"]) == (3, 0, 3)
    for bag in sorted(p for p in collection.iterdir() if not p.name.startswith(".")):
        assert tree(target / bag.name) == tree(bag)
        assert verify_bag(target / bag.name).valid
    assert receipts(target) == {p.name for p in collection.iterdir() if not p.name.startswith(".")}
    assert not list(target.glob("*.partial"))
    events = [e for e in read_events(collection).events if e.type == "replication"]
    assert len(events) == 3
    assert all(e.outcome == "success" and e.target == str(target) for e in events)
    assert sum(e.detail["bytes"] for e in events) == summary["bytes_copied"] > 0
    # the event log goes along (the catalogue does not)
    assert {e.id for e in read_events(target).events} == {e.id for e in read_events(collection).events}
    assert not (target / ".archiver" / "catalog.sqlite").exists()


def test_second_run_copies_nothing_and_does_not_rehash(collection: Path, tmp_path: Path):
    target = tmp_path / "elsewhere"
    mirror_collection(collection, DirectoryTarget(target))
    # Same size, other bytes, in a payload file: a present bag is skipped on
    # sizes + tag manifests alone, so this is left for `verify`/`audit` to find.
    victim = next(target.glob("*/data/capture.warc.gz"))
    flip_byte(victim)
    again = mirror_collection(collection, DirectoryTarget(target)).to_dict()
    assert (again["present"], again["copied"], again["files_copied"]) == (3, 0, 0)
    assert not verify_bag(victim.parent.parent).valid


def test_only_missing_or_differing_files_are_sent(collection: Path, tmp_path: Path):
    target = tmp_path / "elsewhere"
    mirror_collection(collection, DirectoryTarget(target))
    bag = sorted(p for p in target.iterdir() if not p.name.startswith("."))[0]
    (bag / "data" / "text.txt").unlink()
    (bag / "data" / "stray.bin").write_bytes(b"not part of the bag")
    report = mirror_collection(collection, DirectoryTarget(target)).to_dict()
    [result] = report["results"]
    assert (result["bag"], result["found"], result["status"]) == (bag.name, "changed", "mirrored")
    assert result["files_sent"] == 1
    assert tree(bag) == tree(collection / bag.name)


def test_same_size_damage_without_receipt_is_found_by_read_back(collection: Path, tmp_path: Path):
    target = tmp_path / "elsewhere"
    mirror_collection(collection, DirectoryTarget(target))
    bag = sorted(p for p in target.iterdir() if not p.name.startswith("."))[1]
    flip_byte(bag / "data" / "metadata.json", 2)
    (target / ".archiver" / "receipts" / f"{bag.name}.json").unlink()
    [result] = mirror_collection(collection, DirectoryTarget(target)).to_dict()["results"]
    assert (result["found"], result["status"], result["files_sent"]) == ("incomplete", "mirrored", 1)
    assert verify_bag(bag).valid and bag.name in receipts(target)


def test_no_verify_copies_but_writes_no_receipt(collection: Path, tmp_path: Path):
    target = tmp_path / "elsewhere"
    first = mirror_collection(collection, DirectoryTarget(target), verify=False).to_dict()
    assert (first["unverified"], first["mirrored"]) == (3, 0)
    assert receipts(target) == set()
    events = [e for e in read_events(collection).events if e.type == "replication"]
    assert {e.outcome for e in events} == {"unverifiable"}
    second = mirror_collection(collection, DirectoryTarget(target)).to_dict()
    assert (second["mirrored"], second["files_copied"]) == (3, 0)
    assert len(receipts(target)) == 3


def test_damaged_source_is_never_counted_mirrored(collection: Path, tmp_path: Path):
    target = tmp_path / "elsewhere"
    bag = sorted(p for p in collection.iterdir() if not p.name.startswith("."))[0]
    flip_byte(bag / "data" / "text.txt")
    report = mirror_collection(collection, DirectoryTarget(target))
    failed = [b for b in report.bags if b.status == "failed"]
    assert [b.bag for b in failed] == [bag.name]
    assert failed[0].faults[0].kind == "checksum-mismatch"
    assert bag.name not in receipts(target) and len(receipts(target)) == 2
    outcomes = {e.bag: e.outcome for e in read_events(collection).events if e.type == "replication"}
    assert outcomes[bag.name] == "failure"


def test_event_log_is_appended_never_overwritten(collection: Path, tmp_path: Path):
    target = tmp_path / "elsewhere"
    (target / ".archiver").mkdir(parents=True)
    own_line = b'{"id": "target-own", "type": "fixity", "outcome": "success", "time": "x"}'
    (target / ".archiver" / "events.jsonl").write_bytes(own_line)  # no final newline
    first = mirror_collection(collection, DirectoryTarget(target))
    lines = (target / ".archiver" / "events.jsonl").read_bytes().split(b"\n")
    assert lines[0] == own_line
    assert first.events_appended == len([l for l in lines[1:] if l.strip()]) == 3
    assert mirror_collection(collection, DirectoryTarget(target)).events_appended == 0


def test_leftover_partial_folder_is_resumed(collection: Path, tmp_path: Path):
    target = tmp_path / "elsewhere"
    bag = sorted(p for p in collection.iterdir() if not p.name.startswith("."))[0]
    partial = target / f"{bag.name}.partial"
    (partial / "data").mkdir(parents=True)
    (partial / "data" / "text.txt").write_bytes((bag / "data" / "text.txt").read_bytes())
    (partial / "data" / ".capture.warc.gz.mirror-tmp").write_bytes(b"half a file")
    report = mirror_collection(collection, DirectoryTarget(target))
    result = next(b for b in report.bags if b.bag == bag.name)
    assert (result.found, result.status) == ("incomplete", "mirrored")
    assert result.files_sent == 8  # everything but the text already there
    assert not partial.exists() and tree(target / bag.name) == tree(bag)


# --- CLI ------------------------------------------------------------------------------------

def test_cli_mirror_json_and_exit_codes(collection: Path, tmp_path: Path):
    runner = CliRunner()
    target = tmp_path / "elsewhere"
    first = runner.invoke(app, ["mirror", str(collection), str(target), "--json"])
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["mirrored"] == 3
    second = runner.invoke(app, ["mirror", str(collection), str(target), "--json"])
    assert second.exit_code == 0 and json.loads(second.stdout)["copied"] == 0
    damaged = next(collection.glob("*/data/text.txt"))
    flip_byte(damaged)
    shutil.rmtree(target / damaged.parent.parent.name)
    bad = runner.invoke(app, ["mirror", str(collection), str(target), "--json"])
    assert bad.exit_code == 1 and json.loads(bad.stdout)["failed"] == 1
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    unreachable = runner.invoke(app, ["mirror", str(collection), str(not_a_dir)])
    assert unreachable.exit_code == 3
    unmounted = runner.invoke(app, ["mirror", str(collection), str(tmp_path / "not-mounted" / "bags")])
    assert unmounted.exit_code == 3 and "mounted" in unmounted.stderr
    assert not (tmp_path / "not-mounted").exists()


# --- SIGKILL in the middle, then resume ----------------------------------------------------

def run_until_killed(args: list[str], target_receipts: Path, total: int) -> None:
    """Start the real CLI, SIGKILL it once some bags are mirrored and others are not."""
    proc = subprocess.Popen([sys.executable, "-m", "archiver.cli", *args], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            done = len(list(target_receipts.glob("*.json"))) if target_receipts.is_dir() else 0
            if done >= 5:
                break
            time.sleep(0.005)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    done = len(list(target_receipts.glob("*.json")))
    assert 0 < done < total, f"the mirror was not killed mid-way ({done} of {total} bags done)"


@pytest.mark.slow
def test_mirror_killed_with_sigkill_resumes_and_counts_nothing_half_sent(tmp_path: Path):
    source = tmp_path / "bags"
    total = 120
    make_bags(source, total, size=20_000)
    target = tmp_path / "elsewhere"
    run_until_killed(["mirror", str(source), str(target)], target / ".archiver" / "receipts", total)
    # Every bag with a receipt is whole and valid; nothing else is under a final name
    # with a receipt.
    for name in receipts(target):
        assert tree(target / name) == tree(source / name)
    half = [p for p in target.iterdir() if p.name.endswith(".partial")]
    assert all(p.name[: -len(".partial")] not in receipts(target) for p in half)
    result = subprocess.run([sys.executable, "-m", "archiver.cli", "mirror", str(source), str(target),
                             "--json"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["mirrored"] + summary["present"] == total and summary["failed"] == 0
    assert summary["present"] == len(receipts(target)) - summary["mirrored"]
    assert len(receipts(target)) == total and not list(target.glob("*.partial"))
    for bag in source.iterdir():
        if not bag.name.startswith("."):
            assert tree(target / bag.name) == tree(bag)


def test_planning_split_over_processes_agrees_with_serial(collection: Path, tmp_path: Path, monkeypatch):
    from archiver.replication import mirror as run

    target = DirectoryTarget(tmp_path / "elsewhere")
    mirror_collection(collection, target)
    victim = sorted((tmp_path / "elsewhere").glob("*/data/text.txt"))[1]
    victim.unlink()
    (collection / "not-a-bag").mkdir()
    target.scan()
    folders = run._folders(collection)
    serial = run.triage(folders, target)
    monkeypatch.setattr(run, "PARALLEL_PLANNING", 2)
    split = run.triage(folders, target)
    assert split == serial and split[1] == {"not-a-bag"}
    assert len(split[0]) == 2 and victim.parent.parent.name not in split[0]


def test_mirroring_a_bag_instead_of_its_collection_is_a_usage_error(collection: Path, tmp_path: Path):
    bag = sorted(p for p in collection.iterdir() if not p.name.startswith("."))[0]
    result = CliRunner().invoke(app, ["mirror", str(bag), str(tmp_path / "elsewhere")])
    assert result.exit_code == 2 and "collection root" in result.stderr


def test_a_manifest_path_leaving_the_bag_is_never_read_or_written(collection: Path, tmp_path: Path):
    bag = sorted(p for p in collection.iterdir() if not p.name.startswith("."))[0]
    secret = tmp_path / "secret.txt"
    secret.write_text("outside the bag")
    manifest = bag / "manifest-sha256.txt"
    manifest.write_text(manifest.read_text() + "0" * 64 + "  ../../secret.txt\n")
    target = tmp_path / "elsewhere"
    mirror_collection(collection, DirectoryTarget(target))
    assert not (tmp_path / "elsewhere" / "secret.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bags", "elsewhere", "secret.txt"]
    copied = tree(target)
    assert not [k for k in copied if "secret" in k]
    assert not [k for k, v in copied.items() if b"outside the bag" in v]
