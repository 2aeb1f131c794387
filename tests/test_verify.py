"""archiver.bagit.verify: every rule on its own fixture bag, modes, the CLI, security,
adversarial sizes, the BagReader protocol, and render -> parse round trips."""

from __future__ import annotations

import hashlib
import io
import json
import os
import time
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from archiver.bagit.write import encode_manifest_path, render_manifest, render_tag_file, write_bag
from archiver.bagit.parse import iter_text_lines, parse_manifest
from archiver.bagit.tagfiles import parse_tag_file
from archiver.bagit.reader import FileEntry, LocalBag
from archiver.cli import app
from archiver.errors import StorageError
from archiver.bagit.hashing import IN_PROCESS_FILES, check_stream
from archiver.bagit.timestamp import PROBLEM_CODES as TIMESTAMP_PROBLEMS
from archiver.bagit.verify import MAX_PER_CODE, PROBLEM_CODES, WARNING_CODES, find_bags, verify_bag
from fixtures.bags.bag_cases import CASES, build_bag, seal, sha

runner = CliRunner()


# -- one fixture bag per rule ----------------------------------------------------

@pytest.mark.parametrize("name", sorted(CASES))
def test_fixture_bag(name: str, tmp_path: Path) -> None:
    case = CASES[name]
    bag = tmp_path / name
    case.build(bag)
    report = verify_bag(bag)
    problems = {p.code for p in report.problems}
    warnings = {w.code for w in report.warnings}
    assert report.valid is case.valid, report.problems
    assert problems == case.problems
    assert case.warnings <= warnings
    assert all(p.path and p.message for p in report.problems), "every problem names a file"
    assert problems <= set(PROBLEM_CODES) and warnings <= set(WARNING_CODES), "codes are documented"


def test_every_documented_problem_code_has_a_fixture() -> None:
    covered = set().union(*(c.problems for c in CASES.values()))
    # problems-truncated and file-unreadable are exercised by dedicated tests below;
    # payload-oxum-missing only exists in --fast mode.
    untested = set(PROBLEM_CODES) - covered - {"problems-truncated", "file-unreadable", "payload-oxum-missing"}
    untested -= set(TIMESTAMP_PROBLEMS)  # RFC 3161 tokens: tests/test_timestamp.py, against a real TSA
    assert not untested


def test_a_bag_written_by_archiver_is_valid(tmp_path: Path) -> None:
    bag = write_bag(tmp_path, "essay-20261125T093000Z",
                    {"text.txt": b"Title: T\n\nText.\n", "metadata.json": b"{}"}, [("Source-URL", "https://e.org")])
    report = verify_bag(bag)
    assert report.valid and report.problems == [] and report.warnings == []
    assert (report.files, report.bytes, report.version) == (2, 18, "1.0")


def test_all_problems_are_reported_not_the_first(tmp_path: Path) -> None:
    bag = build_bag(tmp_path / "b", {f"data/f{i}.txt": f"{i}".encode() for i in range(5)})
    for i in range(5):
        (bag / "data" / f"f{i}.txt").write_bytes(b"changed")
    report = verify_bag(bag)
    bad = [p for p in report.problems if p.code == "checksum-mismatch"]
    assert {p.path for p in bad} == {f"data/f{i}.txt" for i in range(5)}
    assert len(bad) == 10  # sha256 and sha512 of each
    oxum = [p.message for p in report.problems if p.code == "payload-oxum-mismatch"]
    assert len(oxum) == 1 and "bytes" in oxum[0]  # 5 files still, bytes differ


# -- modes -------------------------------------------------------------------------

def test_completeness_only_skips_checksums_but_not_presence(tmp_path: Path) -> None:
    CASES["checksum-mismatch-payload"].build(tmp_path / "a")
    CASES["file-missing"].build(tmp_path / "b")
    assert verify_bag(tmp_path / "a", "completeness").valid
    report = verify_bag(tmp_path / "b", "completeness")
    assert not report.valid and "file-missing" in {p.code for p in report.problems}
    assert report.mode == "completeness"


