"""WACZ 1.1.1 export: a collection's captures packaged for replay tools.

One ZIP file (``.wacz``) holding

- ``archive/<bag>.warc.gz``: each bag's ``data/capture.warc.gz``, byte for byte,
  stored (ZIP_STORED: no recompression, so replay tools read records by range);
- ``indexes/index.cdx``: a sorted CDXJ index of those WARCs, made by
  ``cdxj-indexer`` (Webrecorder's indexer, the one py-wacz uses; its SURT keys are
  what pywb and ReplayWeb.page look up);
- ``pages/pages.jsonl``: one page per capture with ``url``, ``ts`` (retrieval
  time), ``title`` and ``text`` = the bag's canonical text (``data/text.txt``);
- ``datapackage.json`` with every resource's sha256 and size, and
  ``datapackage-digest.json`` with the sha256 of ``datapackage.json``.

Every WARC and text is checked against the bag's own manifest while it is read:
a damaged bag is left out with a problem, never packaged. The file is built
beside ``out`` under a temporary name, fsynced, and linked into place (an
existing file is never overwritten).

    >>> report = export_wacz(Path("bags"), None, None, Path("collection.wacz"))
    >>> report.ok, len(report.pages)
    (True, 3)
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import re
import tempfile
import uuid
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Callable

from cdxj_indexer.main import CDXJIndexer

from archiver import AGENT
from archiver.bagit.verify import Problem
from archiver.clock import iso, utc_now
from archiver.durable import fsync_dir, fsync_file
from archiver.errors import ArchiverError, StorageError, UsageError
from archiver.exchange.captures import CaptureBag, manifest_digests, read_small, require_some, select_captures

WACZ_VERSION = "1.1.1"
WARC_PATH = "data/capture.warc.gz"
TEXT_PATH = "data/text.txt"
MAX_TEXT_BYTES = 64 * 1024 * 1024
_CHUNK = 1 << 20
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")


@dataclass
class WaczPage:
    bag: str
    url: str
    ts: str
    title: str | None
    warc: str               # path inside the WACZ
    warc_bytes: int
    warc_sha256: str


@dataclass
class WaczReport:
    out: str
    pages: list[WaczPage] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    bytes: int = 0                    # size of the .wacz written
    index_lines: int = 0
    datapackage_sha256: str = ""

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {"format": "wacz", "out": self.out, "ok": self.ok, "bytes": self.bytes,
                "index_lines": self.index_lines, "datapackage_sha256": self.datapackage_sha256,
                "pages": [vars(page) for page in self.pages],
                "problems": [p.to_dict() for p in self.problems]}


class _HashingReader(io.RawIOBase):
    """Passes reads through while hashing every byte read."""

    def __init__(self, stream: BinaryIO, algorithms: tuple[str, ...]) -> None:
        self.stream = stream
        self.hashes = {name: hashlib.new(name) for name in algorithms}
        self.size = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size)
        for digest in self.hashes.values():
            digest.update(data)
        self.size += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def drain(self) -> None:
        while self.read(_CHUNK):
            pass

    def hexdigest(self, name: str) -> str:
        return self.hashes[name].hexdigest()


@dataclass
class _Checked:
    capture: CaptureBag
    warc_name: str
    warc_size: int
    warc_sha256: str
    lines: list[str]


def export_wacz(root: Path, bags: list[str] | None, urls: list[str] | None, out: Path,
                on_progress: Callable[..., None] | None = None) -> WaczReport:
    """Write the selected captures of the collection at ``root`` (``bags`` names,
    or every capture of ``urls``, or every bag when both are None) as one WACZ
    file ``out``. Bags that cannot be exported are problems in the report (the
    others are still packaged); UsageError when nothing can be exported or
    ``out`` is not a new ``.wacz`` path; StorageError when it cannot be written."""
    out = Path(out)
    _check_out(out)
    captures, problems = select_captures(Path(root), bags, urls)
    require_some(captures, problems)
    report = WaczReport(out=str(out), problems=list(problems))
    checked: list[_Checked] = []
    names: set[str] = set()
    tmp = out.parent / f".tmp-{out.name}-{uuid.uuid4().hex[:12]}"
    try:
        pages = tempfile.TemporaryFile(dir=out.parent)
    except OSError as exc:
        raise StorageError(f"cannot write in {out.parent}: {exc.strerror or exc}") from exc
    with pages:
        pages.write(_PAGES_HEADER)
        for done, capture in enumerate(captures, start=1):
            try:
                checked.append(_check_capture(capture, _unique_name(capture.bag, names), pages))
            except ArchiverError as exc:
                report.problems.append(Problem(getattr(exc, "code", "bag-unreadable"), capture.bag, str(exc)))
            if on_progress:
                on_progress(done, 2 * len(captures), f"indexing {capture.bag}")
        require_some([c.capture for c in checked], report.problems)
        pages.seek(0)
        _package(tmp, out, checked, pages, report, on_progress)
    report.bytes = out.stat().st_size
    return report


def _package(tmp: Path, out: Path, checked: list[_Checked], pages: BinaryIO, report: WaczReport,
             on_progress: Callable[..., None] | None) -> None:
    """Write the ZIP under ``tmp``, fsync it, and link it to ``out`` (never replacing a file)."""
    try:
        _write_zip(tmp, checked, pages, report, on_progress)
        fsync_file(tmp)
        try:
            os.link(tmp, out)   # never replaces a file that appeared meanwhile
        except FileExistsError as exc:
            raise UsageError(f"{out} already exists; give a new file name") from exc
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
                raise
            if out.exists():    # a filesystem without hard links: check, then rename
                raise UsageError(f"{out} already exists; give a new file name") from exc
            os.rename(tmp, out)
        fsync_dir(out.parent)
    except OSError as exc:
        raise StorageError(f"cannot write {out}: {exc.strerror or exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)


def _check_out(out: Path) -> None:
    if out.suffix.lower() != ".wacz":
        raise UsageError(f"{out}: a WACZ file name must end in .wacz")
    if out.exists() or out.is_symlink():
        raise UsageError(f"{out} already exists; give a new file name")
    if not out.parent.is_dir():
        raise StorageError(f"cannot write {out}: folder {out.parent} does not exist")


def _unique_name(bag: str, taken: set[str]) -> str:
    base = _UNSAFE_NAME.sub("-", bag).lstrip(".") or "capture"
    name, n = f"{base}.warc.gz", 1
    while name.lower() in taken:
        n += 1
        name = f"{base}-{n}.warc.gz"
    taken.add(name.lower())
    return name


class _BagDamaged(StorageError):
    code = "checksum-mismatch"


def _check_capture(capture: CaptureBag, warc_name: str, pages: BinaryIO) -> _Checked:
    """Index one bag's WARC and read its text, checking both against the bag's
    manifest (sha256, else sha512), then add its line to the ``pages`` spool (texts
    are not held in memory). StorageError when either cannot be read, is not
    listed, or does not match (and no page line is written)."""
    reader = capture.reader()
    expected = {name: manifest_digests(reader, f"manifest-{name}.txt", name) for name in ("sha256", "sha512")}
    lines: list[str] = []
    try:
        stream = reader.open(WARC_PATH)
    except FileNotFoundError as exc:
        raise StorageError(f"{capture.bag} has no {WARC_PATH}: nothing to replay") from exc
    failure: Exception | None = None
    with stream:
        hashing = _HashingReader(stream, ("sha256", "sha512"))
        try:
            _index_warc(io.BufferedReader(hashing, _CHUNK), warc_name, lines)
        except Exception as exc:  # warcio and cdxj-indexer raise assorted errors on a damaged WARC
            failure = exc
        hashing.drain()
    # A WARC that does not match its manifest is damaged, whatever the indexer made of it.
    _check_digest(capture.bag, WARC_PATH, expected, {n: hashing.hexdigest(n) for n in ("sha256", "sha512")})
    if failure is not None:
        raise StorageError(f"{capture.bag}: {WARC_PATH} cannot be indexed "
                           f"({type(failure).__name__}: {failure})") from failure
    if not lines:
        raise StorageError(f"{capture.bag}: {WARC_PATH} holds no response or resource record")
    try:
        raw_text = read_small(reader, TEXT_PATH, MAX_TEXT_BYTES)
    except FileNotFoundError as exc:
        raise StorageError(f"{capture.bag} has no {TEXT_PATH}") from exc
    _check_digest(capture.bag, TEXT_PATH, expected,
                  {n: hashlib.new(n, raw_text).hexdigest() for n in ("sha256", "sha512")})
    pages.write(_page_line(capture, raw_text.decode("utf-8", errors="replace")))
    return _Checked(capture, warc_name, hashing.size, hashing.hexdigest("sha256"), lines)


def _check_digest(bag: str, path: str, expected: dict[str, dict[str, str]], found: dict[str, str]) -> None:
    listed = [(name, expected[name][path]) for name in ("sha256", "sha512") if path in expected[name]]
    if not listed:
        raise _BagDamaged(f"{bag}: {path} is in no sha256 or sha512 manifest, so it cannot be checked")
    for name, digest in listed:
        if digest != found[name]:
            raise _BagDamaged(f"{bag}: {path} does not match its {name} manifest entry "
                              "(the bag is damaged; check it with `archiver verify`)")


class _LineSink:
    def __init__(self, lines: list[str]) -> None:
        self.lines = lines

    def write(self, line: str) -> None:
        self.lines.append(line)


def _index_warc(stream: BinaryIO, warc_name: str, lines: list[str]) -> None:
    """CDXJ lines of one WARC (response, resource, revisit and metadata records,
    POST bodies appended to the key as pywb does), ``filename`` = its name in archive/."""
    indexer = CDXJIndexer(None, [], post_append=True, filename=warc_name)
    indexer.process_one(stream, _LineSink(lines), warc_name)


def _write_zip(tmp: Path, checked: list[_Checked], pages: BinaryIO, report: WaczReport,
               on_progress: Callable[..., None] | None) -> None:
    resources: list[dict[str, Any]] = []
    when = utc_now()
    stamp = when.timetuple()[:6]
    with zipfile.ZipFile(tmp, "x", allowZip64=True) as wacz:
        for done, item in enumerate(checked, start=1):
            path = f"archive/{item.warc_name}"
            sha256 = _store_warc(wacz, item, path, stamp)
            if sha256 != item.warc_sha256:
                raise StorageError(f"{item.capture.bag}: {WARC_PATH} changed while it was exported")
            resources.append(_resource(path, sha256, item.warc_size))
            report.pages.append(WaczPage(item.capture.bag, item.capture.url, item.capture.retrieved,
                                         item.capture.title, path, item.warc_size, sha256))
            if on_progress:
                on_progress(len(checked) + done, len(checked) * 2, f"packaging {item.capture.bag}")
        index = "".join(sorted(line for item in checked for line in item.lines)).encode("utf-8")
        report.index_lines = sum(len(item.lines) for item in checked)
        resources.append(_write_bytes(wacz, "indexes/index.cdx", index, stamp))
        resources.append(_write_stream(wacz, "pages/pages.jsonl", pages, stamp))
        package = {
            "profile": "data-package",
            "wacz_version": WACZ_VERSION,
            "resources": resources,
            "created": iso(when),
            "software": AGENT,
            "title": f"{len(checked)} captures exported by archiver",
        }
        if len(checked) == 1:
            package["mainPageUrl"] = checked[0].capture.url
            package["mainPageDate"] = checked[0].capture.retrieved
        package_bytes = json.dumps(package, indent=2, ensure_ascii=False).encode("utf-8")
        package_sha = hashlib.sha256(package_bytes).hexdigest()
        _write_bytes(wacz, "datapackage.json", package_bytes, stamp)
        digest = {"path": "datapackage.json", "hash": f"sha256:{package_sha}"}
        _write_bytes(wacz, "datapackage-digest.json", json.dumps(digest, indent=2).encode("utf-8"), stamp)
        report.datapackage_sha256 = package_sha


def _store_warc(wacz: zipfile.ZipFile, item: _Checked, path: str, stamp: tuple) -> str:
    """Copy a bag's WARC into the ZIP uncompressed; its sha256 as copied."""
    info = zipfile.ZipInfo(path, stamp)
    info.compress_type = zipfile.ZIP_STORED
    info.file_size = item.warc_size
    digest = hashlib.sha256()
    with item.capture.reader().open(WARC_PATH) as source, \
            wacz.open(info, "w", force_zip64=item.warc_size >= zipfile.ZIP64_LIMIT) as target:
        while chunk := source.read(_CHUNK):
            digest.update(chunk)
            target.write(chunk)
    return digest.hexdigest()


