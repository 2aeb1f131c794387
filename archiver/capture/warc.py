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
import re
import zlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Iterator, TypedDict
from urllib.parse import urlsplit

from warcio.archiveiterator import ArchiveIterator
from warcio.recordloader import ArcWarcRecord
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from archiver import AGENT

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

    def write(self, record: ArcWarcRecord) -> None:
        self._record.seek(0)
        self._record.truncate()
        self.writer.write_record(record)
        self.members.append(gzip.compress(self._record.getvalue(), compresslevel=GZIP_LEVEL, mtime=0))

    def getvalue(self) -> bytes:
        return b"".join(self.members)
from archiver.errors import StorageError, TooLarge
from archiver.clock import iso
from archiver.capture.fetch import Capture, Exchange


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


def capture_to_warc(capture: Capture, robots_note: str | None = None,
                    attachments: list[Capture] | None = None) -> bytes:
    """Render a Capture (every hop, then every hop of each attachment) as a gzipped WARC."""
    out = _RecordGzipWriter()
    when = iso(capture.retrieved)
    _warcinfo(out, capture.retrieved, {"robots": robots_note or capture.robots})
    for exchange in capture.exchanges:
        _write_exchange(out, exchange, when)
    for attachment in attachments or []:
        for exchange in attachment.exchanges:
            _write_exchange(out, exchange, iso(attachment.retrieved))
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


def read_final_response(warc_bytes: bytes, final_url: str | None = None,
                        max_bytes: int = 50 * 1024 * 1024) -> tuple[str, bytes, dict[str, str]] | None:
    """(target URI, decoded body, HTTP headers) of a capture's page in its WARC:
    the 200 response (or resource) record for ``final_url``, else the last
    such record that is not an attachment's; None if there is none. Bodies
    are inflated with a cap: over ``max_bytes`` raises TooLarge, so a gzip
    bomb in a stored WARC cannot exhaust memory. Used to re-derive text offline.
    """
    found = None
    for record in ArchiveIterator(io.BytesIO(warc_bytes)):
        if record.rec_type not in ("response", "resource"):
            continue
        if record.rec_type == "response" and (record.http_headers is None
                                              or record.http_headers.get_statuscode() != "200"):
            continue
        uri = record.rec_headers.get_header("WARC-Target-URI")
        headers = dict(record.http_headers.headers) if record.http_headers else {}
        body = _read_capped(record.content_stream(), max_bytes, uri)
        if final_url is not None and uri == final_url:
            return uri, body, headers
        if found is None or final_url is None:
            found = (uri, body, headers)
    return found


def _read_capped(stream: IO[bytes], max_bytes: int, uri: str) -> bytes:
    """Read a (decoding) stream in small chunks, stopping as soon as it passes the cap."""
    body = bytearray()
    while chunk := stream.read(1 << 16):
        body += chunk
        if len(body) > max_bytes:
            raise TooLarge(f"the stored response for {uri} inflates past the {max_bytes:,}-byte cap")
    return bytes(body)


@dataclass
class ArchivedResponse:
    """One HTTP response found in someone else's WARC, with its original records."""

    uri: str
    date: str                        # WARC-Date as recorded
    status: int
    headers: list[tuple[str, str]]
    body: bytes                      # transfer- and content-decoding undone
    records: bytes                   # the original response (and request) records, gzipped members
    error: str | None = None         # why this response cannot be bagged (then body/records are empty)


def iter_html_responses(path: Path, url_filter: str | None = None,
                        max_bytes: int = 50 * 1024 * 1024) -> Iterator[ArchivedResponse]:
    """Every 200 HTML response record of a WARC (gzipped or not), with the raw
    bytes of the record and of its request record, for ``--from-warc``.

    ``url_filter`` is a regular expression searched in WARC-Target-URI. A
    first pass indexes the records (request records may come before or after
    their response); a second reads each chosen response alone. Bodies are
    read with a cap (``max_bytes``) and larger ones skipped, so a hostile WARC
    cannot exhaust memory.
    """
    pattern = re.compile(url_filter) if url_filter else None
    index = _index_records(path)
    requests_by_id = {e["concurrent"]: e for e in index if e["type"] == "request" and e["concurrent"] is not None}
    requests_by_uri = {e["uri"]: e for e in index if e["type"] == "request"}
    with open(path, "rb") as raw:
        for entry in index:
            if entry["type"] != "response" or entry["status"] != 200:
                continue
            if not entry["content_type"].lower().startswith(("text/html", "application/xhtml")):
                continue
            if pattern and not pattern.search(entry["uri"]):
                continue
            try:
                member = _member(raw, entry)
                record = next(iter(ArchiveIterator(io.BytesIO(member))))
                body = _read_capped(record.content_stream(), max_bytes, entry["uri"])
                http_headers = list(record.http_headers.headers)
            except TooLarge as exc:
                yield ArchivedResponse(entry["uri"], entry["date"], 200, [], b"", b"", error=str(exc))
                continue
            except StorageError as exc:
                yield ArchivedResponse(entry["uri"], entry["date"], 200, [], b"", b"", error=str(exc))
                continue
            except Exception as exc:  # warcio raises assorted errors on damaged records
                yield ArchivedResponse(entry["uri"], entry["date"], 200, [], b"", b"",
                                       error=f"the record cannot be read: {type(exc).__name__}: {exc}")
                continue
            request = requests_by_id.get(entry["id"] or "") or requests_by_uri.get(entry["uri"])
            try:
                records = member + (_member(raw, request) if request else b"")
            except StorageError:
                records = member  # a damaged request record is left out; the response is whole
            yield ArchivedResponse(entry["uri"], entry["date"], 200, http_headers, body, records)