def test_fast_checks_payload_oxum_only(tmp_path: Path) -> None:
    CASES["checksum-mismatch-payload"].build(tmp_path / "a")
    CASES["file-not-in-any-manifest"].build(tmp_path / "b")
    assert verify_bag(tmp_path / "a", "fast").valid  # same size: --fast cannot see it
    report = verify_bag(tmp_path / "b", "fast")
    assert [p.code for p in report.problems] == ["payload-oxum-mismatch", "payload-oxum-mismatch"]


def test_fast_without_payload_oxum_is_not_valid(tmp_path: Path) -> None:
    bag = build_bag(tmp_path / "b", tag_manifest=False)
    (bag / "bag-info.txt").write_text("Source-Organization: X\n")
    report = verify_bag(bag, "fast")
    assert not report.valid and report.problems[0].code == "payload-oxum-missing"


# -- the CLI -------------------------------------------------------------------------

def test_cli_exit_codes_and_labels(tmp_path: Path) -> None:
    CASES["good-v1"].build(tmp_path / "good")
    CASES["checksum-mismatch-payload"].build(tmp_path / "bad")
    ok = runner.invoke(app, ["verify", str(tmp_path / "good")])
    assert ok.exit_code == 0 and "every checksum verified" in ok.stdout
    bad = runner.invoke(app, ["verify", str(tmp_path / "bad")])
    assert bad.exit_code == 1
    assert "checksum-mismatch  data/text.txt" in bad.stdout
    fast = runner.invoke(app, ["verify", "--fast", str(tmp_path / "bad")])
    assert fast.exit_code == 0
    assert "--fast" in fast.stdout and "checksums NOT checked" in fast.stdout
    assert "valid" not in fast.stdout and "every checksum verified" not in fast.stdout
    complete = runner.invoke(app, ["verify", "--completeness-only", str(tmp_path / "bad")])
    assert complete.exit_code == 0 and "--completeness-only" in complete.stdout
    assert "valid" not in complete.stdout and "every checksum verified" not in complete.stdout
    both = runner.invoke(app, ["verify", "--fast", "--completeness-only", str(tmp_path / "bad")])
    assert both.exit_code == 2


def test_cli_json_and_collection_root(tmp_path: Path) -> None:
    CASES["good-v1"].build(tmp_path / "a-good")
    CASES["file-missing"].build(tmp_path / "b-bad")
    (tmp_path / ".archiver").mkdir()
    CASES["file-missing"].build(tmp_path / ".archiver" / "not-a-bag")
    CASES["file-missing"].build(tmp_path / ".tmp-unfinished")
    result = runner.invoke(app, ["verify", "--json", str(tmp_path)])
    assert result.exit_code == 1
    document = json.loads(result.stdout)
    assert [Path(b["path"]).name for b in document["bags"]] == ["a-good", "b-bad"]
    good, bad = document["bags"]
    assert good["valid"] is True and good["mode"] == "full" and good["problems"] == []
    assert bad["valid"] is False
    assert ("file-missing", "data/sub/note.txt") in {(p["code"], p["path"]) for p in bad["problems"]}
    assert set(good) >= {"path", "valid", "mode", "problems", "warnings"}


def test_cli_missing_path_is_exit_3_with_one_line(tmp_path: Path) -> None:
    CASES["good-v1"].build(tmp_path / "good")
    result = runner.invoke(app, ["verify", str(tmp_path / "absent"), str(tmp_path / "good")])
    assert result.exit_code == 3
    assert result.stderr.strip().count("\n") == 0 and "does not exist" in result.stderr
    assert "every checksum verified" in result.stdout  # the other path was still verified


def test_find_bags_treats_a_bag_without_bagit_txt_as_a_bag(tmp_path: Path) -> None:
    CASES["bagit-txt-missing"].build(tmp_path / "root" / "lost")
    CASES["good-bag-info-continuation"].build(tmp_path / "root" / "nested" / "deep")
    (tmp_path / "root" / "empty").mkdir()
    assert [p.name for p in find_bags(tmp_path / "root")] == ["lost", "deep"]


