"""The web room: `archiver serve` pages and their JSON twins, `archiver site`,
`archiver diff`, and the security properties (escaping, read-only, no path
out of the collection, loopback by default). Browser tests: test_web_browser.py."""

from __future__ import annotations

import hashlib
import html.parser
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest
from starlette.testclient import TestClient
from typer.testing import CliRunner

from webcollection import HOSTILE_AUTHOR, HOSTILE_TITLE, SECRET, collection  # noqa: F401 (fixture)

from archiver.cli import app
from archiver.web.app import create_app
from archiver.web.diff import diff_texts

runner = CliRunner()


@pytest.fixture(scope="module")
def client(collection) -> TestClient:
    return TestClient(create_app(collection.root), base_url="http://127.0.0.1")


def cli_json(*args: str) -> dict:
    result = runner.invoke(app, [*args, "--json"])
    return json.loads(result.stdout)


class Parsed(html.parser.HTMLParser):
    """Every element and attribute of a page, to check what markup it holds."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.tags.append((tag, dict(attrs)))

    def links(self) -> list[str]:
        return [a[k] for _, a in self.tags for k in ("href", "src") if a.get(k)]


def tree_digest(root: Path) -> dict[str, str]:
    """Path -> sha256 (or link target) of everything under ``root``."""
    result = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            if path.is_symlink():
                result[rel] = "link:" + os.readlink(path)
            elif path.is_file():
                result[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                result[rel] = "dir"
    return result


def crawl(client: TestClient, start: list[str], limit: int = 400) -> dict[str, str]:
    """Follow every same-site link from ``start``; return url -> body of HTML pages."""
    seen: dict[str, str] = {}
    queue = list(start)
    while queue and len(seen) < limit:
        url = queue.pop()
        if url in seen:
            continue
        response = client.get(url)
        assert response.status_code in (200, 404), (url, response.status_code)
        seen[url] = response.text
        if "html" in response.headers.get("content-type", "") and not url.endswith("/captured/page"):
            for link in Parsed(response.text).links():
                target = urljoin(url, link)
                if not urlsplit(target).netloc and target not in seen:
                    queue.append(target)
    return seen


# ----------------------------------------------------------------------- pages and JSON twins

def test_json_twins_carry_the_cli_json_fields(collection, client) -> None:
    root = str(collection.root)
    listed = cli_json("list", "--root", root)
    browsed = client.get("/api/browse").json()
    assert sorted(b["name"] for b in browsed["bags"]) == sorted(
        max((b for b in listed["bags"] if b["url"] == url), key=lambda b: b["retrieved"])["name"]
        for url in {b["url"] for b in listed["bags"]})
    assert set(listed["bags"][0]) <= set(browsed["bags"][0]) and browsed["root"] == listed["root"]

    shown = cli_json("show", collection.essay_new, "--root", root)
    page = client.get(f"/bag/{collection.essay_new}?format=json").json()
    assert {k: page[k] for k in shown if k != "path"} == {k: v for k, v in shown.items() if k != "path"}
    assert Path(page["path"]).resolve() == Path(shown["path"]).resolve()

    found = cli_json("search", "archive", "--root", root)
    assert client.get("/api/search?q=archive").json()["results"] == found["results"]
    assert found["results"], "the test collection has texts with the word"

    history = cli_json("history", collection.essay_url, "--root", root)
    timeline = client.get("/api/source", params={"url": collection.essay_url}).json()
    assert timeline["history"] == history["history"] and timeline["url"] == history["url"]
    kinds = [e["kind"] for e in timeline["events"]]
    assert kinds == ["capture", "capture", "unchanged"]
    assert timeline["events"][1]["previous"] == collection.essay_old


def test_home_counts_health_and_mirrors(collection, client) -> None:
    home = client.get("/api/home").json()
    assert home["counts"] == {"sources": 3, "bags": 4, "captures": 4, "unchanged": 1, "gone": 0}
    assert [f["bag"] for f in home["attention"]["failed"]] == [collection.french]
    assert home["attention"]["due_count"] == 0
    assert [(m["target"], m["bags"], m["failures"]) for m in home["mirrors"]] == [(str(collection.mirror), 3, 1)]
    page = client.get("/")
    assert page.status_code == 200 and collection.french in page.text and "Mirrors" in page.text


def test_browse_filters_and_pages(collection, client) -> None:
    assert client.get("/api/browse?author=reclus").json()["total"] == 1
    assert client.get("/api/browse?site=127.0.0.1").json()["total"] == 3
    assert client.get("/api/browse?site=example.org").json()["total"] == 0
    assert [s["url"] for s in client.get("/api/browse?status=failed").json()["sources"]] == [collection.french_url]
    assert client.get("/api/browse?since=2000-01-01&until=2000-12-31").json()["total"] == 0
    assert client.get("/api/browse?since=2000-01-01").json()["total"] == 3
    assert client.get("/api/browse?since=yesterday").status_code == 400
    assert client.get("/api/browse?page=0").status_code == 400
    assert client.get("/api/browse?status=sparkling").status_code == 400


def test_search_paginates_and_reports_bad_queries(client) -> None:
    one = client.get("/api/search?q=paragraph").json()
    assert one["results"] and one["page"] == 1
    bad = client.get('/api/search?q="unclosed')
    assert bad.status_code == 400 and "unclosed double quote" in bad.json()["error"]
    page = client.get("/search?q=keeps")
    assert "<mark>keeps</mark>" in page.text


def test_bag_page_has_text_metadata_files_fixity_and_mirrors(collection, client) -> None:
    page = client.get(f"/bag/{collection.essay_new}")
    assert page.status_code == 200
    assert "typos, errors and all" in page.text and 'lang="en"' in page.text
    assert "manifest-sha256.txt" in page.text and "data/capture.warc.gz" in page.text
    document = client.get(f"/api/bag/{collection.essay_new}").json()
    assert document["health"] == "ok" and document["mirrors"][0]["detail"]["verified"] is True
    assert {f["path"] for f in document["files"]} >= {"bagit.txt", "data/text.txt"}
    assert all(f["sha256"] for f in document["files"] if f["path"].startswith("data/"))
    french = client.get(f"/api/bag/{collection.french}").json()
    assert french["lang"] == "fr" and french["health"] == "failed"
    text = client.get(f"/bag/{collection.essay_new}/text.txt")
    assert text.content == (collection.root / collection.essay_new / "data" / "text.txt").read_bytes()


def test_bag_downloads_as_the_tar_export_writes_it(collection, client, tmp_path) -> None:
    """The bag page links a tar of the whole bag: byte-identical to `archiver export
    --format tar`, every file as in the bag, and nothing written into the collection."""
    import io
    import tarfile

    before = tree_digest(collection.root)
    page = client.get(f"/bag/{collection.essay_new}")
    assert f'href="/bag/{collection.essay_new}/bag.tar"' in page.text
    download = client.get(f"/bag/{collection.essay_new}/bag.tar")
    assert download.status_code == 200 and download.headers["content-type"] == "application/x-tar"
    bag = collection.root / collection.essay_new
    with tarfile.open(fileobj=io.BytesIO(download.content)) as tar:
        files = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]
    expected = {f"{bag.name}/{p.relative_to(bag).as_posix()}": p.read_bytes() for p in bag.rglob("*") if p.is_file()}
    assert files == expected
    result = CliRunner().invoke(app, ["export", collection.essay_new, "--root", str(collection.root),
                                      "--format", "tar", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / f"{bag.name}.tar").read_bytes() == download.content
    assert tree_digest(collection.root) == before
    assert client.get("/bag/no-such-bag/bag.tar").status_code == 404


def test_diff_page_is_word_level_within_changed_paragraphs(collection, client) -> None:
    document = client.get(f"/api/diff/{collection.essay_old}/{collection.essay_new}").json()
    assert document["paragraphs"] == {"same": 3, "added": 1, "removed": 0, "changed": 1}
    changed = next(b for b in document["blocks"] if b["kind"] == "changed")
    assert changed["words"][1:3] == [{"kind": "removed", "text": "typos "},
                                     {"kind": "added", "text": "typos, errors "}]
    page = client.get(f"/diff/{collection.essay_old}/{collection.essay_new}?layout=inline")
    assert "<del>typos </del><ins>typos, errors </ins>" in page.text


def test_diff_texts_pairs_paragraphs_then_words() -> None:
    d = diff_texts("A b c.\n\nSame.\n\nGone para.\n", "A x c.\n\nSame.\n")
    assert [b.kind for b in d.blocks] == ["changed", "same", "removed"]
    assert [(p.kind, p.text) for p in d.blocks[0].words] == [
        ("same", "A "), ("removed", "b "), ("added", "x "), ("same", "c.")]
    assert not diff_texts("Same.\n", "Same.\n").changed


def test_cli_diff_of_a_url_and_of_two_bags(collection) -> None:
    root = str(collection.root)
    result = runner.invoke(app, ["diff", collection.essay_url, "--root", root])
    assert result.exit_code == 0, result.output
    assert "-An archive keeps what it is given, exactly as it was given, typos and all." in result.stdout
    assert "+An archive keeps what it is given, exactly as it was given, typos, errors and all." in result.stdout
    document = cli_json("diff", collection.essay_old, collection.essay_new, "--root", root)
    assert document["changed"] is True and document["old"]["name"] == collection.essay_old
    same = runner.invoke(app, ["diff", collection.essay_new, collection.essay_new, "--root", root])
    assert same.exit_code == 0 and "have the same text" in same.stdout
    one = runner.invoke(app, ["diff", collection.french_url, "--root", root])
    assert one.exit_code == 1 and "a diff needs two" in one.output
    missing = runner.invoke(app, ["diff", "nope-20200101T000000Z", collection.essay_new, "--root", root])
    assert missing.exit_code == 1 and "no bag" in missing.output


# ----------------------------------------------------------------------- security

def test_hostile_values_are_shown_as_text_on_every_page(collection, client) -> None:
    pages = crawl(client, ["/", "/browse", "/search?q=onerror", "/search?q=alert",
                           f"/bag/{collection.hostile}", f"/bag/{collection.hostile}/captured"])
    assert any(HOSTILE_TITLE.replace("<", "&lt;").replace(">", "&gt;").replace('"', "&#34;") in body
               for body in pages.values())
    for url, body in pages.items():
        if url.endswith("/captured/page") or not body.lstrip().startswith("<!DOCTYPE"):
            continue
        parsed = Parsed(body)
        assert not [t for t, _ in parsed.tags if t in ("script", "img", "svg", "object", "embed")], url
        for tag, attrs in parsed.tags:
            assert not [k for k in attrs if k.startswith("on")], (url, tag, attrs)
            for key in ("href", "src", "action"):
                assert not (attrs.get(key) or "").strip().lower().startswith("javascript:"), (url, attrs)
    bag = pages[f"/bag/{collection.hostile}"]
    assert "&lt;img src=x onerror=alert(2)&gt;" in bag and "javascript:alert(9)" in bag
    assert HOSTILE_AUTHOR not in bag


def test_no_request_changes_the_collection(collection, client) -> None:
    before = tree_digest(collection.root)
    pages = crawl(client, ["/", "/browse", "/search?q=archive", "/browse?status=due",
                           f"/diff/{collection.essay_old}/{collection.essay_new}"])
    assert len(pages) > 15
    for url in list(pages)[:60]:
        for method in ("POST", "PUT", "DELETE", "PATCH"):
            response = client.request(method, url, content=b"x=1")
            assert response.status_code == 405, (method, url)
        client.get(url + ("&" if "?" in url else "?") + "format=json")
    assert tree_digest(collection.root) == before


@pytest.mark.parametrize("path", [
    "/bag/..%2F..%2Fsecret.txt", "/bag/%2e%2e/files/secret.txt", "/bag/.archiver/files/events.jsonl",
    "/bag/{bag}/files/../../secret.txt", "/bag/{bag}/files/%2e%2e/%2e%2e/secret.txt",
    "/bag/{bag}/files/..%2F..%2Fsecret.txt", "/bag/{bag}/files//etc/passwd", "/bag/{bag}/files/data%2F..%2F..%2F..%2Fsecret.txt",
    "/static/../../secret.txt", "/static/%2e%2e/%2e%2e/%2e%2e/secret.txt", "/static/..%2F..%2F..%2Fsecret.txt",
    "/diff/..%2Fsecret.txt/{bag}", "/bag/{bag}%2F..%2F..%2Fsecret.txt/text.txt",
])
def test_paths_never_leave_the_collection(collection, client, path) -> None:
    response = client.get(path.format(bag=collection.essay_new))
    assert response.status_code in (400, 404), response.status_code
    assert SECRET not in response.text and "root:" not in response.text


def test_symlinked_bags_and_files_are_not_followed(collection, tmp_path) -> None:
    root = tmp_path / "bags"
    shutil.copytree(collection.root, root, symlinks=True)
    outside = tmp_path / "outside"
    shutil.copytree(root / collection.essay_old, outside)
    (outside / "data" / "text.txt").write_text(SECRET)
    shutil.rmtree(root / collection.essay_old)
    (root / collection.essay_old).symlink_to(outside, target_is_directory=True)
    (tmp_path / "secret.txt").write_text(SECRET)
    text = root / collection.essay_new / "data" / "text.txt"
    text.unlink()
    text.symlink_to(tmp_path / "secret.txt")
    client = TestClient(create_app(root), base_url="http://127.0.0.1")
    for path in (f"/bag/{collection.essay_old}", f"/bag/{collection.essay_old}/text.txt",
                 f"/api/bag/{collection.essay_old}", f"/bag/{collection.essay_new}",
                 f"/bag/{collection.essay_new}/text.txt", f"/bag/{collection.essay_new}/files/data/text.txt",
                 f"/api/diff/{collection.essay_old}/{collection.essay_new}"):
        response = client.get(path)
        assert SECRET not in response.text, path
    assert client.get(f"/bag/{collection.essay_old}/text.txt").status_code == 404
    assert "symbolic link" in client.get(f"/api/bag/{collection.essay_old}").json()["error"]


def test_archived_page_is_served_disarmed(collection, client) -> None:
    page = client.get(f"/bag/{collection.hostile}/captured/page")
    assert page.status_code == 200 and "<script>" in page.text  # the evidence, unchanged
    csp = page.headers["content-security-policy"]
    assert csp.startswith("sandbox;") and "allow-scripts" not in csp and "default-src 'none'" in csp
    frame = [a for t, a in Parsed(client.get(f"/bag/{collection.hostile}/captured").text).tags if t == "iframe"]
    assert len(frame) == 1 and "sandbox" in frame[0] and not frame[0]["sandbox"] and frame[0]["src"].endswith("/captured/page")
    download = client.get(f"/bag/{collection.hostile}/files/data/capture.warc.gz")
    assert download.headers["content-disposition"].startswith("attachment")
    assert download.headers["content-security-policy"].startswith("sandbox")


def test_other_host_headers_are_refused(client) -> None:
    assert client.get("/", headers={"Host": "attacker.example"}).status_code == 400


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening_on(port: int) -> set[str]:
    """Local addresses with a listening TCP socket on ``port`` (from /proc/net/tcp)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, _, hexport = local.partition(":")
        if state == "0A" and int(hexport, 16) == port:
            found.add(socket.inet_ntoa(bytes.fromhex(address)[::-1]))
    return found


