"""Collection manifests (``manifests/*.toml``).

    [collection]
    id = "always-against-the-tanks"
    title = "Always Against The Tanks"
    organization = "Example Library"

    [[sources]]
    url = "https://theanarchistlibrary.org/library/…"   # or "pages/essay.html", or "file:///…"

    [[sites]]                        # a site whose texts ``archiver sync`` keeps in the collection
    url = "https://theanarchistlibrary.org"
    via = "auto"                     # auto | amusewiki | sitemap | feed | oai-pmh
    match = "/library/"              # optional regular expressions on each text's URL
    exclude = "\\.pdf$"
    attachments = ["muse"]           # amusewiki: the default; [] for none; "epub", "pdf" add more

Every problem is a ManifestError (exit 2) naming the file and, where it can
be found, the line: a syntax error, a missing or unknown key, a source path
that does not exist. Nothing is fetched from a manifest that does not load.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable
from urllib.parse import unquote, urlsplit

from archiver.durable import fsync_path
from archiver.errors import ManifestError, StorageError, redact_credentials

COLLECTION_KEYS = {"id": True, "title": False, "organization": False, "description": False,
                   "timestamp_url": False}
SOURCE_KEYS = {"url": True, "note": False}
SITE_KEYS = {"url": True, "via": False, "match": False, "exclude": False, "attachments": False, "note": False}
SITE_VIA = ("auto", "amusewiki", "sitemap", "feed", "oai-pmh")
ATTACHMENT_KINDS = ("muse", "epub", "pdf", "a4.pdf", "lt.pdf", "tex", "zip")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass(frozen=True)
class SiteSpec:
    """One ``[[sites]]`` entry: a site whose published texts ``sync`` keeps in the collection.

    ``attachments`` None means the default (amusewiki: ``["muse"]``, others none)."""

    url: str
    via: str = "auto"
    match: str | None = None
    exclude: str | None = None
    attachments: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Manifest:
    path: Path
    collection_id: str
    title: str | None
    organization: str | None
    description: str | None
    sources: list[str]          # http(s) URLs, or absolute file:// URLs for local files
    sites: list[SiteSpec] = field(default_factory=list)
    timestamp_url: str | None = None  # an RFC 3161 TSA to stamp each new bag


def load_manifest(path: Path | str) -> Manifest:
    path = Path(path)
    raw, doc = _read_toml(path)
    lines = raw.splitlines()

    def line_of(pattern: str, occurrence: int = 0) -> str:
        hits = [i + 1 for i, line in enumerate(lines) if re.match(pattern, line.strip())]
        return f":{hits[occurrence]}" if len(hits) > occurrence else ""

    for key in doc:
        if key not in ("collection", "sources", "sites"):
            where = line_of(_key_pattern(key, table=True))
            raise ManifestError(f"{path}{where}: unknown key {key!r} (expected [collection], [[sources]] "
                                "and [[sites]])")
    collection = doc.get("collection")
    if not isinstance(collection, dict):
        raise ManifestError(f"{path}: missing [collection] table (with at least id = \"…\")")
    _check_keys(path, collection, COLLECTION_KEYS, "[collection]", line_of(r"\[collection\]"), line_of)
    collection_id = collection["id"]
    if not isinstance(collection_id, str) or not _ID.match(collection_id):
        raise ManifestError(f"{path}{line_of(_key_pattern('id'))}: collection id must be letters, digits, '.', '_' "
                            f"or '-' (got {collection_id!r})")
    sites = _load_sites(path, doc.get("sites"), line_of)
    sources_table = doc.get("sources", [])
    if not isinstance(sources_table, list) or not (sources_table or sites):
        raise ManifestError(f"{path}: no [[sources]] or [[sites]] entries")
    sources = []
    for index, entry in enumerate(sources_table):
        where = line_of(r"\[\[sources\]\]", index)
        if not isinstance(entry, dict):
            raise ManifestError(f"{path}{where}: each source must be a [[sources]] table")
        _check_keys(path, entry, SOURCE_KEYS, f"source #{index + 1}", where, line_of)
        sources.append(resolve_source(entry["url"], base=path.parent, where=f"{path}{where}"))
    return Manifest(path, collection_id, _opt(collection, "title"), _opt(collection, "organization"),
                    _opt(collection, "description"), sources, sites,
                    _timestamp_url(path, collection, line_of))


def _load_sites(path: Path, table: object, line_of) -> list[SiteSpec]:
    """The ``[[sites]]`` entries, each checked (a ManifestError names the file and line)."""
    if table is None:
        return []
    if not isinstance(table, list):
        raise ManifestError(f"{path}{line_of(_key_pattern('sites', table=True))}: sites must be "
                            "[[sites]] tables")
    sites = []
    for index, entry in enumerate(table):
        where = line_of(r"\[\[sites\]\]", index)
        label = f"{path}{where}"
        if not isinstance(entry, dict):
            raise ManifestError(f"{label}: each site must be a [[sites]] table")
        for key in entry:
            if key not in SITE_KEYS:
                raise ManifestError(f"{label}: unknown key {key!r} in site #{index + 1} "
                                    f"(allowed: {', '.join(SITE_KEYS)})")
        if "url" not in entry:
            raise ManifestError(f"{label}: site #{index + 1} is missing 'url'")
        for key in ("url", "via", "match", "exclude", "note"):
            if key in entry and not isinstance(entry[key], str):
                raise ManifestError(f"{label}: {key!r} in site #{index + 1} must be a string")
        url = entry["url"].strip()
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ManifestError(f"{label}: site url must be an http(s) URL (got {url!r})")
        via = entry.get("via", "auto")
        if via not in SITE_VIA:
            raise ManifestError(f"{label}: via = {via!r} is not one of {', '.join(SITE_VIA)}")
        for key in ("match", "exclude"):
            if key in entry:
                try:
                    re.compile(entry[key])
                except re.error as exc:
                    raise ManifestError(f"{label}: {key} = {entry[key]!r} is not a valid regular "
                                        f"expression: {exc}") from None
        attachments = entry.get("attachments")
        if attachments is not None:
            if not isinstance(attachments, list) or not all(isinstance(k, str) for k in attachments):
                raise ManifestError(f"{label}: attachments must be a list of strings, e.g. [\"muse\", \"epub\"]")
            unknown = [k for k in attachments if k not in ATTACHMENT_KINDS]
            if unknown:
                raise ManifestError(f"{label}: unknown attachment kind {unknown[0]!r} "
                                    f"(known: {', '.join(ATTACHMENT_KINDS)})")
            attachments = tuple(attachments)
        sites.append(SiteSpec(url=url, via=via, match=entry.get("match"), exclude=entry.get("exclude"),
                              attachments=attachments))
    return sites


def _read_toml(path: Path) -> tuple[str, dict]:
    """A manifest's text and its TOML document; a ManifestError names the file."""
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ManifestError(f"{path}: manifest not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{path}: cannot read manifest: {exc}") from exc
    try:
        return raw, tomllib.loads(raw)
    except tomllib.TOMLDecodeError as exc:
        raise ManifestError(f"{path}: TOML syntax error: {exc}") from exc