# -- security ----------------------------------------------------------------------------

def test_local_bag_never_opens_outside_or_through_links(tmp_path: Path) -> None:
    bag = build_bag(tmp_path / "bag")
    (tmp_path / "secret.txt").write_bytes(b"secret")
    os.symlink(tmp_path / "secret.txt", bag / "data" / "link.txt")
    os.symlink(tmp_path, bag / "data" / "dirlink")
    os.mkfifo(bag / "data" / "fifo")
    reader = LocalBag(bag)
    listed = {f.path: f for f in reader.list_files()}
    assert listed["data/link.txt"].is_symlink and listed["data/dirlink"].is_symlink
    assert not any(p.startswith("data/dirlink/") for p in listed), "symlinked folders are not descended"
    for path in ("../secret.txt", "/etc/hostname", "data/../../secret.txt", "data\\x", ""):
        with pytest.raises(StorageError):
            reader.open(path)
    for path in ("data/link.txt", "data/dirlink/secret.txt", "data/fifo"):
        with pytest.raises(StorageError):
            reader.open(path)
    with pytest.raises(FileNotFoundError):
        reader.open("data/absent.txt")
    assert reader.open("data/text.txt").read().startswith(b"Title:")


def test_symlinked_payload_is_an_error_and_never_followed(tmp_path: Path) -> None:
    """The link points at a file whose hash the manifest gives: following it would make the bag 'valid'."""
    bag = build_bag(tmp_path / "bag", {"data/a.txt": b"a"}, tag_manifest=False)
    (tmp_path / "outside.txt").write_bytes(b"b")
    os.symlink(tmp_path / "outside.txt", bag / "data" / "b.txt")
    for alg in ("sha256", "sha512"):
        with open(bag / f"manifest-{alg}.txt", "a") as f:
            f.write(f"{sha(alg, b'b')}  data/b.txt\n")
    seal(bag)
    report = verify_bag(bag)
    assert not report.valid
    assert [p.path for p in report.problems if p.code == "symlink-in-bag"] == ["data/b.txt"]


def test_unreadable_file_is_reported_not_raised(tmp_path: Path) -> None:
    """A FIFO listed in the manifest: opening it for reading would block forever."""
    bag = build_bag(tmp_path / "bag", {"data/a.txt": b"a"}, tag_manifest=False)
    os.mkfifo(bag / "data" / "pipe")
    for alg in ("sha256", "sha512"):
        with open(bag / f"manifest-{alg}.txt", "a") as f:
            f.write(f"{sha(alg, b'')}  data/pipe\n")
    (bag / "bag-info.txt").write_text("Payload-Oxum: 1.2\n")
    seal(bag)
    for processes in (1, 2):
        report = verify_bag(bag, processes=processes)
        assert [(p.code, p.path) for p in report.problems] == [("file-unreadable", "data/pipe")]


# -- adversarial sizes --------------------------------------------------------------------

def completeness_with_peak_memory(bag: Path):
    """verify_bag(bag, "completeness") and the peak of Python allocations meanwhile."""
    tracemalloc.start()
    try:
        report = verify_bag(bag, "completeness")
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return report, peak


def test_huge_single_line_bag_info_is_read_in_bounded_memory(tmp_path: Path) -> None:
    bag = build_bag(tmp_path / "bag", tag_manifest=False)
    with open(bag / "bag-info.txt", "ab") as f:
        f.write(b"External-Description: ")
        chunk = b"x" * (1 << 20)
        for _ in range(100):
            f.write(chunk)
    report, peak = completeness_with_peak_memory(bag)
    # A long value is legal (RFC 8493 sets no limit): read to its end, its head kept, a warning.
    assert report.valid, report.problems
    assert "tag-value-long" in {w.code for w in report.warnings}
    assert peak < 24 << 20, f"peak {peak} bytes for a 100 MB bag-info.txt"