def start_serve(root: Path, *extra: str) -> tuple[subprocess.Popen, int]:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "archiver.cli", "serve", "--root", str(root),
                                "--port", str(port), *extra], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while not listening_on(port):
        assert process.poll() is None and time.monotonic() < deadline, "serve did not start"
        time.sleep(0.2)
    return process, port


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs /proc/net/tcp")
def test_serve_binds_loopback_by_default_and_warns_for_another_host(collection) -> None:
    process, port = start_serve(collection.root)
    try:
        assert listening_on(port) == {"127.0.0.1"}
        import urllib.request
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/") as response:
            assert response.status == 200
    finally:
        process.terminate()
        stderr = process.communicate(timeout=10)[1]
    assert "warning" not in stderr and f"http://127.0.0.1:{port}/" in stderr
    process, port = start_serve(collection.root, "--host", "0.0.0.0")
    try:
        assert listening_on(port) == {"0.0.0.0"}
    finally:
        process.terminate()
        stderr = process.communicate(timeout=10)[1]
    assert "warning: listening on 0.0.0.0: the collection becomes readable by anyone" in stderr


# ----------------------------------------------------------------------- static site

def test_static_site_links_resolve_and_reruns_rewrite_only_what_changed(collection, tmp_path) -> None:
    out = tmp_path / "site"
    result = runner.invoke(app, ["site", str(out), "--root", str(collection.root), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["written"] > 10 and not report["problems"]
    for page in out.rglob("*.html"):
        body = page.read_text("utf-8")
        for link in Parsed(body).links():
            target = urlsplit(link)
            if link == "data:," or not target.path and target.fragment:
                continue
            assert not target.scheme and not link.startswith("/"), (page, link)
            assert (page.parent / target.path).resolve().is_file(), (page, link)
        assert not [t for t, a in Parsed(body).tags if t == "script" and "search" not in (a.get("src") or "")]
    assert (out / "diff" / f"{collection.essay_new}.html").is_file()
    assert (out / "bags" / f"{collection.hostile}.txt").read_bytes() == (
        collection.root / collection.hostile / "data" / "text.txt").read_bytes()
    index = (out / "static" / "search-index.js").read_text()
    assert "On Keeping Things" in index and "</script>" not in index

    again = json.loads(runner.invoke(app, ["site", str(out), "--root", str(collection.root), "--json"]).stdout)
    assert again["written"] == 0 and again["unchanged"] > 10, again

    copy = tmp_path / "bags"
    shutil.copytree(collection.root, copy)
    runner.invoke(app, ["audit", "--root", str(copy), "--max-age", "0s"])
    shutil.rmtree(copy / collection.hostile)
    runner.invoke(app, ["catalog", "rebuild", "--root", str(copy)])
    changed = json.loads(runner.invoke(app, ["site", str(out), "--root", str(copy), "--json"]).stdout)
    assert changed["removed"] >= 2 and 0 < changed["written"] < report["written"]
    assert not (out / "bags" / f"{collection.hostile}.html").exists()
    assert f"bags/{collection.essay_new}.html" in changed["written_files"]  # its fixity checks changed
    assert "static/style.css" not in changed["written_files"]


def test_site_refuses_to_write_into_the_collection(collection) -> None:
    result = runner.invoke(app, ["site", str(collection.root / "site"), "--root", str(collection.root)])
    assert result.exit_code == 3 and "outside the collection" in result.output
    assert not (collection.root / "site").exists()


def test_gone_sources_show_on_home_browse_and_timeline(collection, tmp_path) -> None:
    root = tmp_path / "bags"
    shutil.copytree(collection.root, root)
    gone = {"id": "gone-1", "type": "gone", "time": "2099-01-01T00:00:00Z", "agent": "archiver/sync",
            "bag": None, "target": None, "outcome": "success",
            "detail": {"url": collection.french_url, "reason": "HTTP 404 at re-check"}}
    with open(root / ".archiver" / "events.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps(gone) + "\n")
    client = TestClient(create_app(root), base_url="http://127.0.0.1")
    assert client.get("/api/home").json()["counts"]["gone"] == 1
    assert [s["url"] for s in client.get("/api/browse?status=gone").json()["sources"]] == [collection.french_url]
    events = client.get("/api/source", params={"url": collection.french_url}).json()["events"]
    assert [e["kind"] for e in events] == ["capture", "gone"] and events[1]["reason"] == "HTTP 404 at re-check"
    assert "HTTP 404 at re-check" in client.get("/source", params={"url": collection.french_url}).text
