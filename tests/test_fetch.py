"""archiver.capture.fetch and archiver.capture.warc against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import gzip
import io
import socket
import subprocess
import sys
import time

import pytest
from warcio.archiveiterator import ArchiveIterator

from conftest import send_body

from archiver.errors import FetchError, RobotsDisallowed, TooLarge
from archiver.capture.fetch import Fetcher, FetchSettings, parse_content_type
from archiver.capture.warc import capture_to_warc

PAGE = "<html><head><title>T</title></head><body><p>Hello there, reader.</p></body></html>"


def fast(**kw) -> FetchSettings:
    base = dict(delay=0, retries=2, backoff_factor=0.01, read_timeout=2, connect_timeout=2)
    base.update(kw)
    return FetchSettings(**base)


def test_redirects_are_followed_and_every_hop_recorded(http_server, tmp_path) -> None:
    http_server.add("/old", b"", status=301, Location="/new")
    http_server.add("/new", b"", status=302, Location=http_server.url("/page"))
    http_server.add("/page", PAGE, ETag='"v1"')
    capture = Fetcher(fast()).fetch(http_server.url("/old"))
    assert capture.final_url == http_server.url("/page")
    assert [e.status for e in capture.exchanges] == [301, 302, 200]
    assert capture.header("ETag") == '"v1"'
    assert capture.body == PAGE.encode()
    warc = capture_to_warc(capture)
    path = tmp_path / "c.warc.gz"
    path.write_bytes(warc)
    records = [(r.rec_type, r.rec_headers.get_header("WARC-Target-URI"), r.rec_headers.get_header("WARC-Date"))
               for r in ArchiveIterator(io.BytesIO(warc))]
    assert [r[0] for r in records] == ["warcinfo"] + ["response", "request"] * 3
    assert {r[2] for r in records} == {capture.retrieved.strftime("%Y-%m-%dT%H:%M:%SZ")}
    assert [r[1] for r in records[1::2]] == [http_server.url(p) for p in ("/old", "/new", "/page")]
    check = subprocess.run([sys.executable, "-m", "warcio.cli", "check", str(path)],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_body_is_recorded_as_received_and_decoded_for_use(http_server) -> None:
    raw = gzip.compress(PAGE.encode())
    http_server.add("/gz", raw, Content_Encoding="gzip")
    capture = Fetcher(fast()).fetch(http_server.url("/gz"))
    assert capture.exchanges[-1].body == raw
    assert capture.body == PAGE.encode()
    bodies = [r.content_stream().read() for r in ArchiveIterator(io.BytesIO(capture_to_warc(capture)))
              if r.rec_type == "response"]
    assert bodies == [PAGE.encode()]


def test_redirect_loop_and_too_many_redirects_fail(http_server) -> None:
    http_server.add("/a", b"", status=302, Location="/b")
    http_server.add("/b", b"", status=302, Location="/a")
    with pytest.raises(FetchError, match="more than 3 redirects"):
        Fetcher(fast(max_redirects=3)).fetch(http_server.url("/a"))
    for i in range(12):
        http_server.add(f"/r{i}", b"", status=302, Location=f"/r{i + 1}")
    http_server.add("/r12", PAGE)
    with pytest.raises(FetchError, match="more than 10 redirects"):
        Fetcher(fast()).fetch(http_server.url("/r0"))


def test_500_is_retried_then_fails(http_server) -> None:
    http_server.add("/err", "boom", status=500)
    with pytest.raises(FetchError, match="HTTP 500"):
        Fetcher(fast(retries=2)).fetch(http_server.url("/err"))
    assert sum(1 for r in http_server.requests if r[1] == "/err") == 3


def test_429_retry_after_is_honoured(http_server) -> None:
    calls = []

    def flaky(handler) -> None:
        calls.append(time.monotonic())
        if len(calls) == 1:
            handler.send_response(429)
            handler.send_header("Retry-After", "1")
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        send_body(handler, PAGE.encode())

    http_server.routes["/busy"] = flaky
    capture = Fetcher(fast()).fetch(http_server.url("/busy"))
    assert capture.status == 200 and len(calls) == 2
    assert calls[1] - calls[0] >= 0.95


def test_404_fails_with_status(http_server) -> None:
    with pytest.raises(FetchError, match="HTTP 404"):
        Fetcher(fast()).fetch(http_server.url("/missing"))


def test_connection_refused() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    with pytest.raises(FetchError, match="connection refused|cannot connect"):
        Fetcher(fast(retries=1)).fetch(f"http://127.0.0.1:{port}/")


def test_read_timeout(http_server) -> None:
    def silent(handler) -> None:
        time.sleep(3)

    http_server.routes["/slow"] = silent
    started = time.monotonic()
    with pytest.raises(FetchError, match="read timeout"):
        Fetcher(fast(read_timeout=0.5, retries=0)).fetch(http_server.url("/slow"))
    assert time.monotonic() - started < 2.5


def test_size_cap_raw_and_decoded(http_server) -> None:
    http_server.add("/big", b"x" * 5000)
    with pytest.raises(TooLarge):
        Fetcher(fast(max_bytes=1000)).fetch(http_server.url("/big"))
    bomb = gzip.compress(b"<p>" + b"a" * 2_000_000)
    http_server.add("/bomb", bomb, Content_Encoding="gzip")
    assert len(bomb) < 100_000
    with pytest.raises(TooLarge, match="inflates"):
        Fetcher(fast(max_bytes=100_000)).fetch(http_server.url("/bomb"))


def test_robots_disallow_and_errors(http_server) -> None:
    http_server.add("/robots.txt", "User-agent: *\nDisallow: /private\n", content_type="text/plain")
    http_server.add("/private/page", PAGE)
    http_server.add("/public", PAGE)
    fetcher = Fetcher(fast())
    with pytest.raises(RobotsDisallowed, match="disallows"):
        fetcher.fetch(http_server.url("/private/page"))
    assert fetcher.fetch(http_server.url("/public")).robots == "allowed by robots.txt"
    assert not any(r[1] == "/private/page" for r in http_server.requests)
    assert Fetcher(fast(obey_robots=False)).fetch(http_server.url("/private/page")).status == 200


def test_robots_5xx_means_disallow_and_404_means_allow(http_server) -> None:
    http_server.add("/robots.txt", "down", status=503)
    http_server.add("/p", PAGE)
    with pytest.raises(RobotsDisallowed, match="503"):
        Fetcher(fast(retries=0)).fetch(http_server.url("/p"))
    http_server.routes.pop("/robots.txt")  # now 404
    capture = Fetcher(fast()).fetch(http_server.url("/p"))
    assert "no restrictions" in capture.robots


def test_per_host_delay(http_server) -> None:
    http_server.add("/robots.txt", "", content_type="text/plain")
    http_server.add("/a", PAGE)
    http_server.add("/b", PAGE)
    fetcher = Fetcher(fast(delay=0.4))
    started = time.monotonic()
    fetcher.fetch(http_server.url("/a"))
    fetcher.fetch(http_server.url("/b"))
    # robots.txt, /a, /b: two gaps of at least the delay
    assert time.monotonic() - started >= 0.8


def test_user_agent_is_sent(http_server) -> None:
    http_server.add("/ua", PAGE)
    Fetcher(fast(user_agent="TestArchiver/9", obey_robots=False)).fetch(http_server.url("/ua"))
    assert http_server.requests[-1][2]["User-Agent"] == "TestArchiver/9"


def test_netrc_credentials_are_never_sent_or_recorded(http_server, tmp_path, monkeypatch) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login librarian password NetrcSecret1\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    http_server.add("/private", PAGE)
    capture = Fetcher(fast(obey_robots=False)).fetch(http_server.url("/private"))
    assert "Authorization" not in http_server.requests[-1][2]
    assert all(name.lower() != "authorization" for hop in capture.exchanges for name, _ in hop.request_headers)
    # control: requests itself would have sent them
    import requests
    assert requests.get(http_server.url("/private"), timeout=5).request.headers.get("Authorization")


def test_parse_content_type() -> None:
    assert parse_content_type('text/HTML; Charset="ISO-8859-1"') == ("text/html", "ISO-8859-1")
    assert parse_content_type("") == ("", None)


def test_robots_group_for_archiver_applies_to_the_default_user_agent(http_server) -> None:
    http_server.add("/robots.txt", "User-agent: archiver\nDisallow: /\n\nUser-agent: *\nAllow: /\n",
                    content_type="text/plain")
    http_server.add("/page", PAGE)
    with pytest.raises(RobotsDisallowed):
        Fetcher(fast()).fetch(http_server.url("/page"))
    assert Fetcher(fast(user_agent="OtherBot/1")).fetch(http_server.url("/page")).status == 200