def test_huge_manifest_line_is_streamed_and_refused(tmp_path: Path) -> None:
    bag = build_bag(tmp_path / "bag", tag_manifest=False)
    with open(bag / "manifest-sha256.txt", "ab") as f:
        f.write(b"0" * 64 + b"  data/")
        for _ in range(32):
            f.write(b"y" * (1 << 20))  # 32 MB, no line break
    report, peak = completeness_with_peak_memory(bag)
    assert "line-too-long" in {p.code for p in report.problems}
    assert peak < 24 << 20


def test_manifest_with_many_phantom_lines_is_capped(tmp_path: Path) -> None:
    bag = build_bag(tmp_path / "bag", tag_manifest=False)
    count = MAX_PER_CODE + 20_000
    with open(bag / "manifest-sha256.txt", "ab") as f:
        f.write("".join(f"{'0' * 64}  data/phantom-{i}.txt\n" for i in range(count)).encode())
    started = time.perf_counter()
    report = verify_bag(bag, "completeness")
    elapsed = time.perf_counter() - started
    missing = [p for p in report.problems if p.code == "file-missing"]
    assert len(missing) == MAX_PER_CODE
    truncated = [p for p in report.problems if p.code == "problems-truncated"]
    assert len(truncated) == 1 and "20000 more 'file-missing'" in truncated[0].message
    assert elapsed < 10


def test_findings_past_the_cap_are_counted_once() -> None:
    from archiver.bagit.report import Collector as _Collector
    out = _Collector()
    for _ in range(2):  # every finding added twice: the second time changes nothing
        for i in range(MAX_PER_CODE + 7):
            out.add("file-missing", f"data/f{i}", f"data/f{i} is absent")
    out.finish()
    assert len(out.problems) == MAX_PER_CODE + 1
    assert out.problems[-1].message == "7 more 'file-missing' findings not listed"


def test_case_and_normalisation_collisions_between_files_and_listed_names(tmp_path: Path) -> None:
    bag = build_bag(tmp_path / "bag", {"data/a.txt": b"a", "data/FILE.txt": b"f", "data/x/Thumbs.db": b"t"})
    for alg in ("sha256", "sha512"):
        with open(bag / f"manifest-{alg}.txt", "a", encoding="utf-8") as f:
            for name in ("data/A.txt", "data/\ufb01le.txt", "data/caf\u00e9", "data/cafe\u0301", "data/.DS_Store"):
                f.write(f"{sha(alg, b'gone')}  {name}\n")
    seal(bag)
    report = verify_bag(bag, "completeness")
    warned = {(w.code, w.path) for w in report.warnings}
    assert {("name-collision-case", "data/A.txt"), ("name-collision-case", "data/a.txt"),
            ("name-collision-case", "data/FILE.txt"), ("name-collision-case", "data/\ufb01le.txt"),
            ("name-collision-normalisation", "data/caf\u00e9"),
            ("name-collision-normalisation", "data/cafe\u0301"),
            ("system-file", "data/x/Thumbs.db"), ("system-file", "data/.DS_Store")} <= warned
    missing = [p.path for p in report.problems if p.code == "file-missing"]
    assert missing == sorted(["data/A.txt", "data/\ufb01le.txt", "data/caf\u00e9", "data/cafe\u0301",
                              "data/.DS_Store"])


# -- parallel hashing and the BagReader protocol -------------------------------------------

def test_process_pool_finds_one_bad_file_among_many(tmp_path: Path) -> None:
    payload = {f"data/d{i % 7}/f{i}.txt": f"file {i}\n".encode() * (i % 5 + 1) for i in range(IN_PROCESS_FILES + 200)}
    bag = build_bag(tmp_path / "bag", payload)
    (bag / "data" / "d3" / "f10.txt").write_bytes(b"FILE 10\n" * 1)
    os.mkfifo(bag / "data" / "pipe")  # among many files: listed without sizes, stat'ed by the workers
    report = verify_bag(bag, processes=2)
    assert {(p.code, p.path) for p in report.problems} == {
        ("checksum-mismatch", "data/d3/f10.txt"), ("file-not-in-manifest", "data/pipe"),
        ("file-unreadable", "data/pipe"), ("payload-oxum-mismatch", "bag-info.txt")}
    assert report.files == len(payload) + 1
    assert report.bytes == sum(len(c) for c in payload.values()) - len(payload["data/d3/f10.txt"]) + 8


