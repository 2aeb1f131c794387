"""WACZ export: `wacz validate` (py-wacz) passes, and pywb replays the captured pages."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import LoopbackServer
from exchange_fixture import export as run_export
from exchange_fixture import CHUNKED_PAGE, GZ_PAGE, Collection, make_collection

from archiver.cli import app
from archiver.exchange.wacz import export_wacz

runner = CliRunner()
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def collection(tmp_path_factory) -> Collection:
    server = LoopbackServer()
    try:
        yield make_collection(tmp_path_factory.mktemp("wacz") / "bags", server)
    finally:
        server.close()


def export(root: Path, out: Path, *selection: str) -> tuple[int, dict]:
    return run_export(root, out, "wacz", *selection)


def wacz_validate(path: Path) -> tuple[int, str]:
    done = subprocess.run([str(BIN / "wacz"), "validate", "-f", str(path)], capture_output=True, text=True,
                          timeout=120)
    return done.returncode, done.stdout + done.stderr


def copy_collection(collection: Collection, tmp_path: Path) -> Path:
    root = tmp_path / "bags"
    shutil.copytree(collection.root, root, symlinks=True)
    return root


def test_export_passes_wacz_validate_and_holds_the_bags_as_they_are(collection, tmp_path) -> None:
    out = tmp_path / "all.wacz"
    code, document = export(collection.root, out, "--all")
    assert code == 0 and document["ok"], document
    assert len(document["pages"]) == 5
    status, output = wacz_validate(out)
    assert status == 0 and "the passed WACZ is valid" in output, output
    with zipfile.ZipFile(out) as wacz:
        names = wacz.namelist()
        package = json.loads(wacz.read("datapackage.json"))
        digest = json.loads(wacz.read("datapackage-digest.json"))
        assert digest == {"path": "datapackage.json",
                          "hash": "sha256:" + hashlib.sha256(wacz.read("datapackage.json")).hexdigest()}
        assert package["wacz_version"] == "1.1.1" and package["profile"] == "data-package"
        listed = {r["path"]: r for r in package["resources"]}
        assert set(listed) == set(names) - {"datapackage.json", "datapackage-digest.json"}
        for path, resource in listed.items():
            data = wacz.read(path)
            assert resource["hash"] == "sha256:" + hashlib.sha256(data).hexdigest()
            assert resource["bytes"] == len(data)
        pages = [json.loads(line) for line in wacz.read("pages/pages.jsonl").decode("utf-8").splitlines()]
        assert pages[0]["format"] == "json-pages-1.0"
        for page in document["pages"]:
            info = wacz.getinfo(page["warc"])
            assert info.compress_type == zipfile.ZIP_STORED  # no recompression: replay reads by range
            bag = collection.root / page["bag"]
            assert wacz.read(page["warc"]) == (bag / "data" / "capture.warc.gz").read_bytes()
            entry = next(p for p in pages[1:] if p["id"] == page["bag"])
            metadata = json.loads((bag / "data" / "metadata.json").read_text())
            assert entry["text"] == (bag / "data" / "text.txt").read_text("utf-8")
            assert entry["url"] == metadata["url"] and entry["title"] == metadata["title"]
            assert entry["ts"] == metadata["retrieved"]
        index = wacz.read("indexes/index.cdx").decode("utf-8").splitlines()
    assert index == sorted(index) and len(index) == 5
    assert {json.loads(line.split(" ", 2)[2])["filename"] for line in index} == \
        {Path(p["warc"]).name for p in document["pages"]}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


def test_url_selects_every_capture_of_that_url(collection, tmp_path) -> None:
    code, document = export(collection.root, tmp_path / "essay.wacz", "--url", collection.essay_url)
    assert code == 0, document
    assert [p["bag"] for p in document["pages"]] == collection.bags_of(collection.essay_url)
    assert len(document["pages"]) == 3


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str) -> tuple[int, dict, bytes]:
    request = urllib.request.Request(url, headers={"Accept-Encoding": "identity"})
    with urllib.request.urlopen(request, timeout=30) as response:
        body = response.read()
        headers = {k.lower(): v for k, v in response.headers.items()}
        if headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        return response.status, headers, body


def _wait_for(url: str, process: subprocess.Popen, log: Path, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"pywb exited: {log.read_text()[-2000:]}")
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"pywb did not answer within {seconds} s: {log.read_text()[-2000:]}")


@pytest.mark.slow
def test_pywb_replays_each_capture_with_the_body_as_captured(collection, tmp_path) -> None:
    out = tmp_path / "replay.wacz"
    code, document = export(collection.root, out, "--all")
    assert code == 0, document
    site = tmp_path / "pywb"
    site.mkdir()
    env = {**os.environ, "HOME": str(tmp_path)}
    for args in (["init", "archive"], ["add", "--unpack-wacz", "archive", str(out)]):
        done = subprocess.run([str(BIN / "wb-manager"), *args], cwd=site, capture_output=True, text=True,
                              timeout=120, env=env)
        assert done.returncode == 0, done.stderr
    port = _free_port()
    log = tmp_path / "wayback.log"
    with open(log, "wb") as log_handle:
        process = subprocess.Popen([str(BIN / "wayback"), "--bind", "127.0.0.1", "-p", str(port)], cwd=site,
                                   stdout=log_handle, stderr=subprocess.STDOUT, env=env)
    try:
        base = f"http://127.0.0.1:{port}/archive"
        _wait_for(f"http://127.0.0.1:{port}/", process, log)
        by_bag = {p["bag"]: p for p in document["pages"]}
        stamps = {bag: page["ts"].replace("-", "").replace(":", "").replace("T", "").rstrip("Z")
                  for bag, page in by_bag.items()}
        # The gzip-encoded page and the chunked page replay with exactly the bytes the server sent.
        for url, expected in ((collection.gz_url, GZ_PAGE), (collection.chunked_url, CHUNKED_PAGE)):
            bag = next(b for b, p in by_bag.items() if p["url"] == url)
            status, headers, body = _get(f"{base}/{stamps[bag]}id_/{url}")
            assert status == 200 and body == expected, (url, headers)
        # Every capture of the essay replays as that capture, not another one.
        for bag, expected in zip(collection.bags_of(collection.essay_url), collection.essay_bodies):
            status, headers, body = _get(f"{base}/{stamps[bag]}id_/{collection.essay_url}")
            assert status == 200 and body == expected, bag
            assert headers["memento-datetime"]  # pywb answered from the archive
        # The rewritten (browsing) view holds the captured text too.
        last = collection.bags_of(collection.essay_url)[-1]
        _status, _headers, page = _get(f"{base}/{stamps[last]}mp_/{collection.essay_url}")
        assert b"says something plain and long enough to count as text" in page
        assert b"draft 3" in page
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_a_damaged_bag_is_left_out_with_a_problem_and_the_rest_is_valid(collection, tmp_path) -> None:
    root = copy_collection(collection, tmp_path)
    damaged = collection.bags_of(collection.essay_url)[1]
    warc = root / damaged / "data" / "capture.warc.gz"
    data = bytearray(warc.read_bytes())
    data[-5] ^= 0xFF
    warc.write_bytes(bytes(data))
    out = tmp_path / "partial.wacz"
    code, document = export(root, out, "--all")
    assert code == 1 and not document["ok"]
    assert [(p["code"], p["path"]) for p in document["problems"]] == [("checksum-mismatch", damaged)]
    assert damaged not in {p["bag"] for p in document["pages"]} and len(document["pages"]) == 4
    assert wacz_validate(out)[0] == 0


def test_a_symlinked_warc_is_never_followed(collection, tmp_path) -> None:
    root = copy_collection(collection, tmp_path)
    bag = collection.bags_of(collection.gz_url)[0]
    outside = tmp_path / "outside.warc.gz"
    shutil.copy(root / bag / "data" / "capture.warc.gz", outside)
    (root / bag / "data" / "capture.warc.gz").unlink()
    (root / bag / "data" / "capture.warc.gz").symlink_to(outside)
    code, document = export(root, tmp_path / "x.wacz", bag)
    assert code == 2, document  # nothing could be exported
    assert "symbolic link" in document["error"]
    assert not (tmp_path / "x.wacz").exists()


@pytest.mark.parametrize("name", ["exists.wacz", "not-a-wacz.zip"])
def test_a_bad_out_is_a_usage_error_and_nothing_is_written(collection, tmp_path, name) -> None:
    out = tmp_path / name
    if name == "exists.wacz":
        out.write_bytes(b"keep me")
    code, document = export(collection.root, out, "--all")
    assert code == 2 and "error" in document
    assert sorted(p.name for p in tmp_path.iterdir()) == ([name] if name == "exists.wacz" else [])
    if name == "exists.wacz":
        assert out.read_bytes() == b"keep me"


def test_usage_errors(collection, tmp_path) -> None:
    for args in (["--all", "--format", "mobi"], ["--format", "wacz"]):
        result = runner.invoke(app, ["export", *args, "--root", str(collection.root), "--out",
                                     str(tmp_path / "o.wacz")])
        assert result.exit_code == 2, args
    code, document = export(collection.root, tmp_path / "o.wacz", "no-such-bag")
    assert code == 2 and "no bag named 'no-such-bag'" in document["error"]
    assert not (tmp_path / "o.wacz").exists()


def test_a_symlinked_bag_folder_in_the_collection_is_never_followed(collection, tmp_path) -> None:
    root = copy_collection(collection, tmp_path)
    outside = tmp_path / "elsewhere"
    shutil.move(str(root / collection.bags_of(collection.gz_url)[0]), outside)
    (root / "planted-20261130T000000Z").symlink_to(outside, target_is_directory=True)
    report = export_wacz(root, None, None, tmp_path / "linked.wacz")
    assert not report.ok
    assert [(p.code, p.path) for p in report.problems] == [("symlink-in-collection", "planted-20261130T000000Z")]
    assert len(report.pages) == 4 and wacz_validate(tmp_path / "linked.wacz")[0] == 0