def _check_warc_magic(path: Path) -> None:
    """Refuse anything that does not start with a WARC record (warcio would
    read arbitrary text as ARC-like records)."""
    with open(path, "rb") as handle:
        head = handle.read(4096)
    if head[:2] == b"\x1f\x8b":
        try:
            head = zlib.decompressobj(zlib.MAX_WBITS | 16).decompress(head, 16)
        except zlib.error:
            head = b""
    if not head.startswith(b"WARC/"):
        raise StorageError(f"{path} is not a readable WARC: it does not start with a WARC record")


class _RecordEntry(TypedDict):
    """Where one record of a WARC file is, and what it is."""

    type: str
    uri: str
    id: str | None
    concurrent: str | None
    date: str
    status: int | None
    content_type: str
    offset: int
    length: int


def _index_records(path: Path) -> list[_RecordEntry]:
    entries: list[_RecordEntry] = []
    try:
        _check_warc_magic(path)
        with open(path, "rb") as handle:
            iterator = ArchiveIterator(handle)
            for record in iterator:
                http = record.http_headers
                headers = record.rec_headers
                status = http.get_statuscode() if http is not None and record.rec_type == "response" else None
                iterator.read_to_end(record)
                entries.append(_RecordEntry(
                    type=record.rec_type,
                    uri=headers.get_header("WARC-Target-URI") or "",
                    id=headers.get_header("WARC-Record-ID"),
                    concurrent=headers.get_header("WARC-Concurrent-To"),
                    date=headers.get_header("WARC-Date") or "",
                    status=int(status) if status and status.isdigit() else None,
                    content_type=(http.get_header("Content-Type") or "") if http is not None else "",
                    offset=iterator.get_record_offset(),
                    length=iterator.get_record_length()))
    except OSError as exc:
        raise StorageError(f"cannot read WARC {path}: {exc.strerror or exc}") from exc
    except StorageError:
        raise
    except Exception as exc:  # warcio raises assorted errors (ValueError, OverflowError, …)
        raise StorageError(f"{path} is not a readable WARC: {type(exc).__name__}: {exc}") from exc
    return entries


def check_gzip_whole(data: bytes) -> None:
    """Read every gzip member to its end marker and checksum, in bounded memory.
    Raises (OSError, EOFError, zlib.error) if cut off or corrupt: warcio reads a
    cut-off member without complaint."""
    with gzip.GzipFile(fileobj=io.BytesIO(data)) as stream:
        while stream.read(1 << 20):
            pass


def _member(raw: IO[bytes], entry: _RecordEntry) -> bytes:
    """The bytes of one record, as a gzip member (compressing it if the WARC was
    not). StorageError when the record is cut off or its compression is damaged:
    warcio would hand back the part that is there, and a partial page must not
    become a bag."""
    raw.seek(entry["offset"])
    data = raw.read(entry["length"])
    if len(data) < entry["length"]:
        raise StorageError(f"the record for {entry['uri']} is cut off")
    if data[:2] == b"\x1f\x8b":
        try:
            check_gzip_whole(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise StorageError(f"the record for {entry['uri']} is cut off or damaged ({exc})") from exc
        return data
    head, sep, _rest = data.partition(b"\r\n\r\n")
    declared = re.search(rb"(?im)^content-length:\s*(\d+)\s*$", head)
    if not sep or declared is None or len(data) - len(head) - len(sep) < int(declared.group(1)):
        raise StorageError(f"the record for {entry['uri']} is cut off")
    return gzip.compress(data, compresslevel=GZIP_LEVEL, mtime=0)


def archived_to_warc(response: ArchivedResponse, source_warc: str, when: datetime) -> bytes:
    """Our warcinfo record, then the original records copied byte for byte."""
    out = _RecordGzipWriter()
    _warcinfo(out, when, {"source": f"records copied from {source_warc}"})
    return out.getvalue() + response.records
