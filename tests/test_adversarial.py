"""Bags crafted to attack ``archiver verify``, and WARCs crafted to attack
``archiver rebuild``, through the real CLI in a subprocess.

Each attack must give a clear problem report (exit 1, a stable problem code
naming the file), read nothing outside the bag, and not blow up memory.

- "Reads nothing outside": the folder the attacks point at is watched with
  Linux inotify while the verifier runs; any open or read of anything in it
  is an event, and the test asserts there were none.
- "Memory": the peak RSS of the verify/rebuild subprocess (and its pool
  workers) is measured with ``resource.getrusage(RUSAGE_CHILDREN)`` in a fresh
  wrapper process, and compared with the peak for a small valid bag.

Big files are generated in tmp_path at test time, never committed.
"""

from __future__ import annotations

import ctypes
import gzip
import hashlib
import io
import json
import os
import struct
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from archiver.bagit.write import write_bag
from fixtures.bags.bag_cases import build_bag, seal, sha

REPO = Path(__file__).resolve().parent.parent
MB = 1024 * 1024
ALGS = ("sha256", "sha512")

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify and ru_maxrss in KiB: Linux")

# Runs a command and reports the peak RSS of it and its descendants; an address-space
# limit turns a runaway allocation into a MemoryError instead of an OOM-killed CI machine.
_MEASURE = r"""
import resource, subprocess, sys
limit = int(sys.argv[1])
def cap():
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
proc = subprocess.run(sys.argv[2:], capture_output=True, preexec_fn=cap)
sys.stdout.buffer.write(proc.stdout)
sys.stderr.buffer.write(proc.stderr)
sys.stderr.write(f"\nPEAK-RSS-KIB {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}\n")
sys.exit(proc.returncode)
"""
ADDRESS_SPACE_LIMIT = 3 * 1024 * MB


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str
    peak_mb: float

    def json(self) -> dict:
        return json.loads(self.stdout)


def run_cli(*args: str) -> Run:
    proc = subprocess.run([sys.executable, "-c", _MEASURE, str(ADDRESS_SPACE_LIMIT), sys.executable, "-m",
                           "archiver.cli", *args], cwd=REPO, capture_output=True, text=True, timeout=300)
    stderr, _, peak = proc.stderr.rpartition("\nPEAK-RSS-KIB ")
    return Run(proc.returncode, proc.stdout, stderr, int(peak) / 1024)


class Watch:
    """inotify on one folder: every open, read or listing of it or a file in it."""

    IN_ACCESS, IN_OPEN = 0x1, 0x20

    def __init__(self, folder: Path) -> None:
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self.libc.inotify_init1(os.O_NONBLOCK)
        if self.fd < 0:
            pytest.skip("inotify is not available")
        if self.libc.inotify_add_watch(self.fd, str(folder).encode(), self.IN_ACCESS | self.IN_OPEN) < 0:
            pytest.skip("inotify watch failed")

    def events(self) -> list[tuple[int, str]]:
        found = []
        while True:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                return found
            offset = 0
            while offset < len(data):
                _wd, mask, _cookie, length = struct.unpack_from("iIII", data, offset)
                name = data[offset + 16:offset + 16 + length].rstrip(b"\0").decode(errors="replace")
                found.append((mask, name))
                offset += 16 + length

    def close(self) -> None:
        os.close(self.fd)


SECRET = b"the secret the bag points at\n"


def test_the_watch_sees_a_read_through_a_symlink(tmp_path) -> None:
    """The control: the inotify watch does see what a verifier following a link would do."""
    folder = tmp_path / "watched"
    folder.mkdir()
    (folder / "secret.txt").write_bytes(SECRET)
    os.symlink(folder / "secret.txt", tmp_path / "link.txt")
    watch = Watch(folder)
    try:
        assert watch.events() == []
        subprocess.run([sys.executable, "-c", f"open({str(tmp_path / 'link.txt')!r}, 'rb').read()"], check=True)
        assert {name for _mask, name in watch.events()} == {"secret.txt"}
    finally:
        watch.close()