def _key_pattern(key: str, table: bool = False) -> str:
    """A regex for the line that sets ``key`` (or opens table ``[key]``)."""
    assignment = re.escape(key) + r"\s*="
    return rf"\[*{re.escape(key)}\b|{assignment}" if table else assignment


def _opt(table: dict[str, Any], key: str) -> str | None:
    value = table.get(key)
    return value if isinstance(value, str) and value.strip() else None


def _check_keys(path: Path, table: dict[str, Any], allowed: dict[str, bool], label: str, where: str,
                line_of: Callable[[str], str]) -> None:
    for key in table:
        if key not in allowed:
            raise ManifestError(f"{path}{line_of(_key_pattern(key)) or where}: unknown key {key!r} "
                                f"in {label} (allowed: {', '.join(allowed)})")
    for key, required in allowed.items():
        if required and key not in table:
            raise ManifestError(f"{path}{where}: {label} is missing {key!r}")
        if key in table and not isinstance(table[key], str):
            raise ManifestError(f"{path}{line_of(_key_pattern(key)) or where}: {key!r} in {label} "
                                f"must be a string")


def check_source_url(source: str, where: str = "") -> None:
    """ManifestError (exit 2) for a source that is not a well-formed URL
    ("http://[::1") or that carries credentials (``user:password@``): a
    source URL is written into bag-info, the WARC and the event log, which
    are mirrored to other libraries, so a secret in it would be archived."""
    prefix = f"{where}: " if where else ""
    try:
        parts = urlsplit(source.strip())
        parts.port  # noqa: B018  (raises ValueError for a port that is not a number)
    except ValueError as exc:
        raise ManifestError(f"{prefix}not a valid URL: {redact_credentials(source)!r} ({exc})") from None
    if parts.scheme and len(parts.scheme) > 1 and "@" in parts.netloc:
        raise ManifestError(
            f"{prefix}refusing {redact_credentials(source)!r}: a source URL must not carry credentials "
            "(user:password@), or they would be archived and mirrored with the capture; save the page "
            "with your own login (browser, curl) and snapshot the saved file instead")


