"""A collection root on S3, reader side: list/show/search/history/audit/verify/mirror/repair
with --root s3://…, against a real S3 server (moto server mode on loopback) and a
real SeaweedFS. The S3 collections are written in the agreed layout directly
(tests/s3collection.py) from local collections made the usual way."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from archiver.cli import app
from archiver.collection.events import Event, append_event
from archiver.collection.s3root import S3Collection, cache_dir, cached_event_log
from archiver.replication import make_client
from s3collection import event_objects, put_event, upload_bag, upload_collection
from s3fixture import s3_server, tree  # noqa: F401  (fixture)
from test_catalog import URL_A, URL_B, make_bag, three_captures
from test_mirror_s3 import seaweedfs  # noqa: F401  (fixture)

URL_C = "https://example.org/library/half-written"
HALF = "half-20261103T100000Z"


def build_local(root: Path) -> Path:
    """test_catalog's three captures, with every capture's event and a sync finding."""
    three_captures(root)
    for bag, url, time in (("mutual-aid-20261102T100000Z", URL_B, "2026-11-02T10:00:00Z"),
                           ("tanks-20261120T100000Z", URL_A, "2026-11-20T10:00:00Z")):
        append_event(root, Event("capture", "success", bag=bag, detail={"url": url}, time=time))
    append_event(root, Event("gone", "success", bag="mutual-aid-20261102T100000Z",
                             detail={"url": URL_B, "reason": "HTTP 404"}, time="2026-11-25T10:00:00Z"))
    return root


def add_half_bag(client, bucket: str, prefix: str, tmp_path: Path) -> None:
    """A bag whose objects are all there but whose completion marker is not (a crashed writer)."""
    other = tmp_path / "half"
    other.mkdir()
    make_bag(other, HALF, url=URL_C, title="Half Written", author=None, retrieved="2026-11-03T10:00:00Z",
             body="Zanzibar appears only in the bag nobody finished.")
    upload_bag(client, bucket, prefix, other / HALF, marker=False)


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "xdg-cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(folder))
    return folder


@pytest.fixture
def s3col(tmp_path, s3_server, cache):
    """(local twin, s3 url, client, bucket, endpoint): the same collection on disk and on S3,
    the S3 one also holding a bag without its marker; two events in a legacy events.jsonl."""
    local = build_local(tmp_path / "bags")
    client = s3_server.client()
    bucket = s3_server.new_bucket()
    upload_collection(client, bucket, "lib/texts", local, legacy_events=2)
    add_half_bag(client, bucket, "lib/texts", tmp_path)
    return local, f"s3://{bucket}/lib/texts", client, bucket, s3_server.endpoint_url


def run(*args: str, endpoint: str | None = None, code: int | None = 0) -> dict:
    extra = ["--endpoint-url", endpoint] if endpoint else []
    result = CliRunner().invoke(app, [*args, *extra, "--json"])
    if code is not None:
        assert result.exit_code == code, result.output
    return json.loads(result.stdout)


def answers(root: str, endpoint: str | None = None) -> dict:
    """What the catalogue verbs say of a collection, without where it lives."""
    listed = run("list", "--root", root, endpoint=endpoint)["bags"]
    shown = run("show", URL_A, "--root", root, endpoint=endpoint)
    shown.pop("path")
    return {"list": listed, "show": shown,
            "search": run("search", "tanks", "--root", root, endpoint=endpoint)["results"],
            "history": {url: run("history", url, "--root", root, endpoint=endpoint)["history"]
                        for url in (URL_A, URL_B)}}


# --------------------------------------------------------------------------- reading

def test_catalogue_verbs_agree_with_the_same_collection_held_locally(s3col, cache):
    local, url, _client, _bucket, endpoint = s3col
    on_s3 = answers(url, endpoint)
    assert on_s3 == answers(str(local))
    assert [b["name"] for b in on_s3["list"]] == [
        "tanks-20261101T100000Z", "mutual-aid-20261102T100000Z", "tanks-20261120T100000Z"]
    assert [(e["kind"], e["time"]) for e in on_s3["history"][URL_A]] == [
        ("capture", "2026-11-01T10:00:00Z"), ("unchanged", "2026-11-10T10:00:00Z"),
        ("capture", "2026-11-20T10:00:00Z")]
    assert on_s3["history"][URL_B][-1]["kind"] == "gone"
    shown = run("show", "tanks-20261101T100000Z", "--root", url, endpoint=endpoint)
    assert shown["path"] == f"{url}/tanks-20261101T100000Z"
    # the catalogue is a cache under XDG_CACHE_HOME, never written to the collection
    bucket, prefix = url[5:].split("/", 1)
    assert (cache_dir(endpoint, bucket, prefix) / "catalog.sqlite").is_file()
    assert cache_dir(endpoint, bucket, prefix).parent == cache / "archiver" / "s3"


def test_a_bag_without_its_marker_is_invisible_to_every_verb(s3col, tmp_path):
    _local, url, client, bucket, endpoint = s3col
    assert HALF not in [b["name"] for b in run("list", "--root", url, endpoint=endpoint)["bags"]]
    assert run("show", HALF, "--root", url, endpoint=endpoint, code=1)["exit_code"] == 1
    assert run("search", "Zanzibar", "--root", url, endpoint=endpoint)["count"] == 0
    run("history", URL_C, "--root", url, endpoint=endpoint, code=1)
    verified = run("verify", url, endpoint=endpoint)
    assert sorted(b["path"].rsplit("/", 1)[1] for b in verified["bags"]) == [
        "mutual-aid-20261102T100000Z", "tanks-20261101T100000Z", "tanks-20261120T100000Z"]
    assert verified["incomplete"] == [f"{url}/{HALF}"]
    one = run("verify", f"{url}/{HALF}", endpoint=endpoint, code=3)
    assert one["bags"] == [] and "no completion marker" in one["errors"][0]["error"]
    audited = run("audit", "--root", url, endpoint=endpoint)
    assert (audited["checked"], audited["missing"]) == (3, [])
    mirrored = run("mirror", url, str(tmp_path / "copy"), endpoint=endpoint)
    assert mirrored["mirrored"] == 3 and not (tmp_path / "copy" / HALF).exists()
    # repair neither reads nor touches it
    repaired = run("repair", url, "--from", str(tmp_path / "copy"), endpoint=endpoint)
    assert HALF not in [r["bag"] for r in repaired["results"]]
    refused = run("repair", f"{url}/{HALF}", "--from", str(tmp_path / "half"), endpoint=endpoint, code=3)
    assert "no completion marker" in refused["error"]
    assert run("verify", f"{url}/tanks-20261101T100000Z", endpoint=endpoint)["bags"][0]["valid"]
    # once its marker is written, every verb sees it
    upload_bag(client, bucket, "lib/texts", tmp_path / "half" / HALF)
    assert run("search", "Zanzibar", "--root", url, endpoint=endpoint)["count"] == 1
    assert run("show", HALF, "--root", url, endpoint=endpoint)["url"] == URL_C


def test_deleting_the_cache_rebuilds_the_same_answers_from_s3_alone(s3col, cache):
    _local, url, _client, _bucket, endpoint = s3col
    first = answers(url, endpoint)
    shutil.rmtree(cache)
    assert answers(url, endpoint) == first
    assert run("catalog", "rebuild", "--root", url, endpoint=endpoint)["bags"] == 3
    assert answers(url, endpoint) == first


def test_a_late_event_with_an_older_time_is_picked_up(s3col, cache):
    _local, url, client, bucket, endpoint = s3col
    before = run("history", URL_A, "--root", url, endpoint=endpoint)["history"]
    # A second writer's re-check, made on 5 November, stored only now, under a key
    # that sorts before every key already read (its writer's clock stamped it early).
    late = Event("capture", "unchanged", bag="tanks-20261101T100000Z",
                 detail={"url": URL_A, "reason": "same-text"}, time="2026-11-05T10:00:00Z")
    put_event(client, bucket, "lib/texts", late, writer="0" * 12, stamp="20261105T100000.000000")
    after = run("history", URL_A, "--root", url, endpoint=endpoint)["history"]
    assert [e["time"] for e in after] == [
        "2026-11-01T10:00:00Z", "2026-11-05T10:00:00Z", "2026-11-10T10:00:00Z", "2026-11-20T10:00:00Z"]
    assert [e for e in after if e["event_id"] != late.id] == before
    # the incremental catalogue answers as a fresh one does
    shutil.rmtree(cache)
    assert run("history", URL_A, "--root", url, endpoint=endpoint)["history"] == after
    # and the log read through the cache (audit, mirror) is the log read from S3
    collection = S3Collection(url, endpoint)
    direct = collection.read_events()
    assert [(e.key, e.line) for e in cached_event_log(collection).events] == [(e.key, e.line) for e in direct.events]
    assert [e.event.time for e in direct.events] == sorted(e.event.time for e in direct.events)
    assert len(direct.events) == 7 and any(e.key.endswith("events.jsonl#000000001") for e in direct.events)


def test_the_endpoint_comes_from_aws_endpoint_url_too(s3col, monkeypatch):
    _local, url, _client, _bucket, endpoint = s3col
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    assert len(run("list", "--root", url)["bags"]) == 3
    assert run("list", "--root", "sftp://host/texts", code=2)["exit_code"] == 2


def test_an_unreachable_s3_root_is_could_not_run_never_a_stale_answer(s3col):
    _local, url, _client, _bucket, endpoint = s3col
    assert len(run("list", "--root", url, endpoint=endpoint)["bags"]) == 3  # the cache exists now
    gone = run("list", "--root", url, endpoint="http://127.0.0.1:9", code=3)
    assert "error" in gone


# --------------------------------------------------------------------------- audit, mirror, repair

def flip(client, bucket: str, key: str) -> None:
    data = bytearray(client.get_object(Bucket=bucket, Key=key)["Body"].read())
    data[10] ^= 0xFF
    client.put_object(Bucket=bucket, Key=key, Body=bytes(data))


def test_audit_of_an_s3_root_reads_every_byte_and_logs_event_objects(s3col):
    _local, url, client, bucket, endpoint = s3col
    legacy = client.get_object(Bucket=bucket, Key="lib/texts/.archiver/events.jsonl")["Body"].read()
    flip(client, bucket, "lib/texts/tanks-20261120T100000Z/data/text.txt")
    report = run("audit", "--root", url, endpoint=endpoint, code=1)
    assert report["ok"] == ["mutual-aid-20261102T100000Z", "tanks-20261101T100000Z"]
    [failed] = report["failed"]
    assert (failed["bag"], failed["files"]) == ("tanks-20261120T100000Z", ["data/text.txt"])
    fixity = [e for e in event_objects(client, bucket, "lib/texts") if e["type"] == "fixity"]
    assert sorted((e["bag"], e["outcome"]) for e in fixity) == [
        ("mutual-aid-20261102T100000Z", "success"), ("tanks-20261101T100000Z", "success"),
        ("tanks-20261120T100000Z", "failure")]
    assert all(e["detail"]["mode"] == "full" and e["detail"]["bytes"] > 0 for e in fixity)
    # the legacy log is never rewritten
    assert client.get_object(Bucket=bucket, Key="lib/texts/.archiver/events.jsonl")["Body"].read() == legacy
    # the rotation reads its state back from the event objects: only the failed bag is due
    again = run("audit", "--root", url, endpoint=endpoint, code=1)
    assert again["checked"] == 1 and len(again["skipped"]) == 2 and again["warnings"] == []
    # an object that is not a whole event is warned about, never fatal, never read as one
    client.put_object(Bucket=bucket, Key="lib/texts/.archiver/events/20261130T000000.000000Z-bad-000001.json",
                      Body=b'{"id": "cut')
    third = run("audit", "--root", url, endpoint=endpoint, code=1)
    assert [w["keys"] for w in third["warnings"]] == [[".archiver/events/20261130T000000.000000Z-bad-000001.json"]]


def test_audit_reports_a_logged_bag_whose_marker_is_gone_as_missing(s3col):
    _local, url, client, bucket, endpoint = s3col
    client.delete_object(Bucket=bucket, Key="lib/texts/.archiver/bags/mutual-aid-20261102T100000Z.json")
    report = run("audit", "--root", url, endpoint=endpoint, code=1)
    assert report["missing"] == ["mutual-aid-20261102T100000Z"]


def test_a_complete_bag_whose_objects_are_gone_fails_verify_and_audit(s3col):
    _local, url, client, bucket, endpoint = s3col
    listed = client.list_objects_v2(Bucket=bucket, Prefix="lib/texts/tanks-20261120T100000Z/")
    for obj in listed["Contents"]:
        client.delete_object(Bucket=bucket, Key=obj["Key"])
    verified = run("verify", url, endpoint=endpoint, code=1)
    assert [b["valid"] for b in verified["bags"]] == [True, True, False]
    report = run("audit", "--root", url, endpoint=endpoint, code=1)
    assert [f["bag"] for f in report["failed"]] == ["tanks-20261120T100000Z"] and report["missing"] == []


def test_audit_leaves_a_bag_being_written_alone_until_its_claim_expires(s3col):
    _local, url, client, bucket, endpoint = s3col
    put_event(client, bucket, "lib/texts", Event("capture", "success", bag=HALF, detail={"url": URL_C}))

    def claim(expires: str) -> None:
        client.put_object(Bucket=bucket, Key=f"lib/texts/.archiver/claims/{HALF}",
                          Body=json.dumps({"owner": "host:1:x", "expires": expires}).encode())

    claim("2999-01-01T00:00:00Z")  # a live writer: neither present nor missing
    assert run("audit", "--root", url, endpoint=endpoint)["missing"] == []
    claim("2001-01-01T00:00:00Z")  # its lease ran out: the log knows a bag that is not there
    assert run("audit", "--root", url, endpoint=endpoint, code=1)["missing"] == [HALF]


def test_mirror_an_s3_root_to_a_directory_and_repair_the_s3_root_from_it(s3col, tmp_path):
    local, url, client, bucket, endpoint = s3col
    copy = tmp_path / "copy"
    report = run("mirror", url, str(copy), endpoint=endpoint)
    assert (report["mirrored"], report["failed"]) == (3, 0)
    for name in ("tanks-20261101T100000Z", "mutual-aid-20261102T100000Z", "tanks-20261120T100000Z"):
        assert tree(copy / name) == tree(local / name)
    # the directory's log holds the S3 root's merged log; the source logged its replications
    copied = [json.loads(line) for line in (copy / ".archiver" / "events.jsonl").read_text().splitlines()]
    assert {e["type"] for e in copied} >= {"capture", "gone"}
    replications = [e for e in event_objects(client, bucket, "lib/texts") if e["type"] == "replication"]
    assert len(replications) == 3 and {e["target"] for e in replications} == {str(copy)}
    assert run("mirror", url, str(copy), endpoint=endpoint)["present"] == 3  # a re-run sends nothing
    assert run("verify", str(copy))["errors"] == []
    # damage the S3 root, repair it from the mirror
    flip(client, bucket, "lib/texts/tanks-20261101T100000Z/data/capture.warc.gz")
    run("verify", url, endpoint=endpoint, code=1)
    repaired = run("repair", url, "--from", str(copy), endpoint=endpoint)
    assert [(r["bag"], r["replaced"]) for r in repaired["results"] if r["status"] == "repaired"] == [
        ("tanks-20261101T100000Z", ["data/capture.warc.gz"])]
    assert run("verify", url, endpoint=endpoint)["errors"] == []
    repairs = [e for e in event_objects(client, bucket, "lib/texts") if e["type"] == "repair"]
    assert [(e["bag"], e["outcome"]) for e in repairs] == [("tanks-20261101T100000Z", "success")]
    staged = client.list_objects_v2(Bucket=bucket, Prefix="lib/texts/.archiver/staging/")
    assert staged["KeyCount"] == 0


def test_mirror_an_s3_root_to_another_s3_target_readable_as_a_collection(s3col, s3_server):
    _local, url, client, bucket, endpoint = s3col
    other = s3_server.new_bucket()
    report = run("mirror", url, f"s3://{other}/copy", endpoint=endpoint)
    assert (report["mirrored"], report["failed"]) == (3, 0)
    assert not client.list_objects_v2(Bucket=other, Prefix=f"copy/{HALF}/")["KeyCount"]
    # the target holds receipts, so it is itself readable as a collection root
    assert answers(f"s3://{other}/copy", endpoint) == answers(url, endpoint)
    assert run("mirror", url, f"s3://{other}/copy", endpoint=endpoint)["present"] == 3


# --------------------------------------------------------------------------- a real SeaweedFS

@pytest.mark.seaweedfs
@pytest.mark.slow
def test_every_reader_verb_on_an_s3_root_in_seaweedfs(seaweedfs, tmp_path, cache):
    endpoint = seaweedfs
    client = make_client(endpoint)
    local = build_local(tmp_path / "bags")
    upload_collection(client, "archiver-mirror", "texts", local, legacy_events=2)
    add_half_bag(client, "archiver-mirror", "texts", tmp_path)
    url = "s3://archiver-mirror/texts"
    assert answers(url, endpoint) == answers(str(local))
    shutil.rmtree(cache)
    assert answers(url, endpoint) == answers(str(local))
    assert run("verify", url, endpoint=endpoint)["incomplete"] == [f"{url}/{HALF}"]
    flip(client, "archiver-mirror", "texts/mutual-aid-20261102T100000Z/data/text.txt")
    audited = run("audit", "--root", url, endpoint=endpoint, code=1)
    assert [f["bag"] for f in audited["failed"]] == ["mutual-aid-20261102T100000Z"]
    assert any(e["type"] == "fixity" and e["outcome"] == "failure"
               for e in event_objects(client, "archiver-mirror", "texts"))
    copy = tmp_path / "copy"
    mirrored = run("mirror", url, str(copy), endpoint=endpoint, code=1)  # the damaged bag fails to mirror
    assert (mirrored["mirrored"], mirrored["failed"]) == (2, 1)
    repaired = run("repair", url, "--from", str(local), endpoint=endpoint)
    assert [r["bag"] for r in repaired["results"] if r["status"] == "repaired"] == ["mutual-aid-20261102T100000Z"]
    assert run("mirror", url, str(copy), endpoint=endpoint)["mirrored"] == 1
    run("mirror", url, "s3://archiver-mirror/copy", endpoint=endpoint)
    assert answers("s3://archiver-mirror/copy", endpoint) == answers(url, endpoint)
    assert S3Collection(url, endpoint).complete_bags() == sorted(
        ["tanks-20261101T100000Z", "mutual-aid-20261102T100000Z", "tanks-20261120T100000Z"])
