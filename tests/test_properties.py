"""Property tests (hypothesis) that complete tests/test_text.py and tests/test_verify.py.

Those already check: normalise_body idempotent and word-preserving (by
``str.split``), CanonicalText render/parse round trip for collapsed values,
tag-file and manifest render/parse round trips, line splitting under any
chunking. Here, end to end and stronger:

- normalisation keeps every non-blank line, in order, changed only by NFC and
  trailing white space (so not just the words: their order, line structure
  and inner spacing too);
- a canonical text with arbitrary header values (tabs, newlines, runs of
  spaces) renders to a fixed point;
- ``write_bag`` with arbitrary legal payload names and bag-info values gives a
  bag that ``verify`` finds valid and whose bag-info reads back exactly;
- any change to the bytes of any payload or tag file (other than a tag
  manifest) makes ``verify`` report the bag invalid — and ``verify`` never
  raises on a damaged bag;
- the tag-file and manifest parsers and the charset decoder never raise on
  arbitrary bytes;
- events with arbitrary details are appended one line each and read back equal.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import tempfile
import unicodedata
from pathlib import Path

import bagit
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from archiver.bagit.write import write_bag
from archiver.bagit.parse import parse_manifest
from archiver.bagit.tagfiles import iter_tag_elements, parse_tag_file
from archiver.capture.charset import decode_document
from archiver.collection.events import Event, append_events, events_path, read_events
from archiver.capture.text import CanonicalText, normalise_body
from archiver.bagit.verify import verify_bag

PROPERTY = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# -- canonical text ---------------------------------------------------------------------------------

_line_pieces = st.sampled_from(["word", "Wörd", "e\u0301", "  ", "\t", "\u00a0", "“q”", "–", "\u2028", " x "])
_line_ends = st.sampled_from(["\n", "\r\n", "\r", "\n\n", "\n \t\n", "\n\n\n"])
texts = st.lists(st.tuples(st.lists(_line_pieces, max_size=6).map("".join), _line_ends), max_size=12).map(
    lambda parts: "".join(a + b for a, b in parts)) | st.text(max_size=300)


@PROPERTY
@given(texts)
def test_normalise_body_keeps_every_line_in_order(text: str) -> None:
    body = normalise_body(text)
    nfc = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    expected = [line.rstrip() for line in nfc.split("\n") if line.rstrip()]
    assert [line for line in body.split("\n") if line] == expected


_raw_values = st.none() | st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)


@PROPERTY
@given(_raw_values, _raw_values, _raw_values, _raw_values, _raw_values, texts)
def test_canonical_text_renders_to_a_fixed_point(title, subtitle, author, date, source, body) -> None:
    rendered = CanonicalText(title, subtitle, author, date, source, body).render()
    again = CanonicalText.parse(rendered)
    assert again.render() == rendered
    for given_value, label in ((title, "Title"), (author, "Author"), (source, "Source")):
        if given_value is not None:
            kept = dict(again.header()).get(label, "")
            assert kept.split() == unicodedata.normalize("NFC", given_value).split()


# -- bags: writer -> verify, tag files and manifests included ------------------------------------------

_name_chars = st.characters(blacklist_categories=("Cs",), blacklist_characters="/\\\x00")
_components = st.text(_name_chars, min_size=1, max_size=10).filter(lambda s: s not in (".", ".."))
_payload_names = st.lists(_components, min_size=1, max_size=3).map("/".join)
_labels = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp"), blacklist_characters=":"),
                  min_size=1, max_size=20)
_values = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\x85\u2028\u2029\x0b\x0c"
                                "\x1c\x1d\x1e"), max_size=40)


def _unique_payload(names: list[str]) -> bool:
    """No name may be both a file and a folder of another, or equal after NFC (one file system entry)."""
    normal = [unicodedata.normalize("NFC", n) for n in names]
    if len(set(normal)) != len(normal):
        return False
    return not any(a != b and b.startswith(a + "/") for a in normal for b in normal)


@settings(max_examples=40, deadline=None)  # each example writes and fsyncs a real bag
@given(st.lists(_payload_names, min_size=1, max_size=5, unique=True).filter(_unique_payload),
       st.lists(st.tuples(_labels, _values), max_size=5), st.binary(max_size=64))
def test_written_bag_is_valid_and_reads_back(names: list[str], info: list[tuple[str, str]], content: bytes) -> None:
    info = [(k, v) for k, v in info if k not in ("Payload-Oxum", "Bagging-Date", "Bag-Software-Agent")]
    with tempfile.TemporaryDirectory() as tmp:
        payload = {name: content + name.encode() for name in names}
        bag = write_bag(Path(tmp), "bag", payload, info)
        report = verify_bag(bag)
        assert report.valid, report.problems
        assert report.files == len(names)
        with open(bag / "bag-info.txt", "rb") as f:
            elements, findings = parse_tag_file(f, "UTF-8", "bag-info.txt", "1.0")
        assert [f for f in findings if f.error] == []
        assert elements[:len(info)] == info
        assert dict(elements[len(info):])["Payload-Oxum"] == (
            f"{sum(len(v) for v in payload.values())}.{len(payload)}")
        with open(bag / "manifest-sha256.txt", "rb") as f:
            entries, findings = parse_manifest(f, "manifest-sha256.txt", "sha256")
        assert sorted(e.path for e in entries) == sorted(f"data/{n}" for n in names)
        # bagit-python as a second reader for plain names: it does not decode %25 (RFC 8493
        # §2.1.3), splits lines at every Unicode line break and strips white space from paths.
        if all(re.fullmatch(r"[\w.\-/]+", n) for n in names):
            bagit.Bag(str(bag)).validate()


_BASE_PAYLOAD = {"text.txt": b"Title: T\n\nA body of text.\n", "metadata.json": b'{"title": "T"}\n',
                 "capture.warc.gz": bytes(range(256))}
_DAMAGEABLE = ["data/text.txt", "data/metadata.json", "data/capture.warc.gz", "bagit.txt", "bag-info.txt",
               "manifest-sha256.txt", "manifest-sha512.txt"]


@st.composite
def damage(draw):
    path = draw(st.sampled_from(_DAMAGEABLE + ["tagmanifest-sha256.txt", "tagmanifest-sha512.txt"]))
    kind = draw(st.sampled_from(["flip", "truncate", "append", "delete", "replace"]))
    return path, kind, draw(st.integers(0, 10_000)), draw(st.binary(min_size=1, max_size=20))


@settings(max_examples=150, deadline=None)
@given(damage())
def test_any_change_to_a_bag_is_reported_and_verify_never_raises(change) -> None:
    path, kind, offset, data = change
    with tempfile.TemporaryDirectory() as tmp:
        bag = write_bag(Path(tmp), "bag", _BASE_PAYLOAD, [("Source-URL", "https://example.org/a")])
        target = bag / path
        before = target.read_bytes()
        if kind == "flip":
            at = offset % len(before)
            after = before[:at] + bytes([before[at] ^ 0x5A]) + before[at + 1:]
        elif kind == "truncate":
            after = before[:offset % len(before)]
        elif kind == "append":
            after = before + data
        elif kind == "replace":
            after = data
        else:
            after = None
        if after is None:
            target.unlink()
        else:
            assume(after != before)
            target.write_bytes(after)
        for mode in ("full", "completeness", "fast"):
            report = verify_bag(bag, mode)  # never raises on a damaged bag
            assert all(p.code and p.path is not None and p.message for p in report.problems)
        report = verify_bag(bag, "full")
        if path in _DAMAGEABLE:
            assert not report.valid, f"{kind} of {path} went unnoticed"
        elif kind == "delete":
            assert report.valid  # a bag may have any number of tag manifests, none included
        # A tag manifest may change without changing its meaning (digest case, a final
        # newline, spacing); then the bag stays valid. Any other change must be reported.
        elif report.valid:
            with open(bag / path, "rb") as f:
                entries, _ = parse_manifest(f, path, path[len("tagmanifest-"):-4])
            original = write_bag(Path(tmp), "original", _BASE_PAYLOAD, [("Source-URL", "https://example.org/a")])
            with open(original / path, "rb") as f:
                reference, _ = parse_manifest(f, path, path[len("tagmanifest-"):-4])
            assert {(e.path, e.digest) for e in entries if e.path != "bag-info.txt"} == {
                (e.path, e.digest) for e in reference if e.path != "bag-info.txt"}
            shutil.rmtree(original)


# -- parsers and decoders never raise ------------------------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000), st.sampled_from(["UTF-8", "UTF-16", "UTF-16-LE", "ISO-8859-1", "cp1252",
                                                  "no-such-encoding"]))
def test_tag_file_and_manifest_parsers_never_raise(raw: bytes, encoding: str) -> None:
    elements, findings = parse_tag_file(io.BytesIO(raw), encoding, "bag-info.txt", "1.0")
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in elements)
    entries, findings = parse_manifest(io.BytesIO(raw), "manifest-sha256.txt", "sha256", encoding)
    for entry in entries:
        assert len(entry.digest) == 64 and not entry.path.startswith("/") and ".." not in entry.path.split("/")


_value_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\ufeff"), max_size=200)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["A", "Payload-Oxum", "Bag-Size", "x-y"]), _value_text), max_size=6),
       st.integers(min_value=16, max_value=80), st.integers(min_value=1, max_value=64))
def test_bag_info_values_are_capped_not_refused(pairs: list[tuple[str, str]], cap: int, step: int) -> None:
    """Streamed bag-info parsing with a small cap: every element is read, in order;
    a value longer than the cap is its first ``cap`` characters, flagged truncated,
    and the element after it is still read (issue 10: cap one value, not the file)."""
    raw = "".join(f"{label}: {value}\n" for label, value in pairs).encode("utf-8")

    class Trickle:  # a stream returning ``step`` bytes per read, as a network body may
        def __init__(self) -> None:
            self.inner = io.BytesIO(raw)

        def read(self, size: int = -1) -> bytes:
            return self.inner.read(step)

    findings: list = []
    got = list(iter_tag_elements(Trickle(), "UTF-8", "bag-info.txt", "1.0", findings, max_value=cap))
    # The label and ': ' count towards a line; a value is truncated when its line is longer than cap.
    assert [e.label for e in got] == [label for label, _ in pairs]
    for element, (label, value) in zip(got, pairs):
        line = f"{label}: {value}"
        if len(line) <= cap:
            assert (element.value, element.truncated) == (value, False)
        else:
            assert element.truncated and value.startswith(element.value) and len(element.value) <= cap
    assert not [f for f in findings if f.error]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000), st.none() | st.text(max_size=20) | st.sampled_from(
    ["undefined", "base64", "rot13", "zlib", "utf-8-sig", "utf-16", "x-user-defined"]))
def test_decode_document_never_raises(body: bytes, header_charset: str | None) -> None:
    text, charset, how = decode_document(body, header_charset)
    assert isinstance(text, str) and charset and how in ("http-header", "bom", "meta", "detected", "replacement")
    if how != "replacement":
        assert text.encode(charset, errors="strict") is not None  # the named charset really holds the text


# -- the event log -------------------------------------------------------------------------------------------

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**53, 2**53) | st.text(st.characters(blacklist_categories=("Cs",))),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8)


@PROPERTY
@given(st.lists(st.tuples(st.sampled_from(["capture", "fixity", "replication"]),
                          st.sampled_from(["success", "failure"]),
                          st.none() | st.text(st.characters(blacklist_categories=("Cs",)), max_size=20),
                          st.dictionaries(st.text(max_size=10), _json_values, max_size=4)),
                min_size=1, max_size=6))
def test_events_are_one_line_each_and_read_back_equal(specs) -> None:
    events = [Event(type=t, outcome=o, bag=b, detail=d) for t, o, b, d in specs]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        append_events(root, events[:1])
        append_events(root, events[1:])
        raw = events_path(root).read_bytes()
        assert raw.count(b"\n") == len(events) and raw.endswith(b"\n")
        log = read_events(root)
        assert log.torn == []
        assert [json.loads(e.to_json()) for e in log.events] == [json.loads(e.to_json()) for e in events]
