"""The snapshot pipeline end to end: loopback server → WARC → text → bag → event."""

from __future__ import annotations

import io
import json
from pathlib import Path

import bagit
import pytest
from typer.testing import CliRunner
from warcio.archiveiterator import ArchiveIterator

from conftest import send_body

from archiver.cli import app
from archiver.collection.root import list_bag_dirs
from archiver.collection.events import read_events

runner = CliRunner()
REPO = Path(__file__).resolve().parent.parent

PAGE = """<!DOCTYPE html><html><head><meta charset="utf-8"><title>A Test Essay</title>
<meta name="author" content="Ada Tester"></head><body><nav><a href="/">Home</a></nav>
<article><h1>A Test Essay</h1><p>The first paragraph says something plain and long enough to count as text.</p>
<p>The second paragraph follows it, with a word or two more than the first one had.</p></article>
<footer>site footer</footer></body></html>"""


def run(*args: str) -> tuple[int, dict | None, str]:
    result = runner.invoke(app, list(args))
    document = None
    if "--json" in args and result.stdout.strip():
        document = json.loads(result.stdout)
    return result.exit_code, document, result.stdout + result.stderr


def snap(root: Path, *sources: str, extra: tuple[str, ...] = ()) -> tuple[int, dict]:
    code, document, output = run("snapshot", *sources, "--root", str(root), "--delay", "0",
                                 "--retries", "0", "--timeout", "2", "--json", *extra)
    assert document is not None, output
    return code, document


def no_temporary_files(root: Path) -> bool:
    return not [p for p in root.iterdir() if p.name.startswith(".tmp-")]


def test_golden_page_over_loopback_becomes_one_valid_bag(http_server, shared_dir, tmp_path) -> None:
    golden = shared_dir / "golden" / "always-against-the-tanks"
    url = http_server.add("/library/various-authors-always-against-the-tanks",
                          (golden / "page.html").read_bytes())
    code, document = snap(tmp_path, url)
    assert code == 0, document
    bags = list_bag_dirs(tmp_path)
    assert len(bags) == 1
    bag_dir = bags[0]
    assert bag_dir.name.startswith("various-authors-always-against-the-tanks-")
    assert (bag_dir / "data" / "text.txt").read_bytes() == (golden / "expected.txt").read_bytes()
    bag = bagit.Bag(str(bag_dir))
    bag.validate()
    assert bag.version_info == (1, 0)
    assert bag.info["Source-URL"] == url and bag.info["External-Identifier"] == url
    assert bag.info["Retrieval-Date"].endswith("Z")
    metadata = json.loads((bag_dir / "data" / "metadata.json").read_text())
    expected = json.loads((golden / "expected.json").read_text())
    for key in ("title", "subtitle", "author", "date", "source"):
        assert metadata[key] == expected[key], key
    assert metadata["extractor"] == "amusewiki"
    assert metadata["http_status"] == 200 and metadata["final_url"] == url


def test_batch_with_failures_bags_the_good_ones(http_server, tmp_path) -> None:
    http_server.add("/robots.txt", "User-agent: *\nDisallow: /secret\n", content_type="text/plain")
    good = http_server.add("/good", PAGE)
    missing = http_server.url("/missing")
    secret = http_server.add("/secret/page", PAGE)

    def stall(handler) -> None:
        import time
        time.sleep(4)

    http_server.routes["/slow"] = stall
    slow = http_server.url("/slow")
    pdf = http_server.add("/file.pdf", b"%PDF-1.4 binary", content_type="application/pdf")
    code, document = snap(tmp_path, good, missing, secret, slow, pdf)
    assert code == 1
    outcomes = {s["source"]: s for s in document["sources"]}
    assert outcomes[good]["outcome"] == "captured" and outcomes[good]["bag"]
    assert "HTTP 404" in outcomes[missing]["reason"]
    assert "robots.txt" in outcomes[secret]["reason"]
    assert "timeout" in outcomes[slow]["reason"]
    assert "application/pdf" in outcomes[pdf]["reason"]
    assert document["captured"] == 1 and document["failed"] == 4
    bags = list_bag_dirs(tmp_path)
    assert [b.name for b in bags] == [outcomes[good]["bag"]]
    bagit.Bag(str(bags[0])).validate()
    assert no_temporary_files(tmp_path)
    log = read_events(tmp_path).events
    assert [(e.type, e.outcome) for e in log if e.outcome == "success"] == [("capture", "success")]
    assert sum(e.outcome == "failure" for e in log) == 4