@pytest.fixture
def outside_watch(tmp_path: Path):
    """A folder beside the bags, holding what a malicious bag points at, and its watch."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret.txt").write_bytes(SECRET)
    (folder / "bag-info.txt").write_bytes(b"Source-Organization: Evil\nPayload-Oxum: 1.1\n")
    (folder / "manifest-sha256.txt").write_bytes(f"{sha('sha256', b'x')}  data/x.txt\n".encode())
    watch = Watch(folder)
    yield folder, watch
    watch.close()


@pytest.fixture
def outside(outside_watch):
    """The watched folder; at the end of the test, nothing in it may have been opened or read."""
    folder, watch = outside_watch
    yield folder
    events = watch.events()
    assert events == [], f"something touched {folder}: {events}"


@pytest.fixture(scope="module")
def baseline_mb(tmp_path_factory) -> float:
    bag = build_bag(tmp_path_factory.mktemp("baseline") / "bag")
    run = run_cli("verify", "--json", str(bag))
    assert run.code == 0, run.stdout + run.stderr
    return run.peak_mb


def add_manifest_lines(bag: Path, path: str, content: bytes) -> None:
    for alg in ALGS:
        with open(bag / f"manifest-{alg}.txt", "ab") as f:
            f.write(f"{sha(alg, content)}  {path}\n".encode())


def verify_attack(bag: Path, *extra: str) -> tuple[Run, dict, set[str]]:
    run = run_cli("verify", "--json", *extra, str(bag))
    assert "Traceback" not in run.stderr, run.stderr
    assert run.code == 1, run.stdout + run.stderr
    [report] = run.json()["bags"]
    assert report["valid"] is False
    assert all(p["message"] and (p["path"] or p["code"] == "problems-truncated") for p in report["problems"]), \
        "every problem names a file (a summary of elided problems excepted) and says why"
    return run, report, {p["code"] for p in report["problems"]}


# -- paths that lead outside --------------------------------------------------------------------

def test_dotdot_paths_are_reported_and_never_opened(tmp_path, outside, baseline_mb) -> None:
    bag = build_bag(tmp_path / "bags" / "dotdot", tag_manifest=False)
    add_manifest_lines(bag, "data/../../../outside/secret.txt", SECRET)
    add_manifest_lines(bag, "../outside/secret.txt", SECRET)
    seal(bag)
    _run, report, codes = verify_attack(bag)
    assert codes == {"path-unsafe"}
    unsafe = [p for p in report["problems"] if p["code"] == "path-unsafe"]
    assert len(unsafe) == 2 * len(ALGS) and all("'..'" in p["message"] for p in unsafe)


def test_absolute_paths_are_reported_and_never_opened(tmp_path, outside) -> None:
    bag = build_bag(tmp_path / "bags" / "absolute", tag_manifest=False)
    add_manifest_lines(bag, str(outside / "secret.txt"), SECRET)
    seal(bag)
    _run, report, codes = verify_attack(bag)
    assert codes == {"path-unsafe"}
    assert all("absolute" in p["message"] for p in report["problems"])


def test_symlinks_leading_outside_are_reported_and_never_followed(tmp_path, outside) -> None:
    bag = build_bag(tmp_path / "bags" / "symlinks", tag_manifest=False)
    os.symlink(outside / "secret.txt", bag / "data" / "link.txt")
    os.symlink(outside, bag / "data" / "folder")
    # Manifest entries whose digests are right for the files the links lead to:
    # following a link would make the bag look valid.
    add_manifest_lines(bag, "data/link.txt", SECRET)
    add_manifest_lines(bag, "data/folder/secret.txt", SECRET)
    seal(bag)
    _run, report, codes = verify_attack(bag)
    assert "symlink-in-bag" in codes
    assert {p["path"] for p in report["problems"] if p["code"] == "symlink-in-bag"} >= {"data/link.txt", "data/folder"}


def test_symlinked_tag_files_are_reported_and_never_followed(tmp_path, outside) -> None:
    bag = build_bag(tmp_path / "bags" / "tag-links")
    for name in ("bag-info.txt", "manifest-sha256.txt"):
        (bag / name).unlink()
        os.symlink(outside / name, bag / name)
    _run, report, codes = verify_attack(bag)
    linked = {p["path"] for p in report["problems"] if p["code"] == "symlink-in-bag"}
    assert linked == {"bag-info.txt", "manifest-sha256.txt"}, report["problems"]


def test_data_folder_that_is_a_symlink_is_reported_and_never_followed(tmp_path, outside) -> None:
    bag = build_bag(tmp_path / "bags" / "data-link", {"data/secret.txt": SECRET})
    (bag / "data" / "secret.txt").unlink()
    (bag / "data").rmdir()
    os.symlink(outside, bag / "data")
    _run, report, codes = verify_attack(bag)
    assert {"symlink-in-bag", "data-dir-missing", "file-missing"} <= codes, report["problems"]
    assert ("symlink-in-bag", "data") in {(p["code"], p["path"]) for p in report["problems"]}


# -- names with newlines -----------------------------------------------------------------------------

def test_name_with_newline_correctly_encoded_is_valid(tmp_path) -> None:
    bag = write_bag(tmp_path, "newline-names", {"line\nbreak.txt": b"a", "carriage\rreturn.txt": b"b",
                                                "per%0Acent.txt": b"c"}, [])
    run = run_cli("verify", "--json", str(bag))
    assert run.code == 0, run.stdout


FORGED = "x\nOK   other-bag: valid: every checksum verified (1 files, 1 bytes)"


def forgery_bag(folder: Path) -> Path:
    """A file named to look like a verdict on another bag, and an unencoded newline in a manifest."""
    bag = build_bag(folder, tag_manifest=False)
    (bag / "data" / FORGED).write_bytes(b"x")
    with open(bag / "manifest-sha256.txt", "ab") as f:  # a raw LF splits the entry in two lines
        f.write(f"{sha('sha256', b'y')}  data/raw\nnewline.txt\n".encode())
    seal(bag)
    return bag


def test_names_with_newlines_are_reported(tmp_path, outside) -> None:
    bag = forgery_bag(tmp_path / "bags" / "forgery")
    _run, report, codes = verify_attack(bag)
    assert "file-not-in-manifest" in codes and "manifest-line-malformed" in codes
    assert any(p["code"] == "file-not-in-manifest" and p["path"] == f"data/{FORGED}" for p in report["problems"])


def test_names_with_newlines_cannot_forge_report_lines(tmp_path) -> None:
    bag = forgery_bag(tmp_path / "bags" / "forgery")
    human = run_cli("verify", str(bag))
    assert human.code == 1
    lines = human.stdout.splitlines()
    assert lines[0].startswith(f"BAD  {bag}: "), human.stdout
    assert not [line for line in lines if line.startswith("OK")], "a file name forged a verdict line"
    assert all(line.startswith(("BAD  ", "     error ", "     warning ")) for line in lines), human.stdout


def test_utf16_tag_file_without_bom_is_reported_not_a_crash(tmp_path) -> None:
    bag = build_bag(tmp_path / "bags" / "utf16", encoding="UTF-16")
    info = bag / "bag-info.txt"
    info.write_bytes(info.read_bytes()[2:])  # the byte-order mark removed
    seal(bag, encoding="UTF-16")
    _run, _report, codes = verify_attack(bag)
    assert "tag-file-undecodable" in codes


def test_nul_in_a_manifest_path_is_reported(tmp_path, outside) -> None:
    bag = build_bag(tmp_path / "bags" / "nul", tag_manifest=False)
    add_manifest_lines(bag, "data/nul\x00../../outside/secret.txt", SECRET)
    seal(bag)
    _run, report, codes = verify_attack(bag)
    assert codes == {"path-unsafe"}
    assert all("NUL" in p["message"] for p in report["problems"])


def test_path_longer_than_the_os_allows_is_a_clear_error_not_a_crash(tmp_path) -> None:
    """Folders nested past PATH_MAX (made with dir fds, as an attacker's archive could)."""
    bag = build_bag(tmp_path / "bags" / "deep")
    fd = os.open(bag / "data", os.O_RDONLY)
    for _ in range(25):
        os.mkdir("d" * 200, dir_fd=fd)
        inner = os.open("d" * 200, os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = inner
    leaf = os.open("deep.txt", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
    os.write(leaf, b"x")
    os.close(leaf)
    os.close(fd)
    run = run_cli("verify", "--json", str(bag))
    assert "Traceback" not in run.stderr, run.stderr[-2000:]
    assert run.code in (1, 3), run.stdout[-2000:]
    document = run.json()
    reasons = [e["error"] for e in document["errors"]] + [p["message"] for b in document["bags"]
                                                          for p in b["problems"]]
    assert any("too long" in r for r in reasons), reasons


def test_mirror_and_audit_never_follow_a_symlink_outside(tmp_path, outside) -> None:
    """A collection whose bags link outside: mirror refuses them, audit reports them, nothing is read."""
    root = tmp_path / "bags"
    root.mkdir()
    linked_file = write_bag(root, "a-20261125T093000Z", {"text.txt": b"a"}, [])
    linked_folder = write_bag(root, "b-20261125T093000Z", {"text.txt": b"b"}, [])
    os.symlink(outside / "secret.txt", linked_file / "data" / "link.txt")
    os.symlink(outside, linked_folder / "data" / "folder")
    mirror = run_cli("mirror", str(root), str(tmp_path / "copy"), "--json")
    assert "Traceback" not in mirror.stderr and mirror.code == 1, mirror.stdout + mirror.stderr
    assert mirror.json()["failed"] == 2 and mirror.json()["mirrored"] == 0
    copied = [p for p in (tmp_path / "copy").rglob("*") if p.is_file() and SECRET in p.read_bytes()]
    assert copied == [], "the secret was copied into the mirror"
    audit = run_cli("audit", "--root", str(root), "--json")
    assert "Traceback" not in audit.stderr and audit.code == 1, audit.stdout + audit.stderr
    assert {f["bag"] for f in audit.json()["failed"]} == {linked_file.name, linked_folder.name}


def test_mirror_never_writes_through_a_symlink_planted_at_the_target(tmp_path) -> None:
    root = tmp_path / "bags"
    root.mkdir()
    first = write_bag(root, "a-20261125T093000Z", {"text.txt": b"first bag"}, [])
    second = write_bag(root, "b-20261125T093000Z", {"text.txt": b"second bag"}, [])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    target = tmp_path / "copy"
    target.mkdir()
    os.symlink(elsewhere, target / first.name)
    os.symlink(elsewhere, target / f"{second.name}.partial")
    run = run_cli("mirror", str(root), str(target), "--json")
    assert "Traceback" not in run.stderr, run.stderr[-2000:]
    assert list(elsewhere.iterdir()) == [], "the mirror wrote outside its target"
    for bag in (first, second):
        receipt = target / ".archiver" / "receipts" / f"{bag.name}.json"
        if receipt.exists():  # a bag called mirrored is a real folder, the source's byte for byte
            assert not (target / bag.name).is_symlink()
            assert (target / bag.name / "data" / "text.txt").read_bytes() == (bag / "data" / "text.txt").read_bytes()


# -- sizes -----------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_100_mb_single_line_bag_info_is_read_in_bounded_memory(tmp_path, baseline_mb) -> None:
    """RFC 8493 sets no limit on a bag-info value, so this bag is valid: the value is
    read to its end in bounded memory, only its head kept, and a warning says so.
    (Until issue 10 it was refused as INVALID, tag-file-too-large: a resource guard
    reported as a verdict.)"""
    bag = build_bag(tmp_path / "bags" / "huge-info", tag_manifest=False)
    with open(bag / "bag-info.txt", "ab") as f:
        f.write(b"External-Description: ")
        chunk = b"x" * MB
        for _ in range(100):
            f.write(chunk)
        f.write(b"\n")
    seal(bag)
    run = run_cli("verify", "--json", str(bag))
    assert "Traceback" not in run.stderr, run.stderr
    assert run.code == 0, run.stdout + run.stderr
    [report] = run.json()["bags"]
    assert report["valid"] is True and "tag-value-long" in {w["code"] for w in report["warnings"]}
    assert run.peak_mb < baseline_mb + 48, f"peak {run.peak_mb:.0f} MB (baseline {baseline_mb:.0f} MB)"


def test_100_mb_payload_oxum_is_not_judged_in_bounded_memory(tmp_path, baseline_mb) -> None:
    """A Payload-Oxum value archiver would have to read whole to judge the bag:
    "could not verify" (exit 3, the reason on one line), never "invalid"."""
    bag = build_bag(tmp_path / "bags" / "huge-oxum", tag_manifest=False)
    text = (bag / "bag-info.txt").read_bytes().replace(b"Payload-Oxum: ", b"Payload-Oxum: " + b"0" * (100 * MB))
    (bag / "bag-info.txt").write_bytes(text)
    seal(bag)
    run = run_cli("verify", "--json", str(bag))
    assert "Traceback" not in run.stderr, run.stderr
    assert run.code == 3, run.stdout + run.stderr
    document = run.json()
    assert document["bags"] == [] and "Payload-Oxum" in document["errors"][0]["error"]
    assert run.peak_mb < baseline_mb + 48, f"peak {run.peak_mb:.0f} MB (baseline {baseline_mb:.0f} MB)"


@pytest.fixture(scope="module")
def million_line_manifest(tmp_path_factory) -> tuple[Run, dict, set[str], float]:
    """One run of ``verify --completeness-only`` on a bag whose manifest has a million lines."""
    bag = build_bag(tmp_path_factory.mktemp("million") / "bag", tag_manifest=False)
    zeros = "0" * 64
    with open(bag / "manifest-sha256.txt", "ab") as f:
        for start in range(0, 1_000_000, 100_000):
            f.write("".join(f"{zeros}  data/phantom-{i}.txt\n" for i in range(start, start + 100_000)).encode())
    size_mb = (bag / "manifest-sha256.txt").stat().st_size / MB
    seal(bag)
    return (*verify_attack(bag, "--completeness-only"), size_mb)


@pytest.mark.slow
def test_manifest_with_a_million_lines_gives_a_bounded_report(million_line_manifest) -> None:
    run, report, codes, _size_mb = million_line_manifest
    assert "file-missing" in codes and "problems-truncated" in codes
    assert len(report["problems"]) < 20_100, "the report is capped, not a million lines"
    assert len(run.stdout) < 10 * MB


def test_manifest_with_a_million_lines_is_checked_in_bounded_memory(million_line_manifest, baseline_mb) -> None:
    run, _report, _codes, size_mb = million_line_manifest
    # A million names must be held to check completeness; a few times the manifest's size is fair,
    # ten times is not.
    assert run.peak_mb < baseline_mb + 4 * size_mb, (
        f"peak {run.peak_mb:.0f} MB for a {size_mb:.0f} MB manifest (baseline {baseline_mb:.0f} MB)")


# -- WARCs crafted to attack `archiver rebuild` -----------------------------------------------------------

def warc_with_response(body: bytes, headers: list[tuple[str, str]], uri: str = "https://example.org/essay") -> bytes:
    out = io.BytesIO()
    writer = WARCWriter(out, gzip=True)
    http = StatusAndHeaders("200 OK", headers, protocol="HTTP/1.1")
    writer.write_record(writer.create_warc_record(uri, "response", payload=io.BytesIO(body), http_headers=http))
    return out.getvalue()


def gzip_bomb(size: int) -> bytes:
    """gzip of ``size`` bytes of HTML, written a piece at a time (never ``size`` bytes in memory)."""
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=9) as gz:
        gz.write(b"<html><body><p>")
        piece = b"a" * MB
        for _ in range(size // MB):
            gz.write(piece)
    return out.getvalue()


def bag_with_warc(root: Path, name: str, warc: bytes) -> Path:
    metadata = {"url": "https://example.org/essay", "final_url": "https://example.org/essay",
                "retrieved": "2026-11-25T09:30:00Z", "extractor_version": "0"}
    return write_bag(root, name, {"text.txt": b"Title: Old\n\nOld text.\n",
                                  "metadata.json": json.dumps(metadata).encode(),
                                  "capture.warc.gz": warc}, [("Source-Organization", "Example Library")])


def cut_in_half(warc: bytes) -> bytes:
    assert len(warc) > 20_000, "the WARC must be long enough for the cut to land inside the record"
    return warc[:len(warc) // 2]


WARC_ATTACKS = {
    "not-a-warc": lambda: b"this is not a WARC at all\n" * 10,
    "truncated": lambda: cut_in_half(warc_with_response(
        b"<html><body><article><p>" + " ".join(f"word{i}" for i in range(20_000)).encode() + b"</p></article>",
        [("Content-Type", "text/html")])),
    "no-response-record": lambda: gzip.compress(b"WARC/1.0\r\nWARC-Type: warcinfo\r\nWARC-Record-ID: <urn:uuid:1>\r\n"
                                                 b"WARC-Date: 2026-11-25T09:30:00Z\r\nContent-Length: 0\r\n\r\n\r\n\r\n"),
    "content-length-lies": lambda: gzip.compress(
        b"WARC/1.0\r\nWARC-Type: response\r\nWARC-Record-ID: <urn:uuid:2>\r\nWARC-Date: 2026-11-25T09:30:00Z\r\n"
        b"WARC-Target-URI: https://example.org/essay\r\nContent-Type: application/http; msgtype=response\r\n"
        b"Content-Length: 999999999999\r\n\r\nHTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n<p>short</p>"),
}


@pytest.mark.slow
@pytest.mark.parametrize("attack", sorted(WARC_ATTACKS))
def test_rebuild_reports_a_damaged_warc_and_makes_no_bag(tmp_path, attack, baseline_mb) -> None:
    root = tmp_path / "bags"
    root.mkdir()
    bag_with_warc(root, "essay-20261125T093000Z", WARC_ATTACKS[attack]())
    run = run_cli("rebuild", "essay-20261125T093000Z", "--root", str(root), "--json")
    assert "Traceback" not in run.stderr, run.stderr
    assert run.code == 1, run.stdout + run.stderr
    [result] = run.json()["results"]
    assert result["outcome"] == "failed" and result["reason"] and "\n" not in result["reason"]
    assert sorted(p.name for p in root.iterdir() if not p.name.startswith(".")) == ["essay-20261125T093000Z"]
    assert not [p for p in root.iterdir() if p.name.startswith(".tmp-")]


def test_rebuild_never_follows_a_symlinked_warc_outside(tmp_path, outside, outside_watch) -> None:
    root = tmp_path / "bags"
    root.mkdir()
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    bag = bag_with_warc(stranger, "essay-20261125T093000Z", warc_with_response(
        b"<html><body><article><p>" + b"Words from outside the collection. " * 20 + b"</p></article></body></html>",
        [("Content-Type", "text/html")]))
    (outside / "capture.warc.gz").write_bytes((bag / "data" / "capture.warc.gz").read_bytes())
    moved = root / bag.name
    os.rename(bag, moved)
    (moved / "data" / "capture.warc.gz").unlink()
    os.symlink(outside / "capture.warc.gz", moved / "data" / "capture.warc.gz")
    outside_watch[1].events()  # forget this test's own writes
    run = run_cli("rebuild", bag.name, "--root", str(root), "--json")
    assert "Traceback" not in run.stderr, run.stderr[-2000:]
    assert run.json()["results"][0]["outcome"] == "failed"
    assert sorted(p.name for p in root.iterdir() if not p.name.startswith(".")) == [bag.name]


@pytest.mark.slow
def test_rebuild_of_a_warc_gzip_bomb_is_refused_in_bounded_memory(tmp_path, baseline_mb) -> None:
    root = tmp_path / "bags"
    root.mkdir()
    bomb = gzip_bomb(300 * MB)  # rebuild caps a body at 50 MB
    assert len(bomb) < MB
    bag_with_warc(root, "bomb-20261125T093000Z",
                  warc_with_response(bomb, [("Content-Type", "text/html"), ("Content-Encoding", "gzip")]))
    run = run_cli("rebuild", "bomb-20261125T093000Z", "--root", str(root), "--json")
    assert "Traceback" not in run.stderr, run.stderr[-2000:]
    assert run.code == 1, run.stdout + run.stderr[-2000:]
    [result] = run.json()["results"]
    assert result["outcome"] == "failed" and "cap" in result["reason"], result
    assert [p.name for p in root.iterdir() if not p.name.startswith(".")] == ["bomb-20261125T093000Z"]
    assert run.peak_mb < baseline_mb + 150, f"peak {run.peak_mb:.0f} MB for a {len(bomb) / MB:.1f} MB WARC"


# -- WARCs crafted to attack `archiver snapshot --from-warc` -------------------------------------------

GOOD_PAGE = (b"<html><head><title>G</title></head><body><article><p>" + b"A good page of words. " * 30
             + b"</p></article></body></html>")
FROM_WARC_ATTACKS = {
    "not-a-warc": lambda: b"garbage\n" * 100,
    "good-then-garbage": lambda: warc_with_response(GOOD_PAGE, [("Content-Type", "text/html")]) + b"garbage" * 50,
    "content-length-lies": WARC_ATTACKS["content-length-lies"],
    "truncated": WARC_ATTACKS["truncated"],
    "gzip-bomb": lambda: warc_with_response(gzip_bomb(300 * MB), [("Content-Type", "text/html"),
                                                                  ("Content-Encoding", "gzip")]),
    "record-length-overflow": lambda: (
        b"WARC/1.0\r\nWARC-Type: response\r\nWARC-Record-ID: <urn:uuid:3>\r\nWARC-Date: 2026-11-25T09:30:00Z\r\n"
        b"WARC-Target-URI: https://example.org/x\r\nContent-Type: application/http; msgtype=response\r\n"
        b"Content-Length: 99999999999999999999\r\n\r\nHTTP/1.1 200 OK\r\n\r\n<p>x</p>"),
}
@pytest.mark.slow
@pytest.mark.parametrize("attack", sorted(FROM_WARC_ATTACKS))
def test_snapshot_from_a_hostile_warc_fails_clearly_and_bags_nothing(tmp_path, attack, baseline_mb) -> None:
    warc = tmp_path / "foreign.warc.gz"
    warc.write_bytes(FROM_WARC_ATTACKS[attack]())
    root = tmp_path / "bags"
    run = run_cli("snapshot", "--from-warc", str(warc), "--root", str(root), "--json")
    assert "Traceback" not in run.stderr, run.stderr[-2000:]
    assert run.code in (1, 3), run.stdout[-2000:]
    document = run.json()
    if run.code == 1:  # per-response failures, each with its reason
        assert document["failed"] >= 1 and all(s["reason"] for s in document["sources"] if s["outcome"] == "failed")
    else:
        assert document["error"]
    bags = [p for p in root.iterdir() if not p.name.startswith(".")] if root.exists() else []
    assert bags == [] and not (root.exists() and [p for p in root.iterdir() if p.name.startswith(".tmp-")])
    assert run.peak_mb < baseline_mb + 150, f"peak {run.peak_mb:.0f} MB"
