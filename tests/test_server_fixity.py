"""Fixity from the S3 server's stored checksums ("server-attested"), against real
servers on loopback: moto's server mode, which stores whatever SHA-256 it is
sent without checking it (so archiver must read every file there), and a real
SeaweedFS, which refuses a body whose SHA-256 does not match (so its stored
values are used)."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from archiver.bagit.write import write_bag
from archiver.cli import app
from archiver.replication import mirror_collection, open_site, s3 as s3mod
from archiver.replication.s3 import S3Objects
from archiver.replication.server_fixity import (attest_location, audit_site, probe_server, read_site_events,
                                                stored_sha256)
from s3fixture import make_bags, s3_server  # noqa: F401  (fixture)
from test_mirror_s3 import seaweedfs  # noqa: F401  (fixture)

MiB = 1 << 20


def b64(digest_hex: str) -> str:
    return base64.b64encode(bytes.fromhex(digest_hex)).decode()


def manifest(bag: Path, algorithm: str = "sha256") -> dict[str, str]:
    lines = (bag / f"manifest-{algorithm}.txt").read_text().splitlines()
    return {path: digest for digest, path in (line.split("  ", 1) for line in lines)}


@pytest.fixture
def small_parts(monkeypatch):
    """Multipart above 6 MiB, 5 MiB parts (S3's smallest), so a test file of 11 MiB goes in 3 parts."""
    monkeypatch.setattr(s3mod, "SINGLE_PUT_LIMIT", 6 * MiB)
    monkeypatch.setattr(s3mod, "PART_SIZE", 5 * MiB)


def _bags(tmp_path: Path) -> Path:
    root = tmp_path / "bags"
    make_bags(root, 2)
    # A bag whose manifests have no sha256 (sha512 only), and one with a multipart-sized file.
    write_bag(root, "sha512only-20261125T093000Z", {"text.txt": b"only sha512 here\n"}, [],
              algorithms=("sha512",))
    write_bag(root, "big-20261125T093000Z", {"big.bin": os.urandom(11 * MiB)}, [])
    return root


def _by_bag(result) -> dict:
    return {b.bag: b for b in result.bags}


def mirrored(tmp_path: Path, s3_server, count: int) -> tuple[Path, str, str]:
    """``count`` small bags mirrored to a new bucket: (local root, bucket, s3 url)."""
    bucket = s3_server.new_bucket()
    root = tmp_path / "bags"
    make_bags(root, count)
    url = f"s3://{bucket}/c"
    assert mirror_collection(root, open_site(url, s3_server.endpoint_url)).to_dict()["failed"] == 0
    return root, bucket, url


# --- moto: stores claimed checksums without checking them -> everything is read -----------

def test_uploads_store_a_whole_sha256_or_a_composite_one(tmp_path, s3_server, small_parts):
    client = s3_server.client()
    bucket = s3_server.new_bucket()
    objects = S3Objects(client, bucket)
    data = os.urandom(3000)
    digest = hashlib.sha256(data).hexdigest()
    (tmp_path / "f").write_bytes(data)
    with open(tmp_path / "f", "rb") as f:  # no sha256 given: computed in one pass, then sent
        objects.put("seekable", f, len(data))
    objects.put_stream("stream", io.BufferedReader(io.BytesIO(data)))  # hashed while spooled
    with objects.open("seekable") as body:  # an S3 body is not seekable: spooled and hashed
        objects.put("from-s3", body, len(data))
    for key in ("seekable", "stream", "from-s3"):
        assert stored_sha256(objects.head(key)) == (digest, ""), key
    big = os.urandom(11 * MiB)
    objects.put("big", io.BytesIO(big), len(big))
    head = objects.head("big")
    assert head["ETag"].strip('"').endswith("-3")
    parts = [big[i:i + 5 * MiB] for i in range(0, len(big), 5 * MiB)]
    composite = hashlib.sha256(b"".join(hashlib.sha256(p).digest() for p in parts)).digest()
    assert base64.b64decode(head["ChecksumSHA256"].split("-")[0]) == composite  # checksum of part checksums
    assert stored_sha256(head) == (None, "composite")
    client.put_object(Bucket=bucket, Key="plain", Body=data)  # no checksum asked for
    assert stored_sha256(objects.head("plain")) == (None, "no-stored-sha256")
    assert objects.head("absent") is None


def test_on_moto_nothing_is_attested_and_damage_is_found_by_reading(tmp_path, s3_server, small_parts):
    client = s3_server.client()
    bucket = s3_server.new_bucket()
    root = _bags(tmp_path)
    url = f"s3://{bucket}/c"
    assert mirror_collection(root, open_site(url, s3_server.endpoint_url)).to_dict()["failed"] == 0
    site = open_site(url, s3_server.endpoint_url)
    assert probe_server(site).checks is False
    assert not [k for k in site.objects.list("c/.archiver/checksum-probe/")]  # probe object removed
    result = attest_location(site)
    assert result.probe.checks is False and result.total("attested") == 0
    assert not result.errors and all(b.ok and b.status == "success" for b in result.bags)
    essay = sorted(p.name for p in root.iterdir() if p.name.startswith("essay"))[0]
    assert _by_bag(result)[essay].read == {"server-does-not-check": 3, "tag-file": 4, "tag-manifest": 2}
    assert _by_bag(result)["sha512only-20261125T093000Z"].read["manifest-has-no-sha256"] == 1
    # Damage 1: overwritten without a checksum. Damage 2: a damaged body sent with the manifest's
    # own sha256 -- moto keeps that claim, so only reading can tell.
    sums = manifest(root / essay)
    key = f"c/{essay}/data/text.txt"
    client.put_object(Bucket=bucket, Key=key, Body=b"overwritten")
    meta_key = f"c/{essay}/data/metadata.json"
    client.put_object(Bucket=bucket, Key=meta_key, Body=b"{}\n", ChecksumAlgorithm="SHA256",
                      ChecksumSHA256=b64(sums["data/metadata.json"]))
    assert stored_sha256(site.objects.head(meta_key))[0] == sums["data/metadata.json"]  # the false claim
    damaged = _by_bag(attest_location(site))[essay]
    assert damaged.status == "failure"
    assert {p.path for p in damaged.problems if p.code == "checksum-mismatch"} == \
        {"data/text.txt", "data/metadata.json"}


def test_cli_verify_server_checksums_on_moto(tmp_path, s3_server):
    root, bucket, url = mirrored(tmp_path, s3_server, 2)
    runner = CliRunner()
    base = ["--endpoint-url", s3_server.endpoint_url, "--server-checksums"]
    as_json = runner.invoke(app, ["verify", url, *base, "--json"])
    assert as_json.exit_code == 0, as_json.output
    document = json.loads(as_json.stdout)
    [site] = document["sites"]
    assert (document["method"], site["method"], site["server"]["checks_checksums"]) == \
        ("server-attested", "server-attested", False)
    assert (site["attested"], site["read"], site["read_reasons"]["server-does-not-check"]) == (0, 18, 6)
    assert "valid" not in json.dumps(site["bags"][0]["status"])
    name = sorted(p.name for p in root.iterdir() if not p.name.startswith("."))[0]
    text = runner.invoke(app, ["verify", f"{url}/{name}", *base])
    assert text.exit_code == 0, text.output
    assert "verified by reading (no stored checksum usable)" in text.output
    assert "server checks uploaded checksums: NO" in text.output
    # usage errors: a local path, --fast with it, a local audit root
    local = runner.invoke(app, ["verify", str(root), "--server-checksums"])
    assert local.exit_code == 2 and "s3://" in local.output
    assert runner.invoke(app, ["verify", url, *base, "--fast"]).exit_code == 2
    audit = runner.invoke(app, ["audit", "--root", str(root), "--server-checksums"])
    assert audit.exit_code == 2 and "s3://" in audit.output
    unreachable = runner.invoke(app, ["verify", f"s3://{bucket}/nothing-here", *base])
    assert unreachable.exit_code == 3


def test_audit_site_on_moto_logs_fixity_events_labelled_by_method(tmp_path, s3_server):
    root, bucket, url = mirrored(tmp_path, s3_server, 3)
    site = open_site(url, s3_server.endpoint_url)
    first = audit_site(site, timedelta(days=90), limit=2)
    assert first.clean and len(first.attestation.bags) == 2 and len(first.skipped) == 1
    mine = [e for e in read_site_events(site) if e.detail.get("method") == "server-attested"]
    # moto does not check checksums: every file was read, so the events say success (verified)
    assert [(e.type, e.outcome, e.detail["attested"]) for e in mine] == [("fixity", "success", 0)] * 2
    second = audit_site(site, timedelta(days=90))
    assert [b.bag for b in second.attestation.bags] == [first.skipped[0]["bag"]]
    assert {s["reason"] for s in second.skipped} == {"checked-recently"}


# --- SeaweedFS: checks and keeps SHA-256 -> payload is server-attested --------------------------

@pytest.mark.seaweedfs
@pytest.mark.slow
def test_seaweedfs_attests_and_each_kind_of_damage_has_its_outcome(tmp_path, seaweedfs, small_parts):
    from archiver.replication import make_client

    client = make_client(seaweedfs)
    root = _bags(tmp_path)
    url = "s3://archiver-mirror/texts"
    assert mirror_collection(root, open_site(url, seaweedfs)).to_dict()["failed"] == 0
    site = open_site(url, seaweedfs)
    result = attest_location(site)
    assert result.probe.checks is True and not result.errors
    bags = _by_bag(result)
    essay = sorted(n for n in bags if n.startswith("essay"))[0]
    assert (bags[essay].status, bags[essay].attested, bags[essay].read) == \
        ("server-attested", 3, {"tag-file": 4, "tag-manifest": 2})
    assert bags["sha512only-20261125T093000Z"].read["manifest-has-no-sha256"] == 1
    assert bags["big-20261125T093000Z"].read.get("composite") == 1  # the multipart file is read
    assert bags["big-20261125T093000Z"].status == "success"
    sums = manifest(root / essay)
    key = f"texts/{essay}/data/"
    # 1. a wrong checksum: the server refuses the body, the object is unchanged, still attested
    with pytest.raises(Exception, match="BadDigest"):
        client.put_object(Bucket="archiver-mirror", Key=key + "text.txt", Body=b"damaged",
                          ChecksumAlgorithm="SHA256", ChecksumSHA256=b64(sums["data/text.txt"]))
    assert _by_bag(attest_location(site))[essay].status == "server-attested"
    # 2. overwritten with no checksum: nothing stored, so it is read, and the damage found
    client.put_object(Bucket="archiver-mirror", Key=key + "text.txt", Body=b"damaged")
    # 3. replaced by another body with its own (correct) sha256: the stored value disagrees
    other = b"{}\n"
    client.put_object(Bucket="archiver-mirror", Key=key + "metadata.json", Body=other,
                      ChecksumAlgorithm="SHA256", ChecksumSHA256=b64(hashlib.sha256(other).hexdigest()))
    damaged = _by_bag(attest_location(site))[essay]
    assert damaged.status == "failure"
    assert damaged.read.get("no-stored-sha256") == 1 and damaged.attested == 2
    messages = [(p.path, p.message) for p in damaged.problems]
    assert [m for path, m in messages if path == "data/metadata.json"] == [m for path, m in messages if
                                                                          "server's stored sha256" in m]
    assert any(path == "data/text.txt" and "sha256 checksum does not match" in m for path, m in messages)
    # the audit logs a distinct outcome, and the CLI says which files were attested
    report = audit_site(site, timedelta(days=90))
    outcomes = {e.bag: e.outcome for e in read_site_events(site) if e.detail.get("method") == "server-attested"}
    assert outcomes[essay] == "failure" and not report.clean
    assert outcomes[sorted(n for n in bags if n.startswith("essay"))[1]] == "server-attested"
    assert outcomes["big-20261125T093000Z"] == "success"
    runner = CliRunner()
    good = sorted(n for n in bags if n.startswith("essay"))[1]
    text = runner.invoke(app, ["verify", f"{url}/{good}", "--endpoint-url", seaweedfs, "--server-checksums"])
    assert text.exit_code == 0, text.output
    assert "server-attested: 3 files by the server's stored SHA-256 (bodies NOT read)" in text.output
    assert "verified" not in text.output.split("server checks")[0]
    bad = runner.invoke(app, ["verify", url, "--endpoint-url", seaweedfs, "--server-checksums", "--json"])
    assert bad.exit_code == 1
    assert json.loads(bad.stdout)["sites"][0]["failed"] == 1
    # repair stages the good copies (hashed while streamed up) and copies them into place:
    # the server keeps their SHA-256, so the bag is server-attested again
    from archiver.replication.repair import repair

    assert repair(url, root, client=client).ok
    repaired = _by_bag(attest_location(site))[essay]
    assert (repaired.status, repaired.attested) == ("server-attested", 3), [p.to_dict() for p in repaired.problems]


def test_audit_cli_route_for_an_s3_root(tmp_path, s3_server, capsys):
    """``audit --root s3://… --server-checksums`` goes to this function; ``--root`` itself
    takes s3:// roots once the S3-root reading side is merged, so it is called directly."""
    import typer

    from archiver.cli.attest import audit_server_checksums

    root, bucket, url = mirrored(tmp_path, s3_server, 2)
    with pytest.raises(typer.Exit) as done:
        audit_server_checksums(url, s3_server.endpoint_url, timedelta(days=90), None, None, True)
    assert done.value.exit_code == 0
    document = json.loads(capsys.readouterr().out)
    assert (document["method"], document["checked"], document["attested"]) == ("server-attested", 2, 0)
    assert len(document["verified_by_reading"]) == 2 and document["server"]["checks_checksums"] is False
    S3Objects(s3_server.client(), bucket).delete(f"c/{sorted(document['verified_by_reading'])[0]}/bagit.txt")
    with pytest.raises(typer.Exit) as again:
        audit_server_checksums(url, s3_server.endpoint_url, timedelta(seconds=0), None, None, False)
    assert again.value.exit_code == 1
    printed = capsys.readouterr().out
    assert "BAD " in printed and "bagit-txt-missing" in printed and "with problems" in printed