def test_failure_reason_is_one_line_on_stderr(http_server, tmp_path) -> None:
    code, _document, output = run("snapshot", http_server.url("/nope"), "--root", str(tmp_path),
                                  "--delay", "0", "--retries", "0")
    assert code == 1
    lines = [line for line in output.splitlines() if "nope" in line and "failed" in line]
    assert len(lines) == 1 and "HTTP 404" in lines[0]


def test_warc_holds_request_and_response_for_every_hop(http_server, tmp_path) -> None:
    http_server.add("/start", b"", status=301, Location="/essay")
    http_server.add("/essay", PAGE)
    code, document = snap(tmp_path, http_server.url("/start"))
    assert code == 0
    bag_dir = tmp_path / document["sources"][0]["bag"]
    types, uris = [], []
    for record in ArchiveIterator(io.BytesIO((bag_dir / "data" / "capture.warc.gz").read_bytes())):
        types.append(record.rec_type)
        uris.append(record.rec_headers.get_header("WARC-Target-URI"))
    assert types == ["warcinfo", "response", "request", "response", "request"]
    assert uris[1:] == [http_server.url("/start")] * 2 + [http_server.url("/essay")] * 2
    metadata = json.loads((bag_dir / "data" / "metadata.json").read_text())
    assert metadata["final_url"] == http_server.url("/essay")
    assert [r["status"] for r in metadata["redirects"]] == [301, 200]


def test_local_file_source_gets_a_resource_record(tmp_path) -> None:
    page = tmp_path / "saved.html"
    page.write_text(PAGE, encoding="utf-8")
    root = tmp_path / "bags"
    code, document = snap(root, str(page))
    assert code == 0, document
    bag_dir = root / document["sources"][0]["bag"]
    bagit.Bag(str(bag_dir)).validate()
    records = [(r.rec_type, r.rec_headers.get_header("WARC-Target-URI"))
               for r in ArchiveIterator(io.BytesIO((bag_dir / "data" / "capture.warc.gz").read_bytes()))]
    assert records[1] == ("resource", page.resolve().as_uri())
    text = (bag_dir / "data" / "text.txt").read_text()
    assert text.startswith("Title: A Test Essay\n")
    assert "The second paragraph follows it" in text and "site footer" not in text


def test_bundled_example_manifest(tmp_path) -> None:
    code, document = snap(tmp_path, extra=("--manifest", str(REPO / "manifests" / "example.toml")))
    assert code == 0, document
    assert document["captured"] == 3
    for bag_dir in list_bag_dirs(tmp_path):
        bag = bagit.Bag(str(bag_dir))
        bag.validate()
        assert bag.info["Bag-Group-Identifier"] == "archiver-example"
        assert bag.info["Source-Organization"] == "Example Library"


def test_resnapshot_unchanged_page_makes_no_bag_and_changed_page_does(http_server, tmp_path) -> None:
    url = http_server.add("/essay", PAGE, ETag='"v1"')
    assert snap(tmp_path, url)[0] == 0
    # Server ignores If-None-Match and sends the same page: text hash decides.
    code, document = snap(tmp_path, url)
    assert code == 0 and document["unchanged"] == 1 and document["captured"] == 0
    assert http_server.requests[-1][2].get("If-None-Match") == '"v1"'

    # A server that honours the conditional request answers 304.
    def conditional(handler) -> None:
        if handler.headers.get("If-None-Match") == '"v1"':
            handler.send_response(304)
            handler.send_header("ETag", '"v1"')
            handler.end_headers()
            return
        send_body(handler, PAGE.encode())

    http_server.routes["/essay"] = conditional
    code, document = snap(tmp_path, url)
    assert code == 0 and document["sources"][0]["reason"] == "HTTP 304 Not Modified"
    assert len(list_bag_dirs(tmp_path)) == 1

    http_server.add("/essay", PAGE.replace("plain and long", "changed and long"), ETag='"v2"')
    code, document = snap(tmp_path, url)
    assert code == 0 and document["captured"] == 1
    assert len(list_bag_dirs(tmp_path)) == 2

    code, document = snap(tmp_path, url, extra=("--force",))
    assert document["captured"] == 1 and len(list_bag_dirs(tmp_path)) == 3
    outcomes = [e.outcome for e in read_events(tmp_path).events if e.type == "capture"]
    assert outcomes == ["success", "unchanged", "unchanged", "success", "success"]


