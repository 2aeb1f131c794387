"""Re-derive a bag's canonical text from its own raw capture, offline.

Archivists run this after the extractors improve. For each bag, the last
response (or resource) record of ``data/capture.warc.gz`` is decoded and
extracted again with the current code; when the canonical text differs from
the bag's ``data/text.txt``, a NEW bag is written (bags are immutable) through
the snapshot pipeline's own ``write_capture_bag``, with the same raw capture,
the original retrieval time, and ``derived_from`` = {bag, text_sha256,
extractor_version} of the bag it came from. Nothing is fetched.

A bag whose text is unchanged, or that was already rebuilt into a bag holding
exactly the new text, gives no bag (outcome ``unchanged``), so running
``rebuild --all`` twice makes nothing the second time.

    >>> [r.outcome for r in rebuild_bags(Path("bags"), ["essay-20261125T093000Z"])]
    ['rebuilt']
"""

from __future__ import annotations

import hashlib
import json
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from archiver.collection.catalog import Catalog, open_catalog
from archiver.capture.charset import decode_document
from archiver.collection.root import list_bag_dirs
from archiver.errors import ArchiverError, SourceError, StorageError
from archiver.clock import parse_iso
from archiver.capture.extract import extract_html
from archiver.capture.fetch import parse_content_type
from archiver.capture.snapshot import CaptureMaterial, write_capture_bag
from archiver.bagit.reader import LocalBag
from archiver.capture.warc import check_gzip_whole, read_final_response


@dataclass
class RebuildResult:
    bag: str
    outcome: str                     # "rebuilt" | "unchanged" | "failed"
    new_bag: str | None = None       # the bag written, or the earlier rebuild holding the same text
    text_sha256: str | None = None   # of the text extracted now
    extractor_version: str | None = None
    reason: str | None = None
    exit_code: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def _read_bag(bag_dir: Path) -> tuple[dict, bytes, bytes, dict[str, str]]:
    """(metadata, text bytes, WARC bytes, bag-info elements) of a bag on disk."""
    reader = LocalBag(bag_dir)  # never follows a symlink, never opens outside the bag

    def read(relpath: str) -> bytes:
        try:
            with reader.open(relpath) as stream:
                return stream.read()
        except FileNotFoundError as exc:
            raise SourceError(f"{bag_dir.name} has no {relpath}: cannot rebuild it") from exc

    try:
        metadata = json.loads(read("data/metadata.json"))
        text = read("data/text.txt")
        warc = read("data/capture.warc.gz")
        info_lines = read("bag-info.txt").decode("utf-8").splitlines()
    except (OSError, ValueError) as exc:
        raise StorageError(f"cannot read bag {bag_dir.name}: {exc}") from exc
    if not isinstance(metadata, dict):
        raise StorageError(f"cannot read bag {bag_dir.name}: data/metadata.json is not an object")
    info = {}
    for line in info_lines:
        label, sep, value = line.partition(":")
        if sep and not line[:1].isspace():
            info.setdefault(label.strip(), value.strip())
    return metadata, text, warc, info


