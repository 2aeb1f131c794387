"""RFC 3161 proof of capture time against a real Time-Stamp Authority on
127.0.0.1: an HTTP front end whose replies are made by ``openssl ts -reply``
with a CA and a TSA certificate made here by the openssl CLI."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import bagit
import pytest
from typer.testing import CliRunner

from s3fixture import s3_server  # noqa: F401  (fixture)

from archiver.bagit.timestamp import STAMPED_MANIFEST, TIMESTAMP_FILE
from archiver.bagit.verify import verify_bag
from archiver.capture import timestamp_client
from archiver.capture.snapshot import SnapshotOptions, snapshot
from archiver.capture.sources import load_manifest
from archiver.cli import app
from archiver.clock import parse_iso, utc_now
from archiver.collection.events import read_events
from archiver.errors import ManifestError

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI")
PAGE = "<html><head><title>On Time</title></head><body><article><p>{}</p></article></body></html>"


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca(folder: Path, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
            "-days", "2", "-subj", f"/CN={name}", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=folder)
    return folder / "ca.pem"


TSA_CONFIG = """
[ tsa ]
default_tsa = tsa_config
[ tsa_config ]
dir = {dir}
serial = $dir/serial
crypto_device = builtin
signer_cert = $dir/tsa.pem
signer_key = $dir/tsa.key
signer_digest = sha256
default_policy = 1.2.3.4.1
digests = sha256, sha384, sha512
accuracy = secs:1
ordering = no
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = sha256
"""


class TSA:
    """openssl's TSA behind http.server; ``mode`` picks good, garbage, slow or 500."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.ca = make_ca(folder, "Archiver Test TSA CA")
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "tsa.key", "-out", "tsa.csr",
                "-subj", "/CN=Archiver Test TSA", cwd=folder)
        (folder / "ext.cnf").write_text("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                                        "extendedKeyUsage=critical,timeStamping\n")
        openssl("x509", "-req", "-in", "tsa.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                "-out", "tsa.pem", "-days", "2", "-extfile", "ext.cnf", cwd=folder)
        (folder / "serial").write_text("01\n")
        (folder / "tsa.cnf").write_text(TSA_CONFIG.format(dir=folder))
        self.mode = "good"
        self.requests = 0
        self.lock = threading.Lock()
        tsa = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                query = self.rfile.read(int(self.headers["Content-Length"]))
                tsa.requests += 1
                if tsa.mode == "slow":
                    time.sleep(3)
                if tsa.mode == "500":
                    return self.answer(500, b"broken")
                if tsa.mode == "garbage":
                    return self.answer(200, b"\x30\x03not a time-stamp reply")
                with tsa.lock:
                    (folder / "query.tsq").write_bytes(query)
                    openssl("ts", "-reply", "-config", "tsa.cnf", "-queryfile", "query.tsq",
                            "-out", "reply.tsr", cwd=folder)
                    reply = (folder / "reply.tsr").read_bytes()
                self.answer(200, reply)

            def answer(self, status: int, body: bytes) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/timestamp-reply")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the client gave up (the slow case)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/tsr"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def tsa(tmp_path_factory):
    server = TSA(tmp_path_factory.mktemp("tsa"))
    yield server
    server.server.shutdown()


@pytest.fixture(autouse=True)
def good_tsa(tsa):
    tsa.mode = "good"


def capture(tmp_path: Path, url: str | None, *texts: str) -> tuple[Path, list[Path]]:
    root = tmp_path / "bags"
    pages = []
    for i, text in enumerate(texts or ("A text captured at a known time.",)):
        page = tmp_path / f"page{i}.html"
        page.write_text(PAGE.format(text))
        pages.append(str(page))
    results = snapshot(pages, SnapshotOptions(root=root, timestamp_url=url))
    assert [r.outcome for r in results] == ["captured"] * len(pages), results
    return root, [root / r.bag for r in results]  # type: ignore[operator]


def stamp_events(root: Path) -> list[dict]:
    return [e.detail["timestamp"] for e in read_events(root).events if e.type == "capture"]


def test_a_stamped_bag_verifies_with_the_attested_time(tmp_path, tsa):
    before = utc_now()
    root, [bag] = capture(tmp_path, tsa.url)
    assert (bag / TIMESTAMP_FILE).is_file()
    [event] = stamp_events(root)
    assert event["stamped"] is True and event["tsa_url"] == tsa.url
    report = verify_bag(bag, tsa_ca=tsa.ca.read_bytes())
    assert report.valid and report.warnings == [], report.to_dict()
    assert report.timestamp["status"] == "verified"
    attested = parse_iso(report.timestamp["time"])
    assert before - timedelta(seconds=2) <= attested <= utc_now() + timedelta(seconds=2)
    assert report.timestamp["time"] == event["time"]
    # openssl agrees on its own, and bagit-python still finds the bag valid.
    check = subprocess.run(["openssl", "ts", "-verify", "-in", str(bag / TIMESTAMP_FILE), "-data",
                            str(bag / STAMPED_MANIFEST), "-CAfile", str(tsa.ca)], capture_output=True, text=True)
    assert "Verification: OK" in check.stdout, check.stdout + check.stderr
    bagit.Bag(str(bag)).validate()


def test_without_a_ca_the_signature_is_said_unchecked_never_verified(tmp_path, tsa):
    _, [bag] = capture(tmp_path, tsa.url)
    report = verify_bag(bag)
    assert report.valid and report.timestamp["status"] == "unchecked"
    assert [w.code for w in report.warnings] == ["timestamp-signature-unchecked"]
    assert "not checked" in report.warnings[0].message


def test_a_changed_tag_manifest_or_a_wrong_ca_is_a_problem(tmp_path, tsa):
    _, [bag] = capture(tmp_path, tsa.url)
    other_ca = make_ca(tmp_path / "other", "Archiver Test TSA CA").read_bytes()  # same name, other key
    report = verify_bag(bag, tsa_ca=other_ca)
    assert not report.valid and [p.code for p in report.problems] == ["timestamp-signature-invalid"]
    manifest = bag / STAMPED_MANIFEST
    lines = manifest.read_bytes().splitlines(keepends=True)
    manifest.write_bytes(b"".join(reversed(lines)))  # same entries, other bytes: still a valid bag
    report = verify_bag(bag, tsa_ca=tsa.ca.read_bytes())
    assert not report.valid and [p.code for p in report.problems] == ["timestamp-mismatch"]
    (bag / TIMESTAMP_FILE).write_bytes(b"junk")
    assert [p.code for p in verify_bag(bag).problems] == ["timestamp-malformed"]


@pytest.mark.parametrize("mode, reason", [("garbage", "not an RFC 3161 time-stamp reply"),
                                          ("500", "answered HTTP 500"),
                                          ("slow", "did not answer in time"),
                                          ("down", "cannot be reached")])
def test_a_failing_tsa_leaves_the_bag_unstamped_never_the_batch(tmp_path, tsa, monkeypatch, mode, reason):
    monkeypatch.setattr(timestamp_client, "READ_TIMEOUT", 1.0)
    url = tsa.url
    if mode == "down":
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            url = f"http://127.0.0.1:{s.getsockname()[1]}/tsr"  # closed when the block ends
    tsa.mode = mode
    root, bags = capture(tmp_path, url, "First text.", "Second text.")
    assert all(not (b / TIMESTAMP_FILE).exists() for b in bags)
    for event in stamp_events(root):
        assert event["stamped"] is False and reason in event["reason"], event
    results = snapshot([str(tmp_path / "page0.html")], SnapshotOptions(root=root, timestamp_url=url, force=True))
    assert results[0].outcome == "captured" and reason in results[0].timestamp["reason"]
    assert all(verify_bag(b).valid and verify_bag(b).timestamp is None for b in bags)


def test_cli_snapshot_and_verify_with_a_manifest_timestamp_url(tmp_path, tsa):
    page = tmp_path / "page.html"
    page.write_text(PAGE.format("Stamped from a manifest."))
    manifest = tmp_path / "c.toml"
    manifest.write_text(f'[collection]\nid = "c"\ntimestamp_url = "{tsa.url}"\n\n'
                        f'[[sources]]\nurl = "{page.as_uri()}"\n')
    runner = CliRunner()
    root = tmp_path / "bags"
    made = runner.invoke(app, ["snapshot", "--manifest", str(manifest), "--root", str(root), "--json"])
    assert made.exit_code == 0, made.output
    [source] = json.loads(made.stdout)["sources"]
    assert source["timestamp"]["stamped"] is True
    bag = root / source["bag"]
    checked = runner.invoke(app, ["verify", str(bag), "--tsa-ca", str(tsa.ca), "--json"])
    assert checked.exit_code == 0, checked.output
    [report] = json.loads(checked.stdout)["bags"]
    assert report["timestamp"]["status"] == "verified"
    bad_ca = runner.invoke(app, ["verify", str(bag), "--tsa-ca", str(manifest), "--json"])
    assert bad_ca.exit_code == 2 and "not a PEM certificate" in json.loads(bad_ca.stdout)["error"]


def test_a_manifest_timestamp_url_must_be_http(tmp_path):
    manifest = tmp_path / "c.toml"
    manifest.write_text('[collection]\nid = "c"\ntimestamp_url = "file:///etc/passwd"\n\n'
                        '[[sources]]\nurl = "https://example.org/a"\n')
    with pytest.raises(ManifestError, match="timestamp_url must be an http"):
        load_manifest(manifest)


def test_a_mirrored_stamped_bag_keeps_a_verifiable_token(tmp_path, tsa):
    from archiver.replication import mirror_collection, open_target

    root, [bag] = capture(tmp_path, tsa.url)
    report = mirror_collection(root, open_target(tmp_path / "copy"))
    assert report.ok and report.count("mirrored") == 1
    copied = tmp_path / "copy" / bag.name
    assert (copied / TIMESTAMP_FILE).read_bytes() == (bag / TIMESTAMP_FILE).read_bytes()
    assert verify_bag(copied, tsa_ca=tsa.ca.read_bytes()).timestamp["status"] == "verified"


def test_audit_checks_tokens_and_logs_the_attested_time(tmp_path, tsa):
    root, [bag] = capture(tmp_path, tsa.url)
    runner = CliRunner()
    done = runner.invoke(app, ["audit", "--root", str(root), "--max-age", "0h", "--tsa-ca", str(tsa.ca), "--json"])
    assert done.exit_code == 0, done.output
    [fixity] = [e for e in read_events(root).events if e.type == "fixity"]
    assert fixity.outcome == "success" and fixity.detail["timestamp"]["status"] == "verified"
    (bag / STAMPED_MANIFEST).write_bytes((bag / STAMPED_MANIFEST).read_bytes() + b"\n")
    failed = runner.invoke(app, ["audit", "--root", str(root), "--max-age", "0h", "--tsa-ca", str(tsa.ca), "--json"])
    assert failed.exit_code == 1 and "timestamp-mismatch" in failed.stdout


def test_a_stamped_bag_verifies_in_place_on_s3(tmp_path, tsa, s3_server):
    from archiver.replication import mirror_collection, open_target

    root, [bag] = capture(tmp_path, tsa.url)
    url = f"s3://{s3_server.new_bucket()}/copy"
    assert mirror_collection(root, open_target(url, s3_server.endpoint_url)).ok
    checked = CliRunner().invoke(app, ["verify", f"{url}/{bag.name}", "--tsa-ca", str(tsa.ca), "--json",
                                       "--endpoint-url", s3_server.endpoint_url])
    assert checked.exit_code == 0, checked.output
    assert json.loads(checked.stdout)["bags"][0]["timestamp"]["status"] == "verified"


def test_sync_stamps_with_its_option_over_the_manifest(tmp_path, tsa):
    page = tmp_path / "page.html"
    page.write_text(PAGE.format("Kept in sync, stamped."))
    manifest = tmp_path / "c.toml"
    manifest.write_text('[collection]\nid = "c"\ntimestamp_url = "http://127.0.0.1:9/unused"\n\n'
                        f'[[sources]]\nurl = "{page.as_uri()}"\n')
    root = tmp_path / "bags"
    done = CliRunner().invoke(app, ["sync", str(manifest), "--root", str(root), "--timestamp-url", tsa.url,
                                    "--json"])
    assert done.exit_code == 0, done.output
    [stamp] = stamp_events(root)
    assert stamp["stamped"] is True and stamp["tsa_url"] == tsa.url
    assert verify_bag(next(root.glob("page-*")), tsa_ca=tsa.ca.read_bytes()).timestamp["status"] == "verified"


def test_a_stamped_bag_exported_as_tar_verifies_its_token_in_place(tmp_path, tsa):
    root, [bag] = capture(tmp_path, tsa.url)
    runner = CliRunner()
    out = tmp_path / "out"
    result = runner.invoke(app, ["export", "--root", str(root), "--all", "--format", "tar", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    [tar] = sorted(out.glob("*.tar"))
    good = runner.invoke(app, ["verify", str(tar), "--tsa-ca", str(tsa.ca), "--json"])
    assert good.exit_code == 0, good.output
    [report] = json.loads(good.stdout)["bags"]
    assert report["timestamp"]["status"] == "verified"
    assert report["timestamp"]["tsa"] == "CN=Archiver Test TSA"
    other_ca = make_ca(tmp_path / "other", "Archiver Test TSA CA")
    bad = runner.invoke(app, ["verify", str(tar), "--tsa-ca", str(other_ca), "--json"])
    assert bad.exit_code == 1, bad.output
    assert "timestamp-signature-invalid" in bad.stdout