def _write_bytes(wacz: zipfile.ZipFile, path: str, data: bytes, stamp: tuple) -> dict[str, Any]:
    info = zipfile.ZipInfo(path, stamp)
    info.compress_type = zipfile.ZIP_DEFLATED
    wacz.writestr(info, data)
    return _resource(path, hashlib.sha256(data).hexdigest(), len(data))


def _resource(path: str, sha256: str, size: int) -> dict[str, Any]:
    # Frictionless resource names: lower case, unique; the path is unique in the ZIP.
    return {"name": path.split("/")[-1].lower(), "path": path, "hash": f"sha256:{sha256}", "bytes": size}


_PAGES_HEADER = (json.dumps({"format": "json-pages-1.0", "id": "pages", "title": "All Pages",
                             "hasText": True}) + "\n").encode("utf-8")


def _page_line(capture: CaptureBag, text: str) -> bytes:
    page = {"id": capture.bag, "url": capture.url, "ts": capture.retrieved,
            "title": capture.title or capture.url, "text": text}
    return (json.dumps(page, ensure_ascii=False) + "\n").encode("utf-8")


def _write_stream(wacz: zipfile.ZipFile, path: str, stream: BinaryIO, stamp: tuple) -> dict[str, Any]:
    info = zipfile.ZipInfo(path, stamp)
    info.compress_type = zipfile.ZIP_DEFLATED
    digest, size = hashlib.sha256(), 0
    with wacz.open(info, "w", force_zip64=True) as target:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
            target.write(chunk)
    return _resource(path, digest.hexdigest(), size)
