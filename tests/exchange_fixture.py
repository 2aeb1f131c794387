"""A small real collection for the export tests, made by the real snapshot pipeline
over a loopback HTTP server: one essay captured three times (its text changes
each time), a page sent gzip-encoded, and a page sent with chunked framing."""

from __future__ import annotations

import gzip
import http.server
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from typer.testing import CliRunner

from conftest import LoopbackServer

from archiver.cli import app

runner = CliRunner()


def essay(version: int) -> bytes:
    return (f"""<!DOCTYPE html><html><head><meta charset="utf-8"><title>On Keeping Things, draft {version}</title>
<meta name="author" content="Ada Tester"></head><body><nav><a href="/">Home</a></nav>
<article><h1>On Keeping Things, draft {version}</h1>
<p>The first paragraph of draft {version} says something plain and long enough to count as text.</p>
<p>The second paragraph follows it, with a word or two more than the first one had in draft {version}.</p>
</article></body></html>""").encode("utf-8")


GZ_PAGE = ("""<!DOCTYPE html><html><head><meta charset="utf-8"><title>Compressed Notes</title></head>
<body><article><h1>Compressed Notes</h1><p>This page travels gzip-encoded, and its bytes are kept as they came over the wire.</p>
<p>A second paragraph makes it long enough for the extractor to keep; zażółć gęślą jaźń.</p></article></body></html>"""
           ).encode("utf-8")
CHUNKED_PAGE = ("""<!DOCTYPE html><html><head><meta charset="utf-8"><title>Chunked Letters</title></head>
<body><article><h1>Chunked Letters</h1><p>This page arrives in chunks with no Content-Length, as many servers send dynamic pages.</p>
<p>Its second paragraph is here so that the extractor has enough text to keep the page whole.</p></article></body></html>"""
                ).encode("utf-8")


def send_gzip(handler: http.server.BaseHTTPRequestHandler) -> None:
    body = gzip.compress(GZ_PAGE, mtime=0)
    handler.send_response(200)
    handler.send_header("Content-Type", "text/html; charset=utf-8")
    handler.send_header("Content-Encoding", "gzip")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def send_chunked(handler: http.server.BaseHTTPRequestHandler) -> None:
    handler.send_response(200)
    handler.send_header("Content-Type", "text/html; charset=utf-8")
    handler.send_header("Transfer-Encoding", "chunked")
    handler.end_headers()
    for start in range(0, len(CHUNKED_PAGE), 100):
        piece = CHUNKED_PAGE[start:start + 100]
        handler.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
    handler.wfile.write(b"0\r\n\r\n")


@dataclass
class Collection:
    root: Path
    essay_url: str
    gz_url: str
    chunked_url: str
    essay_bodies: list[bytes] = field(default_factory=list)
    server: LoopbackServer | None = None

    def bags_of(self, url: str) -> list[str]:
        names = []
        for bag in sorted(p for p in self.root.iterdir() if (p / "bagit.txt").is_file()):
            if json.loads((bag / "data" / "metadata.json").read_text())["url"] == url:
                names.append(bag.name)
        return names


def export(root: Path, out: Path, format_: str, *selection: str) -> tuple[int, dict]:
    """`archiver export ... --json`: (exit code, the JSON document)."""
    result = runner.invoke(app, ["export", *selection, "--root", str(root), "--format", format_,
                                 "--out", str(out), "--json"])
    return result.exit_code, json.loads(result.stdout)


def snapshot(root: Path, *urls: str) -> dict:
    result = runner.invoke(app, ["snapshot", *urls, "--root", str(root), "--delay", "0",
                                 "--retries", "0", "--timeout", "5", "--json"])
    document = json.loads(result.stdout)
    assert result.exit_code == 0, result.stdout + result.stderr
    return document


def next_second() -> None:
    """Sleep into the next wall-clock second: captures then get distinct retrieval
    times (bag names and WARC dates have whole seconds), so replay can tell them apart."""
    time.sleep(1.02 - (time.time() % 1.0))


def make_collection(root: Path, server: LoopbackServer, essay_captures: int = 3) -> Collection:
    """Capture the essay ``essay_captures`` times (changing it between captures),
    the gzip page and the chunked page once."""
    server.routes["/gz"] = send_gzip
    server.routes["/chunked"] = send_chunked
    collection = Collection(root, server.url("/essay"), server.url("/gz"), server.url("/chunked"), server=server)
    for version in range(1, essay_captures + 1):
        if version > 1:
            next_second()
        server.add("/essay", essay(version))
        collection.essay_bodies.append(essay(version))
        urls = [collection.essay_url] + ([collection.gz_url, collection.chunked_url] if version == 1 else [])
        snapshot(root, *urls)
    return collection


def capture_again(collection: Collection, version: int) -> None:
    """One more capture of the essay, with new text."""
    assert collection.server is not None
    next_second()
    collection.server.add("/essay", essay(version))
    collection.essay_bodies.append(essay(version))
    snapshot(collection.root, collection.essay_url)
