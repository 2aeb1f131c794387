"""Bad sources for ``archiver snapshot``: one source per fault, served by a
fault-injecting loopback server (tests/faultserver.py), all in one batch with
good sources, and each fault again on its own.

For every fault that makes a capture impossible: one line naming the source
and the reason, exit 1 for the batch, no bag and no temporary file for it, a
``capture`` failure event with the reason, and the good sources of the same
batch bagged and valid (bagit-python and ``archiver.bagit.verify``).

Faults that are recoverable — a wrong or unknown declared charset, malformed
but readable HTML, a robots.txt that answers 4xx — are captured, and the bag's
metadata.json records what was done (charset and how it was found; the robots
decision). Failing those would lose pages that every browser reads.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import bagit
import pytest
from typer.testing import CliRunner

import faultserver as fs
from archiver.cli import app
from archiver.collection.root import list_bag_dirs
from archiver.collection.events import read_events
from archiver.bagit.verify import verify_bag
from conftest import LoopbackServer

REPO = Path(__file__).resolve().parent.parent
MAX_BYTES = 200_000
# Small timeouts and one retry keep the whole file fast while still showing retries happen.
FAST = ("--delay", "0", "--retries", "1", "--timeout", "1", "--max-bytes", str(MAX_BYTES))


def page(title: str, *paragraphs: str) -> bytes:
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title></head>"
            f"<body><article><h1>{title}</h1>{body}</article></body></html>").encode("utf-8")


GOOD_WORDS = "This paragraph is an ordinary, well formed piece of prose that is long enough to keep."


@dataclass(frozen=True)
class Fault:
    name: str
    reason: str            # regex the one-line reason must match
    captured: bool = False  # recoverable: captured, and the bag records what was done


FAULTS = [
    Fault("http-404", r"HTTP 404"),
    Fault("http-410", r"HTTP 410"),
    Fault("http-500-every-try", r"HTTP 500 .*after 1 retries"),
    Fault("http-429-retry-after", r"HTTP 429 .*after 1 retries"),
    Fault("connection-refused", r"cannot connect: connection refused"),
    Fault("never-answers", r"read timeout \(1 s\)"),
    Fault("redirect-loop", r"more than 10 redirects: a loop \(http://\S+/loop-a -> http://\S+/loop-b -> "
                           r"http://\S+/loop-a\)"),
    Fault("redirect-chain-over-cap", r"more than 10 redirects \(http://\S+/chain-0 -> .*chain-2 -> …\)$"),
    Fault("body-over-cap-declared", r"300,000 bytes \(Content-Length\) is over the 200,000-byte cap"),
    Fault("body-over-cap-streamed", r"over the 200,000-byte cap \(stopped reading\)"),
    Fault("gzip-bomb", r"inflates past the 200,000-byte cap"),
    Fault("content-length-then-close", r"connection broke while reading the body"),
    Fault("empty-200", r"empty body"),
    Fault("pdf-content-type", r"'application/pdf' is not an HTML page"),
    Fault("image-content-type", r"'image/png' is not an HTML page"),
    Fault("markup-without-text", r"no text could be extracted from the page"),
    Fault("robots-disallow", r"robots\.txt at http://127\.0\.0\.1:\d+ disallows this URL"),
    Fault("robots-5xx", r"robots\.txt answered 503; treated as disallow-all"),
    # Beyond the list: answers that are not HTTP, or broken on the wire.
    Fault("not-http", r"BadStatusLine"),
    Fault("connection-reset", r"[Cc]onnection reset"),
    Fault("stalls-mid-body", r"body stalled past the read timeout"),
    Fault("invalid-gzip", r"not valid compressed data"),
    Fault("unsupported-encoding", r"unsupported Content-Encoding 'br'"),
    Fault("broken-chunked", r"connection broke while reading the body"),
    Fault("redirect-to-javascript", r"redirect to a non-http URL: javascript:"),
    Fault("header-line-too-long", r"got more than 65536 bytes when reading header line"),
    Fault("http-599", r"HTTP 599"),
    Fault("wrong-charset", "", captured=True),
    Fault("unknown-charset", "", captured=True),
    Fault("malformed-html", "", captured=True),
    Fault("robots-4xx", "", captured=True),
]
FAILING = [f for f in FAULTS if not f.captured]
RECOVERED = [f for f in FAULTS if f.captured]


class FaultyWeb:
    """Three loopback hosts: the main one (robots.txt disallows /private/), one whose
    robots.txt answers 503, one whose robots.txt answers 403."""

    def __init__(self) -> None:
        self.log = fs.FaultLog()
        self.main = LoopbackServer()
        self.robots_down = LoopbackServer()
        self.robots_forbidden = LoopbackServer()
        self.urls: dict[str, str] = {}
        self.good: list[str] = []
        self._serve()

    def _route(self, name: str, path: str, handler) -> None:
        self.main.routes[path] = handler
        self.urls[name] = self.main.url(path)

    def _serve(self) -> None:
        m, log = self.main, self.log
        m.add("/robots.txt", "User-agent: *\nDisallow: /private/\n", content_type="text/plain")
        for i in range(3):
            self.good.append(m.add(f"/good-{i}", page(f"Good page {i}", GOOD_WORDS, f"Page number {i}.")))
        self._route("http-404", "/gone-missing", fs.always(log, 404, b"not here"))
        self._route("http-410", "/gone-for-good", fs.always(log, 410, b"gone"))
        self._route("http-500-every-try", "/broken", fs.always(log, 500, b"boom"))
        self._route("http-429-retry-after", "/busy", fs.always(log, 429, b"slow down", Retry_After="1"))
        self.urls["connection-refused"] = f"http://127.0.0.1:{fs.refused_port()}/refused"
        self._route("never-answers", "/silent", fs.never_answers(log))
        self._route("redirect-loop", "/loop-a", fs.always(log, 302, Location="/loop-b"))
        m.routes["/loop-b"] = fs.always(log, 302, Location="/loop-a")
        for i in range(12):
            m.routes[f"/chain-{i}"] = fs.always(log, 302, Location=f"/chain-{i + 1}")
        m.routes["/chain-12"] = fs.always(log, 200, page("End of the chain", GOOD_WORDS),
                                          Content_Type="text/html")
        self.urls["redirect-chain-over-cap"] = m.url("/chain-0")
        self._route("body-over-cap-declared", "/big-declared",
                    fs.always(log, 200, b"<p>" + b"y" * (300_000 - 8) + b"</p>\n", Content_Type="text/html"))
        self._route("body-over-cap-streamed", "/big-streamed", fs.endless_body(log, 64 * 1024 * 1024))
        self._route("gzip-bomb", "/bomb", fs.gzip_bomb(log, 5_000_000))
        self._route("content-length-then-close", "/short", fs.short_body(log, page("Short", GOOD_WORDS), 50_000))
        self._route("empty-200", "/empty", fs.always(log, 200, b"", Content_Type="text/html; charset=utf-8"))
        self._route("pdf-content-type", "/paper.pdf",
                    fs.always(log, 200, b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj", Content_Type="application/pdf"))
        self._route("image-content-type", "/picture",
                    fs.always(log, 200, b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, Content_Type="image/png"))
        self._route("markup-without-text", "/no-text",
                    fs.always(log, 200, b"<html><head><script>var x = 1;</script></head><body><div></div>"
                              b"<span> </span><img src='x.png'></body></html>", Content_Type="text/html"))
        self._route("robots-disallow", "/private/page",
                    fs.always(log, 200, page("Private", GOOD_WORDS), Content_Type="text/html"))
        self.robots_down.routes["/robots.txt"] = fs.always(log, 503, b"down")
        self.robots_down.add("/page", page("Behind broken robots", GOOD_WORDS))
        self.urls["robots-5xx"] = self.robots_down.url("/page")
        self._route("not-http", "/not-http", fs.raw_answer(log, b"NOT HTTP AT ALL\r\n\r\n"))
        self._route("connection-reset", "/reset", fs.raw_answer(log, b"", reset=True))
        self._route("stalls-mid-body", "/stalls", fs.stalls_mid_body(log))
        self._route("invalid-gzip", "/invalid-gzip", fs.always(log, 200, b"\x1f\x8bnot really gzip data",
                                                               Content_Type="text/html", Content_Encoding="gzip"))
        self._route("unsupported-encoding", "/brotli", fs.always(log, 200, b"abcde", Content_Type="text/html",
                                                                 Content_Encoding="br"))
        self._route("broken-chunked", "/chunked", fs.raw_answer(
            log, b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n"))
        self._route("redirect-to-javascript", "/to-js", fs.always(log, 302, Location="javascript:alert(1)"))
        self._route("header-line-too-long", "/long-header", fs.always(log, 302, Location="/" + "a" * 100_000))
        self._route("http-599", "/599", fs.always(log, 599))
        # Recoverable faults.
        latin = ("<html><head><title>Caf\u00e9 society</title></head><body><article><h1>Caf\u00e9 society</h1>"
                 "<p>The caf\u00e9 served \u201cstrong\u201d coffee to na\u00efve visitors every single "
                 "morning of the long winter.</p></article></body></html>").encode("windows-1252")
        self._route("wrong-charset", "/wrong-charset",
                    fs.always(log, 200, latin, Content_Type="text/html; charset=utf-8"))
        self._route("unknown-charset", "/unknown-charset",
                    fs.always(log, 200, page("Unknown charset", "Zo\u00eb wrote na\u00efve r\u00e9sum\u00e9s "
                                             "for a living, paragraph after paragraph, all year."),
                              Content_Type="text/html; charset=x-no-such-charset"))
        malformed = (b"<html><head><title>Malformed</title></head><body><div><article><h1>Malformed page"
                     b"<p>The first paragraph is never closed and the markup around it is broken"
                     b"<p>A second paragraph <b>with <i>misnested</b> tags</i> still says something."
                     b"</span></div></div></table><p>Third paragraph after stray closing tags."
                     b"<!-- an unterminated comment")
        self._route("malformed-html", "/malformed", fs.always(log, 200, malformed, Content_Type="text/html"))
        self.robots_forbidden.routes["/robots.txt"] = fs.always(log, 403, b"forbidden")
        self.robots_forbidden.add("/page", page("Behind forbidden robots", GOOD_WORDS))
        self.urls["robots-4xx"] = self.robots_forbidden.url("/page")

    def close(self) -> None:
        self.log.release.set()
        for server in (self.main, self.robots_down, self.robots_forbidden):
            server.close()


@pytest.fixture(scope="module")
def web():
    faulty = FaultyWeb()
    yield faulty
    faulty.close()


def stray_files(root: Path) -> list[str]:
    """Anything in the root that is neither a bag folder nor .archiver: temp folders, partial files."""
    bags = {b.name for b in list_bag_dirs(root)}
    return sorted(p.name for p in root.iterdir() if p.name != ".archiver" and p.name not in bags)


def assert_valid_bag(bag_dir: Path) -> None:
    bagit.Bag(str(bag_dir)).validate()
    report = verify_bag(bag_dir)
    assert report.valid, report.problems


@dataclass
class BatchRun:
    root: Path
    code: int
    stdout: str
    stderr: str


@pytest.fixture(scope="module")
def batch(web: FaultyWeb, tmp_path_factory) -> BatchRun:
    """Every fault and the good pages in ONE run of the real CLI (a subprocess)."""
    root = tmp_path_factory.mktemp("batch") / "bags"
    sources = [*web.good[:2], *(web.urls[f.name] for f in FAULTS), web.good[2]]
    proc = subprocess.run([sys.executable, "-m", "archiver.cli", "snapshot", *sources, "--root", str(root), *FAST],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    return BatchRun(root, proc.returncode, proc.stdout, proc.stderr)


def lines_naming(text: str, url: str) -> list[str]:
    return [line for line in text.splitlines() if re.search(re.escape(url) + r"(?![\w/.-])", line)]


# -- the batch ---------------------------------------------------------------------------------

def test_batch_exits_1_and_bags_exactly_the_good_and_recovered_sources(web, batch) -> None:
    assert batch.code == 1, batch.stderr
    expected = len(web.good) + len(RECOVERED)
    summary = batch.stdout.strip().splitlines()[-1]
    assert summary == f"{expected} captured, 0 unchanged, {len(FAILING)} failed"
    bags = list_bag_dirs(batch.root)
    assert len(bags) == expected
    for bag_dir in bags:
        assert_valid_bag(bag_dir)
    assert stray_files(batch.root) == []


@pytest.mark.parametrize("fault", FAILING, ids=lambda f: f.name)
def test_batch_failure_is_one_line_naming_source_and_reason(web, batch, fault: Fault) -> None:
    url = web.urls[fault.name]
    lines = lines_naming(batch.stdout + batch.stderr, url)
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"failed     {url}: ")
    assert re.search(fault.reason, lines[0]), lines[0]
    assert lines_naming(batch.stderr, url) == lines, "failures go to stderr"
    # no bag for it: no bag's metadata names this URL
    for bag_dir in list_bag_dirs(batch.root):
        metadata = json.loads((bag_dir / "data" / "metadata.json").read_text())
        assert metadata["url"] != url
    failures = [e for e in read_events(batch.root).events if e.outcome == "failure" and e.detail.get("url") == url]
    assert len(failures) == 1 and re.search(fault.reason, failures[0].detail["reason"])


def test_good_sources_in_the_batch_are_bagged_and_valid(web, batch) -> None:
    for url in web.good:
        lines = lines_naming(batch.stdout, url)
        assert len(lines) == 1 and lines[0].startswith(f"captured   {url} -> "), lines
        bag_dir = Path(lines[0].rsplit(" -> ", 1)[1])
        assert bag_dir.parent == batch.root
        assert_valid_bag(bag_dir)
        assert GOOD_WORDS in (bag_dir / "data" / "text.txt").read_text()


@pytest.mark.parametrize("fault", RECOVERED, ids=lambda f: f.name)
def test_batch_recoverable_fault_is_captured_and_recorded(web, batch, fault: Fault) -> None:
    url = web.urls[fault.name]
    lines = lines_naming(batch.stdout + batch.stderr, url)
    assert len(lines) == 1 and lines[0].startswith(f"captured   {url} -> "), lines
    bag_dir = Path(lines[0].rsplit(" -> ", 1)[1])
    assert_valid_bag(bag_dir)
    check_recovered(fault.name, bag_dir)


def check_recovered(name: str, bag_dir: Path) -> None:
    metadata = json.loads((bag_dir / "data" / "metadata.json").read_text())
    text = (bag_dir / "data" / "text.txt").read_text(encoding="utf-8")
    if name == "wrong-charset":
        # The header said UTF-8; the bytes are windows-1252: the header is rejected, the words survive.
        assert metadata["charset"] == "windows-1252" and metadata["charset_source"] != "http-header"
        assert "The caf\u00e9 served \u201cstrong\u201d coffee to na\u00efve visitors" in text
        assert "\ufffd" not in text
    elif name == "unknown-charset":
        assert metadata["charset"] == "utf-8" and metadata["charset_source"] in ("meta", "detected")
        assert "Zo\u00eb wrote na\u00efve r\u00e9sum\u00e9s" in text
    elif name == "malformed-html":
        for words in ("The first paragraph is never closed", "still says something",
                      "Third paragraph after stray closing tags."):
            assert words in text
    elif name == "robots-4xx":
        assert "answered 403" in metadata["robots"] and "no restrictions" in metadata["robots"]
    else:  # pragma: no cover
        raise AssertionError(name)


# -- server-side evidence: retried, waited, aborted, never requested -------------------------------

def test_server_saw_retries_waits_and_aborts(web, batch) -> None:
    log = web.log
    assert log.count("/broken") == 2, "500 is retried (--retries 1), then fails"
    busy = log.hits["/busy"]
    assert len(busy) == 2 and busy[1] - busy[0] >= 0.9, "429 Retry-After: 1 is honoured"
    assert log.count("/silent") == 2, "a read timeout is retried once, then fails"
    assert "/chain-11" not in log.hits, "the redirect chain is cut at the cap (10 redirects)"
    assert log.count("/chain-10") == 1
    assert log.sent["/big-streamed"] < 16 * 1024 * 1024, "the streamed body was aborted, not read to the end"
    assert "/private/page" not in log.hits, "robots.txt disallow: the page is never requested"
    assert not any(r[1] == "/page" for r in web.robots_down.requests), "robots 5xx: nothing else requested"


# -- each fault on its own ---------------------------------------------------------------------------

runner = CliRunner()


@pytest.mark.parametrize("fault", FAULTS, ids=lambda f: f.name)
def test_fault_alone(web, tmp_path: Path, fault: Fault) -> None:
    url = web.urls[fault.name]
    root = tmp_path / "bags"
    result = runner.invoke(app, ["snapshot", url, "--root", str(root), *FAST, "--json"])
    document = json.loads(result.stdout)
    [source] = document["sources"]
    assert source["source"] == url
    if fault.captured:
        assert result.exit_code == 0 and source["outcome"] == "captured", source
        check_recovered(fault.name, root / source["bag"])
    else:
        assert result.exit_code == 1 and document["exit_code"] == 1
        assert source["outcome"] == "failed" and source["bag"] is None
        assert "\n" not in source["reason"] and re.search(fault.reason, source["reason"]), source["reason"]
        assert list_bag_dirs(root) == []
    assert stray_files(root) == []


@pytest.mark.slow
def test_charset_undefined_does_not_crash_the_batch(http_server, tmp_path: Path) -> None:
    undefined = http_server.add("/undefined", page("Undefined", GOOD_WORDS), content_type="text/html; charset=undefined")
    good = http_server.add("/good", page("Good", GOOD_WORDS))
    root = tmp_path / "bags"
    proc = subprocess.run([sys.executable, "-m", "archiver.cli", "snapshot", undefined, good, "--root", str(root),
                           *FAST, "--json"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert "Traceback" not in proc.stderr, proc.stderr[-1500:]
    document = json.loads(proc.stdout)
    outcomes = {s["source"]: s["outcome"] for s in document["sources"]}
    assert outcomes[good] == "captured" and outcomes[undefined] in ("captured", "failed")
    assert stray_files(root) == []


# --- no secrets in the archive -------------------------------------------------------
SECRET = "hunter2-s3cr3t"


def files_holding(folder: Path, needle: str) -> list[str]:
    """Every file under ``folder`` whose bytes contain ``needle`` (bags, WARCs, event log)."""
    if not folder.exists():
        return []
    return [str(p) for p in folder.rglob("*") if p.is_file() and needle.encode() in p.read_bytes()]


@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_source_url_with_credentials_is_refused_and_never_printed(http_server, tmp_path: Path,
                                                                  as_json: bool) -> None:
    good = http_server.add("/good", page("Good", GOOD_WORDS))
    private = good.replace("http://", f"http://reader:{SECRET}@")
    root = tmp_path / "bags"
    result = CliRunner().invoke(app, ["snapshot", good, private, "--root", str(root), *FAST]
                                + (["--json"] if as_json else []))
    assert result.exit_code == 2, result.output
    assert SECRET not in result.stdout + result.stderr
    assert "credentials" in result.stderr and "snapshot the saved file" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    if as_json:
        document = json.loads(result.stdout)
        assert document["exit_code"] == 2 and SECRET not in json.dumps(document)
    # Refused before anything ran: nothing fetched, nothing written.
    assert http_server.requests == []
    assert files_holding(tmp_path, SECRET) == []


def test_manifest_source_with_credentials_is_refused_with_file_and_line(http_server, tmp_path: Path) -> None:
    good = http_server.add("/good", page("Good", GOOD_WORDS))
    manifest = tmp_path / "m.toml"
    manifest.write_text(f'[collection]\nid = "c"\n\n[[sources]]\nurl = "{good}"\n\n'
                        f'[[sources]]\nurl = "{good.replace("http://", "http://u:" + SECRET + "@")}"\n')
    root = tmp_path / "bags"
    result = CliRunner().invoke(app, ["snapshot", "--manifest", str(manifest), "--root", str(root), *FAST,
                                      "--json"])
    assert result.exit_code == 2, result.output
    assert f"{manifest}:7" in result.stderr and "credentials" in result.stderr
    assert SECRET not in result.stdout + result.stderr
    assert json.loads(result.stdout)["exit_code"] == 2
    assert http_server.requests == []
    assert files_holding(root, SECRET) == []


def test_redirect_to_a_url_with_credentials_is_not_followed(http_server, tmp_path: Path) -> None:
    target = http_server.add("/private", page("Private", GOOD_WORDS))
    start = http_server.add("/start", b"", status=302,
                            Location=target.replace("http://", f"http://u:{SECRET}@"))
    root = tmp_path / "bags"
    result = CliRunner().invoke(app, ["snapshot", start, "--root", str(root), *FAST, "--json"])
    assert result.exit_code == 1, result.output
    [source] = json.loads(result.stdout)["sources"]
    assert source["outcome"] == "failed" and "credentials" in source["reason"]
    assert SECRET not in result.stdout + result.stderr
    assert [path for _, path, _ in http_server.requests if path != "/robots.txt"] == ["/start"]
    assert files_holding(root, SECRET) == []


def test_malformed_source_url_is_a_usage_error_not_a_traceback(tmp_path: Path) -> None:
    for url in ("http://[::1", "http://127.0.0.1:99999/", "https://[::1]:x/"):
        result = CliRunner().invoke(app, ["snapshot", url, "--root", str(tmp_path / "bags"), "--json"])
        assert result.exit_code == 2, result.output
        assert "not a valid URL" in result.stderr and "Traceback" not in result.output
        assert json.loads(result.stdout)["exit_code"] == 2
    assert not (tmp_path / "bags").exists()