def resolve_source(source: str, base: Path | None = None, where: str = "") -> str:
    """An http(s) URL as given; a path or file:// URL as an absolute file:// URL
    (relative paths against ``base``). A local file that does not exist, a
    malformed URL or one with credentials is a ManifestError."""
    prefix = f"{where}: " if where else ""
    source = source.strip()
    check_source_url(source, where)
    parts = urlsplit(source)
    if parts.scheme in ("http", "https"):
        if not parts.netloc:
            raise ManifestError(f"{prefix}not a valid URL: {source!r}")
        return source
    if parts.scheme == "file":
        local = Path(unquote(parts.path))
    elif parts.scheme and len(parts.scheme) > 1:
        raise ManifestError(f"{prefix}unsupported source {source!r} (use http(s)://, file:// or a path)")
    else:
        local = Path(source)
        if not local.is_absolute() and base is not None:
            local = base / local
    local = local.resolve()
    if not local.is_file():
        raise ManifestError(f"{prefix}source file does not exist: {local}")
    return local.as_uri()


def merge_sources(path: Path, urls: list[str], collection_id: str) -> tuple[list[str], int]:
    """Add every URL that is not yet a ``[[sources]]`` entry to the manifest at
    ``path`` (created, with ``collection_id``, if missing); return (the URLs
    added, how many were there already). Nothing is removed or reformatted: the
    new entries are appended, and the file is replaced atomically."""
    path = Path(path)
    if path.exists():
        raw, doc = _read_toml(path)
        entries = doc.get("sources", [])
        existing = {e.get("url") for e in entries if isinstance(e, dict)} if isinstance(entries, list) else set()
        text = raw if not raw or raw.endswith("\n") else raw + "\n"
    else:
        existing, text = set(), f"[collection]\nid = {json.dumps(collection_id)}\n"
    added = [url for url in dict.fromkeys(urls) if url not in existing]
    # A JSON string of a URL is a valid TOML basic string (same escapes).
    text += "".join(f"\n[[sources]]\nurl = {json.dumps(url)}\n" for url in added)
    tomllib.loads(text)  # never write a manifest that does not parse
    try:
        fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent or ".")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(temp, path)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
        fsync_path(path.parent)
    except OSError as exc:
        raise StorageError(f"cannot write manifest {path}: {exc.strerror or exc}") from exc
    return added, len(set(urls) & existing)


def _timestamp_url(path: Path, collection: dict, line_of) -> str | None:
    url = _opt(collection, "timestamp_url")
    if url is not None and urlsplit(url).scheme not in ("http", "https"):
        raise ManifestError(f"{path}{line_of(_key_pattern('timestamp_url'))}: timestamp_url must be an "
                            f"http(s) URL of an RFC 3161 Time-Stamp Authority (got {url!r})")
    return url