def rederive(bag_dir: Path) -> tuple[CaptureMaterial, bytes, dict[str, str]]:
    """The capture material the current extractors make of a bag's raw capture,
    the bag's current text bytes, and its bag-info elements. SourceError
    (exit 1) when the bag holds no usable capture or no text can be extracted."""
    metadata, old_text, warc, info = _read_bag(bag_dir)
    try:
        check_gzip_whole(warc)
    except (OSError, EOFError, zlib.error) as exc:
        # warcio reads a cut-off member without complaint; a partial body would
        # give a partial text, and a new bag of it.
        raise SourceError(f"{bag_dir.name}: capture.warc.gz is damaged ({exc}); "
                          "check the bag with `archiver verify`") from exc
    try:
        final = read_final_response(warc, final_url=metadata.get("final_url"))
    except SourceError:
        raise
    except Exception as exc:  # warcio raises assorted errors on a damaged archive
        raise SourceError(f"{bag_dir.name}: capture.warc.gz is unreadable: {exc}") from exc
    if final is None:
        raise SourceError(f"{bag_dir.name}: capture.warc.gz holds no response record")
    target_uri, body, http_headers = final
    content_type = next((v for k, v in http_headers.items() if k.lower() == "content-type"), "")
    header_charset = parse_content_type(content_type)[1] if content_type else None
    html, charset, how = decode_document(body, header_charset)
    try:
        retrieved = parse_iso(metadata["retrieved"])
    except (KeyError, TypeError, ValueError) as exc:
        raise SourceError(f"{bag_dir.name}: metadata.json has no valid retrieval time") from exc
    final_url = metadata.get("final_url") or target_uri
    extraction = extract_html(html, url=final_url, retrieved=retrieved)
    material = CaptureMaterial(
        url=metadata.get("url") or final_url, final_url=final_url, retrieved=retrieved,
        extraction=extraction, canonical=extraction.text.render().encode("utf-8"), warc=warc,
        raw_body=body, http_status=metadata.get("http_status"),
        content_type=metadata.get("content_type") or parse_content_type(content_type)[0],
        charset=charset, charset_source=how, etag=metadata.get("etag"),
        last_modified=metadata.get("last_modified"), redirects=metadata.get("redirects") or [],
        robots=metadata.get("robots") or "",
        derived_from={"bag": bag_dir.name, "text_sha256": hashlib.sha256(old_text).hexdigest(),
                      "extractor_version": metadata.get("extractor_version")},
    )
    return material, old_text, info


def rebuild_bag(root: Path, bag_dir: Path, catalog: Catalog) -> RebuildResult:
    """Rebuild one bag of the collection at ``root`` (see the module docstring)."""
    name = bag_dir.name
    try:
        material, old_text, info = rederive(bag_dir)
        new_sha = hashlib.sha256(material.canonical).hexdigest()
        version = material.extraction.extractor_version
        if material.canonical == old_text:
            return RebuildResult(name, "unchanged", text_sha256=new_sha, extractor_version=version,
                                 reason="the current extractors give the same text")
        earlier = [r.name for r in catalog.derived_from(name) if r.text_sha256 == new_sha]
        if earlier:
            return RebuildResult(name, "unchanged", new_bag=earlier[0], text_sha256=new_sha,
                                 extractor_version=version, reason=f"already rebuilt as {earlier[0]}")
        new_dir = write_capture_bag(root, material,
                                    info.get("Bag-Group-Identifier") or Path(root).resolve().name,
                                    info.get("Source-Organization") or "archiver")
    except ArchiverError as exc:
        return RebuildResult(name, "failed", reason=str(exc), exit_code=exc.exit_code)
    return RebuildResult(name, "rebuilt", new_bag=new_dir.name, text_sha256=new_sha, extractor_version=version)


def rebuild_bags(root: Path, names: list[str] | None = None,
                 on_progress: Callable[..., None] | None = None) -> list[RebuildResult]:
    """Rebuild the named bags of ``root`` (every bag when ``names`` is None),
    one result each, in order. A name that is no bag of the root is a failed
    result (exit 1), not an exception: every other bag is still processed."""
    root = Path(root)
    if names is None:
        bag_dirs = list_bag_dirs(root)
    else:
        bag_dirs = [root / Path(n.rstrip("/")).name for n in names]
    results = []
    with open_catalog(root) as catalog:
        for done, bag_dir in enumerate(bag_dirs, start=1):
            if not (bag_dir / "bagit.txt").is_file():
                results.append(RebuildResult(bag_dir.name, "failed", exit_code=1,
                                             reason=f"no bag named {bag_dir.name!r} in {root}"))
            else:
                results.append(rebuild_bag(root, bag_dir, catalog))
            if on_progress:
                on_progress(done, len(bag_dirs), bag_dir.name)
    return results