def test_leftover_temporary_folder_is_removed_by_next_run(http_server, tmp_path) -> None:
    (tmp_path / ".tmp-essay-crashed" / "data").mkdir(parents=True)
    code, _ = snap(tmp_path, http_server.add("/essay", PAGE))
    assert code == 0 and no_temporary_files(tmp_path)


@pytest.mark.parametrize("content,message", [
    ("[collection\nid = 'x'\n", "TOML syntax error"),
    ("[collection]\ntitle = 'x'\n[[sources]]\nurl = 'https://example.org/'\n", "missing 'id'"),
    ("[collection]\nid = 'x'\ncolour = 'red'\n[[sources]]\nurl = 'https://example.org/'\n", "unknown key 'colour'"),
    ("[collection]\nid = 'x'\n[[sources]]\nurl = 'pages/none.html'\n", "does not exist"),
])
def test_bad_manifest_is_a_usage_error_and_fetches_nothing(tmp_path, http_server, content, message) -> None:
    manifest = tmp_path / "m.toml"
    manifest.write_text(content)
    code, _document, output = run("snapshot", "--manifest", str(manifest), "--root", str(tmp_path / "bags"),
                                  http_server.add("/x", PAGE))
    assert code == 2
    assert message in output and str(manifest) in output
    assert not http_server.requests
    assert not (tmp_path / "bags").exists() or not list_bag_dirs(tmp_path / "bags")


def test_manifest_error_names_the_line(tmp_path) -> None:
    manifest = tmp_path / "m.toml"
    manifest.write_text("[collection]\nid = 'x'\n\n[[sources]]\nurl = 'https://example.org/'\nweight = 3\n")
    code, _document, output = run("snapshot", "--manifest", str(manifest), "--root", str(tmp_path))
    assert code == 2 and f"{manifest}:6: unknown key 'weight'" in output


def test_root_that_is_a_file_is_exit_3_before_any_fetch(tmp_path, http_server) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    code, _document, output = run("snapshot", http_server.add("/x", PAGE), "--root", str(not_a_dir))
    assert code == 3 and "not a directory" in output
    assert not http_server.requests


def test_no_sources_is_a_usage_error(tmp_path) -> None:
    code, _document, output = run("snapshot", "--root", str(tmp_path))
    assert code == 2 and "SOURCE" in output


def test_an_unexpected_error_in_one_source_does_not_end_the_batch(http_server, tmp_path, monkeypatch) -> None:
    """Fault injection: the extractor blows up on one page only."""
    import archiver.capture.material as pipeline

    real = pipeline.extract_html

    def flaky(html, url=None, retrieved=None):
        if url and url.endswith("/bad"):
            raise RuntimeError("injected fault")
        return real(html, url=url, retrieved=retrieved)

    monkeypatch.setattr(pipeline, "extract_html", flaky)
    bad, good = http_server.add("/bad", PAGE), http_server.add("/good", PAGE)
    code, document = snap(tmp_path, bad, good)
    assert code == 3
    outcomes = {s["source"]: s for s in document["sources"]}
    assert outcomes[good]["outcome"] == "captured"
    assert outcomes[bad]["outcome"] == "failed" and "injected fault" in outcomes[bad]["reason"]
    assert [b.name for b in list_bag_dirs(tmp_path)] == [outcomes[good]["bag"]]
    assert no_temporary_files(tmp_path)


def test_a_changed_page_bagged_by_a_run_killed_before_its_event_is_not_bagged_again(http_server, tmp_path) -> None:
    """The state a SIGKILL leaves between a new bag's rename and its ``capture`` event: the
    next snapshot records that bag, takes its text as the last capture, and logs ``unchanged``."""
    url = http_server.add("/essay", PAGE, ETag='"v1"')
    assert snap(tmp_path, url)[0] == 0
    http_server.add("/essay", PAGE.replace("plain and long", "changed and long"))  # no ETag: the text decides
    code, document = snap(tmp_path, url)
    assert code == 0 and document["captured"] == 1
    new = document["sources"][0]["bag"]
    log = tmp_path / ".archiver" / "events.jsonl"
    log.write_text("".join(line + "\n" for line in log.read_text().splitlines() if json.loads(line)["bag"] != new))

    code, document = snap(tmp_path, url)
    assert code == 0 and document["unchanged"] == 1 and document["captured"] == 0, document
    assert document["sources"][0]["bag"] == new
    assert len(list_bag_dirs(tmp_path)) == 2, "the changed page was bagged twice"
    recovered = [e for e in read_events(tmp_path).events if e.bag == new and e.outcome == "success"]
    assert len(recovered) == 1 and recovered[0].detail.get("recovered")