class MemoryBag:
    """A second, independent BagReader: files held in a dict (as S3Bag holds objects)."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.location = "memory://bag"

    def list_files(self) -> list[FileEntry]:
        return [FileEntry(path, len(data)) for path, data in sorted(self.files.items())]

    def open(self, path: str):
        if path not in self.files:
            raise FileNotFoundError(path)
        return TrickleStream(self.files[path], 1000)  # short reads, as from a network body


def test_verify_works_through_the_reader_protocol(tmp_path: Path) -> None:
    bag = build_bag(tmp_path / "bag")
    files = {str(p.relative_to(bag)): p.read_bytes() for p in bag.rglob("*") if p.is_file()}
    assert verify_bag(MemoryBag(files)).valid
    files["data/text.txt"] = files["data/text.txt"].upper()
    files["data/extra.txt"] = b"x"
    report = verify_bag(MemoryBag(files))
    assert {(p.code, p.path) for p in report.problems} == {
        ("checksum-mismatch", "data/text.txt"), ("file-not-in-manifest", "data/extra.txt"),
        ("payload-oxum-mismatch", "bag-info.txt")}
    assert report.location == "memory://bag"


def test_check_stream_for_mirrors() -> None:
    data = b"some payload"
    good = {"sha256": hashlib.sha256(data).hexdigest(), "sha512": hashlib.sha512(data).hexdigest().upper()}
    assert check_stream(io.BytesIO(data), good) == []
    bad = check_stream(io.BytesIO(data + b"!"), good, "data/x")
    assert [(m.code, m.path) for m in bad] == [("checksum-mismatch", "data/x")] * 2
    assert [m.message.split()[0] for m in bad] == ["sha256", "sha512"]
    assert "manifest-sha512.txt" in bad[1].message and good["sha512"].lower() in bad[1].message


# -- render -> parse round trips ---------------------------------------------------------------

_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\ufeff"))
_labels = _text.filter(lambda s: s and s == s.strip() and ":" not in s and s[0] not in " \t")
_components = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="/\\\x00"),
                      min_size=1, max_size=12).filter(lambda s: s not in (".", ".."))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(_labels, _text), max_size=8))
def test_tag_file_round_trip(pairs: list[tuple[str, str]]) -> None:
    elements, findings = parse_tag_file(io.BytesIO(render_tag_file(pairs)), "UTF-8", "bag-info.txt", "1.0")
    assert findings == []
    assert elements == pairs


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.lists(_components, min_size=1, max_size=3).map(lambda c: "data/" + "/".join(c)),
                       st.binary(min_size=32, max_size=32).map(bytes.hex), max_size=8))
def test_manifest_round_trip(entries: dict[str, str]) -> None:
    rendered = render_manifest(list(entries.items()))
    parsed, findings = parse_manifest(io.BytesIO(rendered), "manifest-sha256.txt", "sha256")
    assert [f for f in findings if f.error] == []
    assert {e.path: e.digest for e in parsed} == entries
    assert all(encode_manifest_path(e.path).count("\n") == 0 for e in parsed)


class TrickleStream(io.RawIOBase):
    """A real stream that returns at most ``step`` bytes a read (as a network body may)."""

    def __init__(self, data: bytes, step: int) -> None:
        self.data, self.step, self.pos = data, step, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        piece = self.data[self.pos:self.pos + min(self.step, len(buffer))]
        buffer[:len(piece)] = piece
        self.pos += len(piece)
        return len(piece)


@settings(max_examples=150, deadline=None)
@given(st.lists(_text, min_size=1, max_size=6), st.lists(st.sampled_from(["\n", "\r", "\r\n"]), min_size=6,
       max_size=6), st.sampled_from(["UTF-8", "UTF-16", "ISO-8859-1"]), st.integers(1, 7))
def test_line_splitting_survives_any_chunking(lines: list[str], ends: list[str], encoding: str, step: int) -> None:
    if encoding == "ISO-8859-1":
        lines = [line.encode("latin-1", "replace").decode("latin-1") for line in lines]
    lines = [line for line in lines if line] or ["x"]
    text = "".join(line + end for line, end in zip(lines, ends))
    findings: list = []
    got = [line for _n, line in iter_text_lines(TrickleStream(text.encode(encoding), step), encoding, "t", findings)]
    assert findings == [] and got == lines


# -- issue 10: versioned rules, URIs, repeated elements, long values, the layering -----------------

@pytest.mark.parametrize("url, absolute", [
    ("https://example.org/a%20b", True), ("ark:/57799/b9dd5t", True), ("ark:57799/b9dd5t", True),
    ("urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66", True), ("doi:10.1000/182", True),
    ("ftp://host/x?y=1#z", True), ("text.txt", False), ("/data/x", False), ("//host/x", False),
    ("https://example.org/a%zz", False), ("1ab:/x", False), ("https://exa mple.org", False),
    ("https://example.org/caf\u00e9", False), ("ark:", False),
])
def test_fetch_urls_are_judged_as_rfc3986_absolute_uris(url: str, absolute: bool) -> None:
    from archiver.bagit.parse import is_absolute_uri

    assert is_absolute_uri(url) is absolute


def test_every_versioned_rule_is_a_problem_in_1_0_and_a_warning_before() -> None:
    from archiver.bagit.report import VERSIONED_RULES, rule_applies

    for rule in VERSIONED_RULES:
        assert rule_applies(rule, "1.0") and rule_applies(rule, None)
        assert not any(rule_applies(rule, v) for v in ("0.93", "0.94", "0.95", "0.96", "0.97"))
        if rule != "payload-in-every-manifest":  # a rule, not a code: file-not-in-manifest names it
            assert rule in PROBLEM_CODES and rule in WARNING_CODES


def test_repeated_payload_oxum_is_named_with_its_lines(tmp_path: Path) -> None:
    bag = tmp_path / "bag"
    CASES["payload-oxum-repeated-v1"].build(bag)
    [problem] = verify_bag(bag).problems
    assert problem.code == "payload-oxum-repeated" and problem.path == "bag-info.txt"
    assert "2 times" in problem.message and "MUST NOT" in problem.message


def test_repeated_bag_size_is_a_warning_only(tmp_path: Path) -> None:
    CASES["bag-size-repeated"].build(tmp_path / "bag")
    report = verify_bag(tmp_path / "bag")
    assert report.valid
    [warning] = [w for w in report.warnings if w.code == "tag-element-repeated"]
    assert warning.message.startswith("bag-size appears 2 times")


def test_a_payload_oxum_too_long_to_read_is_could_not_verify_not_invalid(tmp_path: Path) -> None:
    from archiver.bagit.report import CannotVerify

    bag = build_bag(tmp_path / "bag", tag_manifest=False)
    info = bag / "bag-info.txt"
    info.write_bytes(info.read_bytes().replace(b"Payload-Oxum: ", b"Payload-Oxum: " + b"0" * (1 << 20)))
    seal(bag)
    with pytest.raises(CannotVerify, match="Payload-Oxum"):
        verify_bag(bag)
    result = runner.invoke(app, ["verify", "--json", str(bag)])
    assert result.exit_code == 3
    document = json.loads(result.stdout)
    assert document["bags"] == [] and "cannot tell whether the bag is complete" in document["errors"][0]["error"]


def test_a_label_too_long_to_read_is_could_not_verify(tmp_path: Path) -> None:
    from archiver.bagit.report import CannotVerify

    bag = build_bag(tmp_path / "bag", tag_manifest=False)
    with open(bag / "bag-info.txt", "ab") as f:
        f.write(b"L" * (200 * 1024) + b": value\n")
    seal(bag)
    with pytest.raises(CannotVerify, match="no ':'"):
        verify_bag(bag)


def test_long_value_keeps_the_elements_after_it(tmp_path: Path) -> None:
    """The element after a 5 MB value is still read: here a wrong Payload-Oxum."""
    bag = build_bag(tmp_path / "bag", tag_manifest=False)
    info = bag / "bag-info.txt"
    text = info.read_bytes()
    info.write_bytes(b"External-Description: " + b"z" * (5 << 20) + b"\n" + text.replace(b"Payload-Oxum: ", b"Payload-Oxum: 9"))
    seal(bag)
    report = verify_bag(bag)
    assert {p.code for p in report.problems} == {"payload-oxum-mismatch"}
    assert "tag-value-long" in {w.code for w in report.warnings}


def test_find_bags_skips_only_what_the_caller_names(tmp_path: Path) -> None:
    CASES["good-v1"].build(tmp_path / "root" / "a")
    CASES["good-v1"].build(tmp_path / "root" / ".hidden-but-a-bag")
    CASES["good-v1"].build(tmp_path / "root" / "skip-me")
    assert [p.name for p in find_bags(tmp_path / "root")] == [".hidden-but-a-bag", "a", "skip-me"]
    assert [p.name for p in find_bags(tmp_path / "root", skip=lambda n: n.startswith("skip"))] == \
        [".hidden-but-a-bag", "a"]


def test_bagit_knows_nothing_of_collections_or_captures() -> None:
    """The format room imports no other room (issue 10 §1-2)."""
    import ast

    room = Path(__file__).resolve().parent.parent / "archiver" / "bagit"
    for module in room.glob("*.py"):
        for node in ast.walk(ast.parse(module.read_text("utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("archiver."):
                assert node.module.split(".")[1] in ("bagit", "errors", "durable", "clock"), \
                    f"{module.name} imports {node.module}"


def test_one_hashing_module_agrees_with_hashlib(tmp_path: Path) -> None:
    from archiver.bagit.hashing import digest_of, hash_file, hash_stream

    data = os.urandom(3 << 20) + b"tail"
    (tmp_path / "f").write_bytes(data)
    want = {alg: hashlib.new(alg, data).hexdigest() for alg in ("md5", "sha256", "sha512")}
    assert hash_file(tmp_path / "f", want) == (want, len(data))
    assert hash_stream(io.BytesIO(data), want) == (want, len(data))

    class NoReadinto:  # a stream without readinto (some network bodies)
        def __init__(self) -> None:
            self.inner = io.BytesIO(data)

        def read(self, size: int = -1) -> bytes:
            return self.inner.read(min(size, 1000))

    assert hash_stream(NoReadinto(), want) == (want, len(data))  # type: ignore[arg-type]
    assert digest_of(LocalBag(tmp_path), "f", "sha256") == (want["sha256"], len(data))


def test_audit_logs_a_bag_it_cannot_verify_as_unverifiable_not_failed(tmp_path: Path) -> None:
    from archiver.collection.audit import audit_collection
    from archiver.collection.events import read_events

    root = tmp_path / "bags"
    root.mkdir()
    bag = write_bag(root, "huge-oxum", {"text.txt": b"Title: T\n\nText.\n"}, [("Source-URL", "https://e.org")])
    info = bag / "bag-info.txt"
    info.write_bytes(info.read_bytes().replace(b"Payload-Oxum: ", b"Payload-Oxum: " + b"0" * (1 << 20)))
    report = audit_collection(root)
    assert report.ok == [] and [f["problems"][0]["code"] for f in report.failed] == ["cannot-verify"]
    assert [(e.bag, e.outcome) for e in read_events(root).events if e.type == "fixity"] == \
        [("huge-oxum", "unverifiable")]
