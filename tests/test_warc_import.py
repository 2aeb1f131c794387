"""snapshot --with-attachments and snapshot --from-warc."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import bagit
from typer.testing import CliRunner
from warcio.archiveiterator import ArchiveIterator
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from archiver.cli import app
from archiver.collection.root import list_bag_dirs

runner = CliRunner()
REPO = Path(__file__).resolve().parent.parent
AMUSE = (REPO / "manifests" / "example" / "amusewiki-mutual-aid-notes.html").read_text()


def snap(*args: str) -> tuple[int, dict]:
    result = runner.invoke(app, ["snapshot", *args, "--delay", "0", "--retries", "0", "--json"])
    return result.exit_code, json.loads(result.stdout)


def test_attachments_are_captured_into_the_bag_and_warc(http_server, tmp_path) -> None:
    url = http_server.add("/library/ines-marlow-notes-on-a-neighbourhood-pantry", AMUSE)
    pdf = b"%PDF-1.4\n" + b"0" * 5000
    http_server.add("/library/ines-marlow-notes-on-a-neighbourhood-pantry.pdf", pdf, content_type="application/pdf")
    http_server.add("/library/ines-marlow-notes-on-a-neighbourhood-pantry.muse", "#title Notes\n\nText",
                    content_type="text/plain; charset=utf-8")
    code, document = snap(url, "--root", str(tmp_path), "--with-attachments")
    assert code == 0, document
    bag_dir = tmp_path / document["sources"][0]["bag"]
    bagit.Bag(str(bag_dir)).validate()
    stored = bag_dir / "data" / "attachments" / "ines-marlow-notes-on-a-neighbourhood-pantry.pdf"
    assert stored.read_bytes() == pdf
    metadata = json.loads((bag_dir / "data" / "metadata.json").read_text())
    kinds = {a["kind"]: a for a in metadata["attachments"]}
    assert set(kinds) == {"pdf", "muse"} and kinds["pdf"]["size"] == len(pdf) and kinds["pdf"]["error"] is None
    assert {d["kind"] for d in metadata["downloads"]} == {"pdf", "muse"}
    uris = [r.rec_headers.get_header("WARC-Target-URI")
            for r in ArchiveIterator(io.BytesIO((bag_dir / "data" / "capture.warc.gz").read_bytes()))
            if r.rec_type == "response"]
    assert uris[0] == url and {u.rsplit(".", 1)[-1] for u in uris[1:]} == {"pdf", "muse"}


def test_attachment_over_cap_is_listed_with_its_reason_and_page_still_bagged(http_server, tmp_path) -> None:
    url = http_server.add("/library/ines-marlow-notes-on-a-neighbourhood-pantry", AMUSE)
    http_server.add("/library/ines-marlow-notes-on-a-neighbourhood-pantry.pdf", b"x" * 20000,
                    content_type="application/pdf")
    code, document = snap(url, "--root", str(tmp_path), "--with-attachments", "--attachment-max-bytes", "1000")
    assert code == 0
    metadata = json.loads((tmp_path / document["sources"][0]["bag"] / "data" / "metadata.json").read_text())
    reasons = {a["kind"]: a["error"] for a in metadata["attachments"]}
    assert "cap" in reasons["pdf"] and "404" in reasons["muse"]
    assert not (tmp_path / document["sources"][0]["bag"] / "data" / "attachments").exists()


def test_no_attachments_by_default(http_server, tmp_path) -> None:
    url = http_server.add("/library/ines-marlow-notes-on-a-neighbourhood-pantry", AMUSE)
    code, _ = snap(url, "--root", str(tmp_path))
    assert code == 0
    assert [r[1] for r in http_server.requests if r[1].endswith((".pdf", ".muse"))] == []


def write_foreign_warc(path: Path, compress: bool) -> None:
    """A WARC as another crawler writes it: request before response, a redirect, an image."""
    with open(path, "wb") as f:
        writer = WARCWriter(f, gzip=compress)

        def pair(uri: str, status: str, headers: list, body: bytes, date: str) -> None:
            req = writer.create_warc_record(uri, "request", payload=io.BytesIO(b""), length=0,
                                            http_headers=StatusAndHeaders("GET / HTTP/1.1", [("Host", "x")],
                                                                          is_http_request=True),
                                            warc_headers_dict={"WARC-Date": date})
            resp = writer.create_warc_record(uri, "response", payload=io.BytesIO(body), length=len(body),
                                             http_headers=StatusAndHeaders(status, headers, protocol="HTTP/1.1"),
                                             warc_headers_dict={"WARC-Date": date})
            writer.write_record(req)
            writer.write_record(resp)

        pair("https://zines.example/old", "301 Moved", [("Location", "/essay")], b"", "2021-03-04T05:06:07Z")
        pair("https://zines.example/essay", "200 OK", [("Content-Type", "text/html; charset=utf-8")],
             AMUSE.encode(), "2021-03-04T05:06:08Z")
        pair("https://zines.example/cover.png", "200 OK", [("Content-Type", "image/png")], b"\x89PNG",
             "2021-03-04T05:06:09Z")
        pair("https://other.example/post", "200 OK", [("Content-Type", "text/html"),
                                                      ("Content-Encoding", "gzip")],
             gzip.compress(b"<html><body><article><h1>Other</h1><p>Another page, kept as the crawler kept it, "
                           b"with enough words to be a text.</p></article></body></html>"), "2022-01-01T00:00:00Z")


def test_from_warc_makes_bags_with_the_records_provenance(tmp_path) -> None:
    for compress in (True, False):
        warc = tmp_path / f"crawl-{compress}.warc{'.gz' if compress else ''}"
        write_foreign_warc(warc, compress)
        root = tmp_path / f"bags-{compress}"
        code, document = snap("--from-warc", str(warc), "--root", str(root))
        assert code == 0, document
        assert document["captured"] == 2
        by_url = {s["url"]: s for s in document["sources"]}
        assert set(by_url) == {"https://zines.example/essay", "https://other.example/post"}
        bag_dir = root / by_url["https://zines.example/essay"]["bag"]
        bag = bagit.Bag(str(bag_dir))
        bag.validate()
        assert bag.info["Source-URL"] == "https://zines.example/essay"
        assert bag.info["Retrieval-Date"] == "2021-03-04T05:06:08Z"
        assert bag_dir.name.endswith("-20210304T050608Z")
        records = [(r.rec_type, r.rec_headers.get_header("WARC-Target-URI"))
                   for r in ArchiveIterator(io.BytesIO((bag_dir / "data" / "capture.warc.gz").read_bytes()))]
        assert records == [("warcinfo", None), ("response", "https://zines.example/essay"),
                           ("request", "https://zines.example/essay")]
        assert (bag_dir / "data" / "text.txt").read_text().startswith("Title: Notes on a Neighbourhood Pantry\n")
        other = (root / by_url["https://other.example/post"]["bag"] / "data" / "text.txt").read_text()
        assert "Another page, kept as the crawler kept it" in other


def test_from_warc_copies_original_records_byte_for_byte(tmp_path) -> None:
    warc = tmp_path / "crawl.warc.gz"
    write_foreign_warc(warc, True)
    code, document = snap("--from-warc", str(warc), "--root", str(tmp_path / "bags"), "zines")
    assert code == 0 and document["captured"] == 1
    bag_warc = (tmp_path / "bags" / document["sources"][0]["bag"] / "data" / "capture.warc.gz").read_bytes()
    original = warc.read_bytes()
    # The response member of the original file appears whole inside the bag's WARC.
    members = []
    with open(warc, "rb") as f:
        iterator = ArchiveIterator(f)
        for record in iterator:
            iterator.read_to_end(record)
            if record.rec_headers.get_header("WARC-Target-URI") == "https://zines.example/essay":
                members.append(original[iterator.get_record_offset():][:iterator.get_record_length()])
    assert len(members) == 2 and all(m in bag_warc for m in members)


def test_from_warc_twice_makes_no_second_bag(tmp_path) -> None:
    warc = tmp_path / "crawl.warc.gz"
    write_foreign_warc(warc, True)
    root = tmp_path / "bags"
    assert snap("--from-warc", str(warc), "--root", str(root))[0] == 0
    code, document = snap("--from-warc", str(warc), "--root", str(root))
    assert code == 0 and document["unchanged"] == 2 and len(list_bag_dirs(root)) == 2


def test_from_warc_bad_inputs(tmp_path) -> None:
    code, document = snap("--from-warc", str(tmp_path / "none.warc.gz"), "--root", str(tmp_path))
    assert code == 2 and "not a file" in document["error"]
    junk = tmp_path / "junk.warc.gz"
    junk.write_bytes(b"this is not a warc at all\n" * 10)
    code, document = snap("--from-warc", str(junk), "--root", str(tmp_path / "b"))
    assert code == 3 and "not a readable WARC" in document["error"]
    warc = tmp_path / "crawl.warc.gz"
    write_foreign_warc(warc, True)
    code, document = snap("--from-warc", str(warc), "--root", str(tmp_path / "b"), "([unclosed")
    assert code == 2 and "bad URL filter" in document["error"]
