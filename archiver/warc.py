"""The raw capture as WARC (ISO 28500), through warcio.

A bag's ``data/capture.warc.gz`` holds a ``warcinfo`` record, then a
``request``/``response`` pair for every HTTP hop (redirects included), bodies
as received, or one ``resource`` record for a local file. Every record's
``WARC-Date`` is the retrieval time of the capture.

urllib3 removes chunked transfer framing while reading, so the body we hold is
de-chunked; a ``Transfer-Encoding: chunked`` header is therefore kept as
``X-Archiver-Orig-Transfer-Encoding`` so WARC readers do not try to de-chunk
the body a second time (this is said in the warcinfo record).
"""

from __future__ import annotations

import gzip
import io
from datetime import datetime
from urllib.parse import urlsplit

from warcio.archiveiterator import ArchiveIterator
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from . import AGENT

# warcio compresses at level 9; level 6 is several times faster for ~1% more
# bytes. Each record is still its own gzip member, as WARC readers expect.
GZIP_LEVEL = 6


class _RecordGzipWriter:
    """Collects records written uncompressed by warcio and gzips each one as
    its own member (what ``WARCWriter(gzip=True)`` does, at a faster level)."""

    def __init__(self) -> None:
        self.members: list[bytes] = []
        self._record = io.BytesIO()
        self.writer = WARCWriter(self._record, gzip=False)

    def write(self, record) -> None:
        self._record.seek(0)
        self._record.truncate()
        self.writer.write_record(record)
        self.members.append(gzip.compress(self._record.getvalue(), compresslevel=GZIP_LEVEL, mtime=0))

    def getvalue(self) -> bytes:
        return b"".join(self.members)
from .events import iso
from .fetch import Capture, Exchange


def _warcinfo(out: _RecordGzipWriter, when: datetime, extra: dict[str, str]) -> None:
    info = {
        "software": AGENT,
        "format": "WARC File Format 1.0",
        "note": "response bodies are as received; chunked transfer framing was removed by the "
                "HTTP client and the header renamed X-Archiver-Orig-Transfer-Encoding",
        **extra,
    }
    record = out.writer.create_warcinfo_record("capture.warc.gz", info)
    record.rec_headers.replace_header("WARC-Date", iso(when))
    out.write(record)


def capture_to_warc(capture: Capture, robots_note: str | None = None) -> bytes:
    """Render a Capture (every hop) as a gzipped WARC."""
    out = _RecordGzipWriter()
    when = iso(capture.retrieved)
    _warcinfo(out, capture.retrieved, {"robots": robots_note or capture.robots})
    for exchange in capture.exchanges:
        _write_exchange(out, exchange, when)
    return out.getvalue()


def _write_exchange(out: _RecordGzipWriter, exchange: Exchange, when: str) -> None:
    writer = out.writer
    headers = [
        ("X-Archiver-Orig-Transfer-Encoding", value) if key.lower() == "transfer-encoding" else (key, value)
        for key, value in exchange.response_headers
    ]
    http_headers = StatusAndHeaders(f"{exchange.status} {exchange.reason}".strip(), headers,
                                    protocol=exchange.http_version)
    response = writer.create_warc_record(
        exchange.url, "response", payload=io.BytesIO(exchange.body), length=len(exchange.body),
        http_headers=http_headers, warc_headers_dict={"WARC-Date": when})
    parts = urlsplit(exchange.url)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    request_headers = exchange.request_headers
    if not any(k.lower() == "host" for k, _ in request_headers):
        request_headers = [("Host", parts.netloc), *request_headers]
    request = writer.create_warc_record(
        exchange.url, "request", payload=io.BytesIO(b""), length=0,
        http_headers=StatusAndHeaders(f"{exchange.method} {target} HTTP/1.1", request_headers,
                                      is_http_request=True),
        warc_headers_dict={"WARC-Date": when,
                           "WARC-Concurrent-To": response.rec_headers.get_header("WARC-Record-ID")})
    out.write(response)
    out.write(request)


def resource_to_warc(uri: str, body: bytes, content_type: str, when: datetime) -> bytes:
    """A local file as one ``resource`` record under its ``file://`` URI."""
    out = _RecordGzipWriter()
    _warcinfo(out, when, {"source": "local file"})
    record = out.writer.create_warc_record(
        uri, "resource", payload=io.BytesIO(body), length=len(body),
        warc_content_type=content_type, warc_headers_dict={"WARC-Date": iso(when)})
    out.write(record)
    return out.getvalue()


def read_final_response(warc_bytes: bytes) -> tuple[str, bytes, dict[str, str]] | None:
    """(target URI, decoded body, HTTP headers) of the last response or resource
    record in a WARC; None if it has none. Used to re-derive text offline."""
    found = None
    for record in ArchiveIterator(io.BytesIO(warc_bytes)):
        if record.rec_type in ("response", "resource"):
            uri = record.rec_headers.get_header("WARC-Target-URI")
            headers = dict(record.http_headers.headers) if record.http_headers else {}
            found = (uri, record.content_stream().read(), headers)
    return found
