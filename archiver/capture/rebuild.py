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
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from archiver.capture.fetch import parse_content_type
from archiver.capture.material import CaptureMaterial, build_material
from archiver.capture.snapshot import write_capture_bag
from archiver.capture.warc import check_gzip_whole, read_final_response
from archiver.clock import parse_iso
from archiver.collection.catalog import Catalog, open_catalog
from archiver.collection.record import CaptureRecord
from archiver.collection.root import list_bag_dirs
from archiver.errors import ArchiverError, SourceError


@dataclass
class RebuildResult:
    bag: str
    outcome: str                     # "rebuilt" | "unchanged" | "failed"
    new_bag: str | None = None       # the bag written, or the earlier rebuild holding the same text
    text_sha256: str | None = None   # of the text extracted now
    extractor_version: str | None = None
    reason: str | None = None
    exit_code: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def rederive(bag_dir: Path) -> tuple[CaptureMaterial, CaptureRecord]:
    """The capture material the current extractors make of a bag's raw capture,
    and the bag's record as read. DamagedCapture (exit 1) for a bag that cannot
    be read as a capture; SourceError (exit 1) when it holds no usable capture or
    no text can be extracted."""
    record = CaptureRecord.read(bag_dir, warc=True)
    metadata, warc = record.metadata, record.warc
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
    mime, header_charset = parse_content_type(
        next((v for k, v in http_headers.items() if k.lower() == "content-type"), ""))
    try:
        retrieved = parse_iso(metadata["retrieved"])
    except (KeyError, TypeError, ValueError) as exc:
        raise SourceError(f"{bag_dir.name}: metadata.json has no valid retrieval time") from exc
    final_url = metadata.get("final_url") or target_uri
    material = build_material(
        body, url=metadata.get("url") or final_url, final_url=final_url, retrieved=retrieved, warc=warc,
        content_type=metadata.get("content_type") or mime, header_charset=header_charset,
        http_status=metadata.get("http_status"), etag=metadata.get("etag"),
        last_modified=metadata.get("last_modified"), redirects=metadata.get("redirects") or [],
        robots=metadata.get("robots") or "",
        derived_from={"bag": bag_dir.name, "text_sha256": hashlib.sha256(record.text).hexdigest(),
                      "extractor_version": metadata.get("extractor_version")})
    return material, record


def rebuild_bag(root: Path, bag_dir: Path, catalog: Catalog) -> RebuildResult:
    """Rebuild one bag of the collection at ``root`` (see the module docstring)."""
    name = bag_dir.name
    try:
        material, record = rederive(bag_dir)
        new_sha = material.text_sha256
        version = material.extraction.extractor_version
        if material.canonical == record.text:
            return RebuildResult(name, "unchanged", text_sha256=new_sha, extractor_version=version,
                                 reason="the current extractors give the same text")
        earlier = [r.name for r in catalog.derived_from(name) if r.text_sha256 == new_sha]
        if earlier:
            return RebuildResult(name, "unchanged", new_bag=earlier[0], text_sha256=new_sha,
                                 extractor_version=version, reason=f"already rebuilt as {earlier[0]}")
        new_dir = write_capture_bag(root, material, record.collection_id or Path(root).resolve().name,
                                    record.organization or "archiver")
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
