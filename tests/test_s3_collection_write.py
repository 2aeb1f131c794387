"""A collection root on S3, the writer side: ``snapshot``/``sync --root s3://…``,
name claims, completion markers, one object per event, crash leftovers.

Against moto's server mode on loopback, and (marked ``seaweedfs``) a real
SeaweedFS; concurrent writers are separate processes.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from archiver.bagit.verify import verify_bag
from archiver.bagit.write import write_bag
from archiver.cli import app
from archiver.clock import iso, utc_now
from archiver.collection.events import Event, append_events, read_events
from archiver.collection.recovery import record_unlogged_bags
from archiver.collection.s3store import S3CollectionWriter, open_s3_collection
from archiver.replication import make_client
from archiver.replication.mirror import mirror_events
from archiver.replication.s3 import S3Bag, S3Site
from s3fixture import DUMMY_AWS, s3_server, seaweedfs  # noqa: F401  (fixtures)

REPO = Path(__file__).resolve().parent.parent
PAGE = """<!doctype html><html><head><title>{title}</title></head><body>
<article><h1>{title}</h1><p>{body}</p><p>A second paragraph, so the extractor keeps the article.</p>
</article><footer>site footer</footer></body></html>"""


def write_page(path: Path, title: str = "An Essay", words: str = "words of the essay ") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(PAGE.format(title=title, body=words * 30), encoding="utf-8")
    return path


def keys(client, bucket: str, prefix: str) -> dict[str, int]:
    found: dict[str, int] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        found.update({o["Key"][len(prefix):]: o["Size"] for o in page.get("Contents", ())})
    return found


def body(client, bucket: str, key: str) -> bytes:
    return client.get_object(Bucket=bucket, Key=key)["Body"].read()


def visible_bags(client, bucket: str, prefix: str) -> dict[str, dict]:
    """What a reader sees: bags with a completion marker, by name, with the marker."""
    listed = keys(client, bucket, prefix + ".archiver/bags/")
    return {k[:-5]: json.loads(body(client, bucket, f"{prefix}.archiver/bags/{k}")) for k in listed}


def event_objects(client, bucket: str, prefix: str) -> list[dict]:
    listed = keys(client, bucket, prefix + ".archiver/events/")
    return [json.loads(body(client, bucket, f"{prefix}.archiver/events/{k}")) for k in sorted(listed)]


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache"


def snap(endpoint: str, url: str, *sources: str, extra: tuple[str, ...] = ()) -> tuple[int, dict]:
    result = CliRunner().invoke(app, ["snapshot", *sources, "--root", url, "--endpoint-url", endpoint,
                                      "--json", *extra])
    return result.exit_code, json.loads(result.stdout)


def test_snapshot_into_an_s3_root_publishes_bag_then_marker_and_one_object_per_event(
        s3_server, cache, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    bucket = s3_server.new_bucket()
    client = s3_server.client()
    url = f"s3://{bucket}/library/texts"
    page = write_page(tmp_path / "pages" / "essay.html")
    code, document = snap(s3_server.endpoint_url, url, str(page))
    assert code == 0, document
    [result] = document["sources"]
    name = result["bag"]
    assert result["outcome"] == "captured" and document["root"] == url
    listed = keys(client, bucket, "library/texts/")
    marker = visible_bags(client, bucket, "library/texts/")[name]
    # the marker lists exactly the bag's objects, with their sizes, and the capture's metadata
    assert marker["files"] == {k[len(name) + 1:]: size for k, size in listed.items() if k.startswith(name + "/")}
    assert marker["metadata"]["url"] == page.resolve().as_uri() and marker["bag"] == name
    tagmanifest = body(client, bucket, f"library/texts/{name}/tagmanifest-sha512.txt")
    assert marker["tagmanifest_sha512"] == hashlib.sha512(tagmanifest).hexdigest()
    assert f".archiver/claims/{name}" in listed
    assert verify_bag(S3Bag(client, bucket, f"library/texts/{name}")).valid
    [event] = event_objects(client, bucket, "library/texts/")
    assert (event["type"], event["outcome"], event["bag"]) == ("capture", "success", name)
    assert ".archiver/events.jsonl" not in listed  # no shared object is ever rewritten
    assert not (tmp_path / "s3:").exists()
    assert list((cache / "archiver" / "s3").glob("*/work/*")) == []  # the working root is gone
    # a re-check knows the last capture from the S3 event log: unchanged, no new bag
    code, document = snap(s3_server.endpoint_url, url, str(page))
    assert (code, document["sources"][0]["outcome"], document["sources"][0]["bag"]) == (0, "unchanged", name)
    # event objects are never rewritten: this machine keeps those it read, and reads only new ones
    # (the second run read the first run's event)
    [kept] = (cache / "archiver" / "s3").glob("*/events-read.jsonl")
    (kept_line,) = kept.read_bytes().splitlines()
    assert json.loads(json.loads(kept_line)["body"])["bag"] == name
    write_page(page, words="other words now ")
    code, document = snap(s3_server.endpoint_url, url, str(page))
    assert document["sources"][0]["outcome"] == "captured" and document["sources"][0]["bag"] != name
    assert [e["outcome"] for e in event_objects(client, bucket, "library/texts/")] == [
        "success", "unchanged", "success"]
    assert len(visible_bags(client, bucket, "library/texts/")) == 2


def test_bad_s3_roots_are_usage_errors_and_an_unreachable_store_exit_3(s3_server, cache, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    page = str(write_page(tmp_path / "p.html"))
    for root in ("s3://", "s3://bad bucket/x", "ftp://host/x", "s3://user:pw@bucket/x"):
        result = CliRunner().invoke(app, ["snapshot", page, "--root", root, "--json"])
        assert result.exit_code == 2, (root, result.output)
        assert "pw" not in result.output
    result = CliRunner().invoke(app, ["snapshot", page, "--root", "s3://nobucket-here/x",
                                      "--endpoint-url", s3_server.endpoint_url])
    assert result.exit_code == 3 and "cannot be reached" in result.output
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "cache") == ["p.html"]  # no local "s3:" folder


def build_bag(folder: Path, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return write_bag(folder, name, {"text.txt": b"Title: x\n\nhello\n",
                                    "metadata.json": json.dumps({"url": f"https://example.org/{name}"}).encode()},
                     [("Source-Organization", "Test")])


def put(client, bucket: str, key: str, data: bytes = b"x") -> None:
    client.put_object(Bucket=bucket, Key=key, Body=data)


def claim_body(owner: str, seconds: float) -> bytes:
    return json.dumps({"owner": owner, "expires": iso(utc_now() + timedelta(seconds=seconds))}).encode()


def test_a_taken_name_gives_the_next_free_one_and_a_mirrored_bag_keeps_its_name(s3_server, tmp_path):
    bucket = s3_server.new_bucket()
    client = s3_server.client()
    base = "essay-20261130T120000Z"
    put(client, bucket, f"c/.archiver/claims/{base}", claim_body("elsewhere:1:x", 600))  # a live writer
    put(client, bucket, f"c/{base}-2/bagit.txt")                                       # a mirrored bag
    put(client, bucket, f"c/.archiver/receipts/{base}-2.json", b"{}")
    collection = S3CollectionWriter(client, f"s3://{bucket}/c", tmp_path)
    names = [collection.publish(build_bag(tmp_path / str(i), base), base) for i in range(2)]
    assert names == [f"{base}-3", f"{base}-4"]
    for name in names:
        collection.release(name)
        assert verify_bag(S3Bag(client, bucket, f"c/{name}")).valid
    assert body(client, bucket, f"c/{base}-2/bagit.txt") == b"x"  # never touched


def test_crash_leftovers_are_cleaned_but_never_a_live_writers(s3_server, cache, tmp_path):
    bucket = s3_server.new_bucket()
    client = s3_server.client()
    claims = {"expired": claim_body("elsewhere:1:a", -5),
              "dead-here": claim_body(f"{os.uname().nodename}:{2 ** 22 + 7}:b", 600),
              "live-elsewhere": claim_body("elsewhere:1:c", 600),
              "complete": claim_body("elsewhere:1:d", -5)}
    for name, claim in claims.items():
        put(client, bucket, f"c/.archiver/claims/{name}", claim)
        put(client, bucket, f"c/{name}/data/text.txt")
    put(client, bucket, "c/.archiver/bags/complete.json", b"{}")
    with open_s3_collection(f"s3://{bucket}/c", s3_server.endpoint_url):
        pass
    listed = keys(client, bucket, "c/")
    assert "expired/data/text.txt" not in listed and ".archiver/claims/expired" not in listed
    assert "dead-here/data/text.txt" not in listed and ".archiver/claims/dead-here" not in listed
    assert "live-elsewhere/data/text.txt" in listed and ".archiver/claims/live-elsewhere" in listed
    assert "complete/data/text.txt" in listed and ".archiver/claims/complete" in listed


def test_a_bag_whose_writer_died_before_its_event_is_logged_once_as_recovered(s3_server, cache, tmp_path):
    bucket = s3_server.new_bucket()
    client = s3_server.client()
    url = f"s3://{bucket}/c"
    writer = S3CollectionWriter(client, url, tmp_path, lease=2)  # leases are in whole seconds
    name = writer.publish(build_bag(tmp_path / "b", "lost-20261130T120000Z"), "lost-20261130T120000Z")
    writer.release(name)  # ...and no capture event: the process "died" here
    with open_s3_collection(url, s3_server.endpoint_url) as root:
        assert record_unlogged_bags(root) == []  # its lease has not expired yet
        time.sleep(3.1)
        assert record_unlogged_bags(root) == [name]
        assert record_unlogged_bags(root) == []
        [event] = read_events(root).events
    assert (event.type, event.bag, event.detail["url"]) == ("capture", name, f"https://example.org/{name}")
    assert event.detail["recovered"]


def test_s3_event_log_merges_the_legacy_log_and_mirror_copies_only_missing_events(s3_server, tmp_path):
    bucket = s3_server.new_bucket()
    client = s3_server.client()
    old = [Event("capture", "success", bag=f"b{i}", time=f"2026-11-2{i}T00:00:00Z") for i in range(3)]
    put(client, bucket, "m/.archiver/events.jsonl",
        (old[0].to_json() + "\n" + old[2].to_json() + "\n{torn").encode())
    site = S3Site(client, f"s3://{bucket}/m")
    site.log_events([old[1]])
    lines = site.read_event_log().splitlines()
    assert [json.loads(line)["bag"] for line in lines if line != b"{torn"] == ["b0", "b1", "b2"]
    assert lines[-1] == b"{torn"  # a torn legacy line keeps its place after the line before it
    local = tmp_path / "root"
    new = Event("fixity", "success", bag="b0")
    append_events(local, [*old, new])
    assert mirror_events(local, site) == 1
    assert mirror_events(local, S3Site(client, f"s3://{bucket}/m")) == 0
    assert len(keys(client, bucket, "m/.archiver/events/")) == 2
    assert body(client, bucket, "m/.archiver/events.jsonl").count(b"\n") == 2  # never rewritten


# --- concurrent writers and SIGKILL, as separate processes ---------------------------------

def cli_env(cache: Path, endpoint: str, **extra: str) -> dict[str, str]:
    return {**os.environ, **DUMMY_AWS, "XDG_CACHE_HOME": str(cache), "ARCHIVER_S3_ENDPOINT_URL": endpoint,
            "PYTHONPATH": str(REPO), **extra}


# Each process imports archiver first, then waits for a common start time, so
# that every capture falls in the same second and asks for the same name.
AT_START = ("import sys, time; import archiver.cli, archiver.capture.snapshot, archiver.collection.s3store; "
            "start = float(sys.argv[1]); time.sleep(max(0.0, start - time.time())); "
            "from archiver.cli import app; app(sys.argv[2:], prog_name='archiver')")


def concurrent_snapshots(endpoint: str, url: str, pages: list[Path], writers: int, cache: Path) -> list[dict]:
    start = float(int(time.time()) + 5) + 0.05
    procs = [subprocess.Popen([sys.executable, "-c", AT_START, str(start), "snapshot", *map(str, pages),
                               "--root", url, "--json", "--delay", "0", "--force"],
                              env=cli_env(cache, endpoint), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for _ in range(writers)]
    documents = []
    for proc in procs:
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err.decode()[-2000:]
        documents.append(json.loads(out))
    return documents


def check_concurrent_writers(endpoint: str, bucket: str, prefix: str, tmp_path: Path) -> None:
    client = make_client(endpoint)
    # same slug: three files named essay.html in three folders
    pages = [write_page(tmp_path / d / "essay.html", title=f"Essay {d}") for d in "abc"]
    writers = 3
    documents = concurrent_snapshots(endpoint, f"s3://{bucket}/{prefix}", pages, writers, tmp_path / "cache")
    names = [s["bag"] for d in documents for s in d["sources"]]
    assert all(s["outcome"] == "captured" for d in documents for s in d["sources"]), documents
    assert len(names) == writers * len(pages) == len(set(names)), names  # never two bags with one name
    assert any(n.endswith("-2") for n in names), names  # the names did collide
    visible = visible_bags(client, bucket, prefix + "/")
    assert set(visible) == set(names)
    events = event_objects(client, bucket, prefix + "/")
    assert sorted(e["bag"] for e in events if e["type"] == "capture") == sorted(names)  # no event lost
    for name, marker in visible.items():  # each bag is one writer's, whole
        assert verify_bag(S3Bag(client, bucket, f"{prefix}/{name}")).valid
        text = body(client, bucket, f"{prefix}/{name}/data/text.txt")
        assert marker["metadata"]["title"].encode() in text


@pytest.mark.slow
def test_concurrent_snapshot_processes_into_one_s3_collection(s3_server, tmp_path):
    check_concurrent_writers(s3_server.endpoint_url, s3_server.new_bucket(), "lib", tmp_path)


@pytest.mark.slow
@pytest.mark.seaweedfs
def test_concurrent_snapshot_processes_into_seaweedfs(seaweedfs, tmp_path):
    check_concurrent_writers(seaweedfs, "archiver-mirror", "lib", tmp_path)


KILLS = 8


@pytest.mark.slow
def test_sigkill_loop_never_shows_a_half_bag_and_a_rerun_completes(s3_server, tmp_path):
    sigkill_loop(s3_server.endpoint_url, s3_server.new_bucket(), tmp_path, kills=KILLS)


@pytest.mark.slow
@pytest.mark.seaweedfs
def test_sigkill_loop_on_seaweedfs(seaweedfs, tmp_path):
    sigkill_loop(seaweedfs, "archiver-mirror", tmp_path, kills=KILLS)


def sigkill_loop(endpoint: str, bucket: str, tmp_path: Path, kills: int) -> None:
    seed = int(os.environ.get("CRASH_SEED", "20261130"))
    rng = random.Random(seed)
    client = make_client(endpoint)
    url = f"s3://{bucket}/k"
    pages = [str(write_page(tmp_path / "pages" / f"p{i}.html", title=f"Page {i}",
                            words=f"text {i} " + "word " * 600)) for i in range(6)]
    env = cli_env(tmp_path / "cache", endpoint, ARCHIVER_S3_LEASE="2")
    args = [sys.executable, "-m", "archiver.cli", "snapshot", *pages, "--root", url, "--force", "--delay", "0"]
    unfinished = 0  # bags a kill left without a marker (invisible), summed over the kills
    for kill in range(kills):
        proc = subprocess.Popen(args, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        # kill while it writes: a random moment after it claims its first new name
        claimed = len(keys(client, bucket, "k/.archiver/claims/"))
        deadline = time.monotonic() + 60
        while (proc.poll() is None and time.monotonic() < deadline
               and len(keys(client, bucket, "k/.archiver/claims/")) == claimed):
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.3))
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        unfinished += check_no_half_bag(client, bucket, "k/", f"after kill {kill} (CRASH_SEED={seed})")
    print(f"unfinished bags left by {kills} kills: {unfinished}")
    assert unfinished > 0, "no kill fell while a bag was being written: the test proved nothing"
    time.sleep(2.2)  # every claim's lease has run out
    done = subprocess.run(args + ["--json"], env=env, cwd=REPO, capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert json.loads(done.stdout)["captured"] == len(pages)
    check_no_half_bag(client, bucket, "k/", f"after the re-run (CRASH_SEED={seed})")
    listed = keys(client, bucket, "k/")
    visible = visible_bags(client, bucket, "k/")
    claims = {k.split("/")[-1] for k in listed if k.startswith(".archiver/claims/")}
    assert claims == set(visible), "every unfinished bag was cleaned, with its claim"
    assert {k.split("/")[0] for k in listed if not k.startswith(".archiver/")} == set(visible)
    logged = {e["bag"] for e in event_objects(client, bucket, "k/") if e["type"] == "capture"}
    assert logged == set(visible)  # a bag killed before its event is logged as recovered


def check_no_half_bag(client, bucket: str, prefix: str, when: str) -> int:
    """Every bag a reader sees is whole; return how many bags are there unfinished (unseen)."""
    listed = keys(client, bucket, prefix)
    visible = visible_bags(client, bucket, prefix)
    for name, marker in visible.items():
        for path, size in marker["files"].items():
            assert listed.get(f"{name}/{path}") == size, f"{name}/{path} missing or short {when}"
        assert verify_bag(S3Bag(client, bucket, f"{prefix}{name}")).valid, when
    return len({k.split("/")[0] for k in listed if not k.startswith(".archiver/")} - set(visible))


@pytest.mark.slow
def test_sync_into_an_s3_root_knows_its_prior_captures(s3_server, cache, tmp_path):
    sync_into_s3(s3_server.endpoint_url, s3_server.new_bucket(), tmp_path)


@pytest.mark.seaweedfs
@pytest.mark.slow
def test_sync_into_an_s3_root_on_seaweedfs(seaweedfs, cache, tmp_path):
    sync_into_s3(seaweedfs, "archiver-mirror", tmp_path)


def sync_into_s3(endpoint: str, bucket: str, tmp_path: Path) -> None:
    from sites import WordPressSite

    client = make_client(endpoint)
    url = f"s3://{bucket}/wp"
    site = WordPressSite(posts=4)
    try:
        path = tmp_path / "collection.toml"
        path.write_text(f'[collection]\nid = "wp"\n\n[[sites]]\nurl = "{site.base}"\n')

        def run() -> dict:
            result = CliRunner().invoke(app, ["sync", str(path), "--root", url, "--endpoint-url",
                                              endpoint, "--delay", "0", "--retries", "0", "--json"])
            assert result.exit_code == 0, result.output
            return json.loads(result.stdout)

        assert run()["counts"]["new"] == 4
        site.edit("post-1", "An update from the distro.")
        site.remove("post-2")
        second = run()["counts"]
        assert (second["new"], second["changed"], second["unchanged-not-fetched"], second["gone"]) == (0, 1, 2, 1)
    finally:
        site.close()
    visible = visible_bags(client, bucket, "wp/")
    assert len(visible) == 5 and all(m["metadata"]["url"].startswith(site.base) for m in visible.values())
    assert all(m["metadata"] and verify_bag(S3Bag(client, bucket, f"wp/{n}")).valid for n, m in visible.items())
    kinds = [e["type"] for e in event_objects(client, bucket, "wp/")]
    assert kinds.count("capture") == 5 and kinds.count("gone") == 1 and kinds.count("seen") >= 4


def test_a_writer_whose_claim_was_taken_over_stops_and_deletes_nothing(s3_server, tmp_path):
    bucket = s3_server.new_bucket()
    client = s3_server.client()
    collection = S3CollectionWriter(client, f"s3://{bucket}/c", tmp_path, lease=60)
    folder = build_bag(tmp_path / "b", "x-20261130T120000Z")
    real_put = collection.site.put
    sent: list[str] = []

    def put_then_lose_the_claim(name: str, path: str, *args) -> None:
        real_put(name, path, *args)
        sent.append(path)
        if len(sent) == 2:  # another run takes the claim over (say, after a long suspension)
            put(client, bucket, f"c/.archiver/claims/{name}", claim_body("elsewhere:1:z", 600))

    collection.site.put = put_then_lose_the_claim  # type: ignore[method-assign]
    with pytest.raises(Exception, match="claim"):
        collection.publish(folder, "x-20261130T120000Z")
    listed = keys(client, bucket, "c/")
    assert ".archiver/bags/x-20261130T120000Z.json" not in listed  # never made visible
    assert json.loads(body(client, bucket, "c/.archiver/claims/x-20261130T120000Z"))["owner"] == "elsewhere:1:z"
    assert len([k for k in listed if k.startswith("x-20261130T120000Z/")]) == len(sent)  # the new owner's to clean


def test_working_roots_of_killed_runs_are_removed_but_not_a_new_one(s3_server, cache, tmp_path):
    from archiver.collection.s3store import cache_folder

    bucket = s3_server.new_bucket()
    work = cache_folder(s3_server.endpoint_url, bucket, "c") / "work"
    dead, young = work / ".tmp-run-dead", work / ".tmp-run-young"
    for folder in (dead, young):
        (folder / "half-bag").mkdir(parents=True)
    os.utime(dead, (time.time() - 3600, time.time() - 3600))
    with open_s3_collection(f"s3://{bucket}/c", s3_server.endpoint_url) as root:
        assert root.parent == work and root.is_dir()
    assert not dead.exists() and young.exists()  # another run may have just created it
    assert sorted(p.name for p in work.iterdir()) == [young.name]
