"""Repairing damaged copies from a good one: directories and a real S3 server (moto)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from archiver.cli import app
from archiver.collection.events import read_events
from archiver.collection.s3root import S3Collection
from archiver.replication import DirectoryTarget, S3Bag, mirror_collection, open_target
from archiver.replication.repair import repair
from archiver.replication.s3 import S3Site
from archiver.bagit.verify import verify_bag
from s3collection import event_objects
from s3fixture import flip_byte, make_bags, s3_server, tree  # noqa: F401  (fixture)


def names(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if not p.name.startswith("."))


@pytest.fixture
def copies(tmp_path: Path) -> tuple[Path, Path]:
    """A collection and a verified directory mirror of it (3 bags each)."""
    source = tmp_path / "bags"
    make_bags(source, 3)
    mirror = tmp_path / "mirror"
    assert mirror_collection(source, DirectoryTarget(mirror)).ok
    return source, mirror


def damage_three_ways(root: Path) -> dict[str, str]:
    """A flipped byte, a deleted file, a truncated file; returns bag → damaged path."""
    a, b, c = names(root)
    flip_byte(root / a / "data" / "text.txt")
    (root / b / "data" / "metadata.json").unlink()
    warc = root / c / "data" / "capture.warc.gz"
    warc.write_bytes(warc.read_bytes()[:50])
    return {a: "data/text.txt", b: "data/metadata.json", c: "data/capture.warc.gz"}


def test_damage_is_found_by_verify_and_repaired_from_the_good_copy(copies):
    source, mirror = copies
    damaged = damage_three_ways(mirror)
    for bag, path in damaged.items():
        report = verify_bag(mirror / bag)
        assert not report.valid and any(p.path == path for p in report.problems)
    result = repair(mirror, source)
    assert result.ok
    assert {b.bag: b.replaced for b in result.bags} == {bag: [path] for bag, path in damaged.items()}
    assert all(b.valid_after for b in result.bags)
    for bag in names(source):
        assert verify_bag(mirror / bag).valid
        assert tree(mirror / bag) == tree(source / bag)
    events = [e for e in read_events(mirror).events if e.type == "repair"]
    assert {(e.bag, e.outcome) for e in events} == {(bag, "success") for bag in damaged}
    assert not (mirror / ".archiver" / "staging").exists() or not any((mirror / ".archiver" / "staging").rglob("*.*"))
    # nothing left to do the second time
    assert {b.status for b in repair(mirror, source).bags} == {"intact"}


def test_dry_run_prints_the_plan_and_changes_nothing(copies):
    source, mirror = copies
    damaged = damage_three_ways(mirror)
    before = {bag: tree(mirror / bag) for bag in names(mirror)}
    result = repair(mirror, source, dry_run=True)
    assert {b.bag: (b.status, b.replaced) for b in result.bags} == \
        {bag: ("would-repair", [path]) for bag, path in damaged.items()}
    assert {bag: tree(mirror / bag) for bag in names(mirror)} == before
    assert not [e for e in read_events(mirror).events if e.type == "repair"]


def test_without_a_good_copy_nothing_is_changed(copies):
    source, mirror = copies
    bag = names(mirror)[0]
    flip_byte(mirror / bag / "data" / "text.txt", 3)
    (mirror / bag / "data" / "metadata.json").unlink()
    flip_byte(source / bag / "data" / "text.txt", 7)  # the source is damaged too
    before = tree(mirror / bag)
    result = repair(mirror, source)
    [outcome] = [b for b in result.bags if b.bag == bag]
    assert outcome.status == "unrepairable" and "data/text.txt" in outcome.message
    assert not result.ok
    assert tree(mirror / bag) == before  # metadata.json had a good copy, but the bag is left alone
    [event] = [e for e in read_events(mirror).events if e.type == "repair"]
    assert (event.bag, event.outcome) == (bag, "failure")


def test_repair_one_bag_given_as_paths(copies):
    source, mirror = copies
    bag = names(mirror)[2]
    (mirror / bag / "bagit.txt").unlink()
    result = repair(mirror / bag, source / bag)
    assert [(b.bag, b.status, b.replaced) for b in result.bags] == [(bag, "repaired", ["bagit.txt"])]
    assert verify_bag(mirror / bag).valid


def test_missing_receipt_at_a_mirror_is_restored(copies):
    source, mirror = copies
    bag = names(mirror)[1]
    (mirror / ".archiver" / "receipts" / f"{bag}.json").unlink()
    [result] = [b for b in repair(mirror, source).bags if b.bag == bag]
    assert (result.status, result.replaced, result.receipt_restored) == ("repaired", [], True)
    assert (mirror / ".archiver" / "receipts" / f"{bag}.json").is_file()


@pytest.mark.slow
def test_s3_copy_repaired_from_a_directory_and_back(tmp_path, s3_server):
    client = s3_server.client()
    bucket = s3_server.new_bucket()
    source = tmp_path / "bags"
    make_bags(source, 3)
    url = f"s3://{bucket}/c"
    assert mirror_collection(source, open_target(url, s3_server.endpoint_url)).ok
    a, b, c = names(source)
    warc = client.get_object(Bucket=bucket, Key=f"c/{a}/data/capture.warc.gz")["Body"].read()
    client.put_object(Bucket=bucket, Key=f"c/{a}/data/capture.warc.gz", Body=warc[:10])  # truncated
    client.delete_object(Bucket=bucket, Key=f"c/.archiver/receipts/{b}.json")  # receipt missing
    for key in [f"c/{c}/{p}" for p in ("bagit.txt", "manifest-sha256.txt", "tagmanifest-sha256.txt",
                                       "tagmanifest-sha512.txt")]:
        client.delete_object(Bucket=bucket, Key=key)  # half-copied: payload only
    client.delete_object(Bucket=bucket, Key=f"c/.archiver/receipts/{c}.json")
    assert not verify_bag(S3Bag(client, bucket, f"c/{a}")).valid
    assert not verify_bag(S3Bag(client, bucket, f"c/{c}")).valid

    dry = repair(url, source, dry_run=True, client=client)
    assert {x.bag: x.status for x in dry.bags} == {a: "would-repair", b: "would-repair", c: "would-repair"}
    result = repair(url, source, client=client)
    assert result.ok, result.to_dict()
    assert {x.bag: sorted(x.replaced) for x in result.bags} == {
        a: ["data/capture.warc.gz"], b: [],
        c: ["bagit.txt", "manifest-sha256.txt", "tagmanifest-sha256.txt", "tagmanifest-sha512.txt"]}
    for name in (a, b, c):
        assert verify_bag(S3Bag(client, bucket, f"c/{name}")).valid
    staged = client.list_objects_v2(Bucket=bucket, Prefix="c/.archiver/staging/")
    assert staged["KeyCount"] == 0
    # one event object per repair (S3LAYOUT: never a read-modify-write of a shared log)
    events = [logged.event for logged in S3Collection(url, client=client).read_events().events]
    assert sum(1 for e in events if e.type == "repair") == 3
    assert sum(1 for e in event_objects(client, bucket, "c") if e["type"] == "repair") == 3
    # and the other way: the directory repaired from S3
    flip_byte(source / a / "data" / "text.txt")
    back = repair(source, url, client=client)
    assert [(x.bag, x.replaced) for x in back.bags if x.status == "repaired"] == [(a, ["data/text.txt"])]
    assert verify_bag(source / a).valid


def test_cli_repair_exit_codes(copies, tmp_path):
    source, mirror = copies
    runner = CliRunner()
    damage_three_ways(mirror)
    dry = runner.invoke(app, ["repair", str(mirror), "--from", str(source), "--dry-run", "--json"])
    assert dry.exit_code == 0, dry.output
    assert json.loads(dry.stdout)["counts"] == {"would-repair": 3}
    fixed = runner.invoke(app, ["repair", str(mirror), "--from", str(source)])
    assert fixed.exit_code == 0 and "3 repaired" in fixed.stdout
    shutil.rmtree(source / names(source)[0] / "data")
    flip_byte(mirror / names(mirror)[0] / "data" / "text.txt")
    unrepairable = runner.invoke(app, ["repair", str(mirror), "--from", str(source)])
    assert unrepairable.exit_code == 1
    missing = runner.invoke(app, ["repair", str(mirror), "--from", str(tmp_path / "nowhere")])
    assert missing.exit_code == 3


def test_source_with_a_tampered_manifest_is_not_used(copies):
    source, mirror = copies
    bag = names(mirror)[0]
    flip_byte(mirror / bag / "data" / "text.txt", 4)
    # the source's payload and manifest changed together: its tag manifest gives it away
    text = source / bag / "data" / "text.txt"
    flip_byte(text, 4)
    manifest = source / bag / "manifest-sha256.txt"
    forged = hashlib.sha256(text.read_bytes()).hexdigest()
    lines = [f"{forged}  data/text.txt" if line.endswith("data/text.txt") else line
             for line in manifest.read_text().splitlines()]
    manifest.write_text("\n".join(lines) + "\n")
    before = tree(mirror / bag)
    [result] = [b for b in repair(mirror, source).bags if b.bag == bag]
    assert result.status == "unrepairable" and "manifest-sha256.txt" in result.message
    assert tree(mirror / bag) == before


def test_s3_bag_without_bagit_txt_is_still_repaired_as_a_bag(tmp_path, s3_server):
    client = s3_server.client()
    bucket = s3_server.new_bucket()
    source = tmp_path / "bags"
    make_bags(source, 1)
    [name] = names(source)
    assert mirror_collection(source, open_target(f"s3://{bucket}/c", s3_server.endpoint_url)).ok
    client.delete_object(Bucket=bucket, Key=f"c/{name}/bagit.txt")
    result = repair(f"s3://{bucket}/c/{name}", source / name, client=client)
    assert [(b.bag, b.status, b.replaced) for b in result.bags] == [(name, "repaired", ["bagit.txt"])]
    assert verify_bag(S3Bag(client, bucket, f"c/{name}")).valid


def test_a_stray_file_is_left_alone_and_the_bag_is_not_called_repaired(copies):
    source, mirror = copies
    bag = names(mirror)[0]
    flip_byte(mirror / bag / "data" / "text.txt")
    (mirror / bag / "data" / "stray.txt").write_text("someone put this here")
    [result] = [b for b in repair(mirror, source).bags if b.bag == bag]
    assert result.replaced == ["data/text.txt"]
    assert (result.status, result.valid_after) == ("failed", False)
    assert "left untouched" in result.message
    assert (mirror / bag / "data" / "stray.txt").read_text() == "someone put this here"


# --- one Site interface, one factory ---------------------------------------------------------
def test_every_kind_of_site_has_the_whole_site_interface() -> None:
    from archiver.replication.directory import DirectorySite
    from archiver.replication.s3 import S3Site
    from archiver.replication.site import Site

    wanted = {name for name in vars(Site) if not name.startswith("_")} | set(Site.__annotations__)
    for kind in (DirectorySite, S3Site):
        missing = sorted(name for name in wanted if not hasattr(kind, name) and name != "location")
        assert not missing, f"{kind.__name__} lacks {missing}"


def test_open_site_picks_the_kind_by_scheme_and_refuses_others(tmp_path: Path) -> None:
    from archiver.errors import UsageError
    from archiver.replication import open_site
    from archiver.replication.directory import DirectorySite
    from archiver.replication.s3 import S3Site

    assert isinstance(open_site(tmp_path), DirectorySite)
    assert isinstance(open_site("s3://bucket/prefix", endpoint_url="http://127.0.0.1:9"), S3Site)
    for location in ("sftp://host/x", "gs://bucket/x", "s3://user:pw@bucket/x", "s3://", "s3://bad bucket/x"):
        with pytest.raises(UsageError) as caught:
            open_site(location, endpoint_url="http://127.0.0.1:9")
        assert "pw" not in str(caught.value)


def test_repair_a_single_bag_given_by_path_from_s3(s3_server, tmp_path: Path) -> None:  # noqa: F811
    """The two kinds meet through the one interface: a directory bag repaired from an S3 copy."""
    source = tmp_path / "bags"
    make_bags(source, 2)
    url = f"s3://{s3_server.new_bucket()}/c"
    assert mirror_collection(source, open_target(url, s3_server.endpoint_url)).ok
    bag = source / names(source)[0]
    flip_byte(bag / "data" / "text.txt")
    report = repair(bag, f"{url}/{bag.name}", endpoint_url=s3_server.endpoint_url)
    assert [(b.bag, b.status, b.replaced) for b in report.bags] == [(bag.name, "repaired", ["data/text.txt"])]
    assert verify_bag(bag).valid
