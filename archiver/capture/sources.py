"""Collection manifests (``manifests/*.toml``).

    [collection]
    id = "always-against-the-tanks"
    title = "Always Against The Tanks"
    organization = "Example Library"

    [[sources]]
    url = "https://theanarchistlibrary.org/library/…"   # or "pages/essay.html", or "file:///…"

Every problem is a ManifestError (exit 2) naming the file and, where it can
be found, the line: a syntax error, a missing or unknown key, a source path
that does not exist. Nothing is fetched from a manifest that does not load.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from archiver.errors import ManifestError, redact_credentials

COLLECTION_KEYS = {"id": True, "title": False, "organization": False, "description": False}
SOURCE_KEYS = {"url": True, "note": False}
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass(frozen=True)
class Manifest:
    path: Path
    collection_id: str
    title: str | None
    organization: str | None
    description: str | None
    sources: list[str]          # http(s) URLs, or absolute file:// URLs for local files


def load_manifest(path: Path | str) -> Manifest:
    path = Path(path)
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ManifestError(f"{path}: manifest not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{path}: cannot read manifest: {exc}") from exc
    try:
        doc = tomllib.loads(raw)
    except tomllib.TOMLDecodeError as exc:
        raise ManifestError(f"{path}: TOML syntax error: {exc}") from exc
    lines = raw.splitlines()

    def line_of(pattern: str, occurrence: int = 0) -> str:
        hits = [i + 1 for i, line in enumerate(lines) if re.match(pattern, line.strip())]
        return f":{hits[occurrence]}" if len(hits) > occurrence else ""

    for key in doc:
        if key not in ("collection", "sources"):
            where = line_of(_key_pattern(key, table=True))
            raise ManifestError(f"{path}{where}: unknown key {key!r} (expected [collection] and [[sources]])")
    collection = doc.get("collection")
    if not isinstance(collection, dict):
        raise ManifestError(f"{path}: missing [collection] table (with at least id = \"…\")")
    _check_keys(path, collection, COLLECTION_KEYS, "[collection]", line_of(r"\[collection\]"), line_of)
    collection_id = collection["id"]
    if not isinstance(collection_id, str) or not _ID.match(collection_id):
        raise ManifestError(f"{path}{line_of(_key_pattern('id'))}: collection id must be letters, digits, '.', '_' "
                            f"or '-' (got {collection_id!r})")
    sources_table = doc.get("sources")
    if not isinstance(sources_table, list) or not sources_table:
        raise ManifestError(f"{path}: no [[sources]] entries")
    sources = []
    for index, entry in enumerate(sources_table):
        where = line_of(r"\[\[sources\]\]", index)
        if not isinstance(entry, dict):
            raise ManifestError(f"{path}{where}: each source must be a [[sources]] table")
        _check_keys(path, entry, SOURCE_KEYS, f"source #{index + 1}", where, line_of)
        sources.append(resolve_source(entry["url"], base=path.parent, where=f"{path}{where}"))
    return Manifest(path, collection_id, _opt(collection, "title"), _opt(collection, "organization"),
                    _opt(collection, "description"), sources)


def _key_pattern(key: str, table: bool = False) -> str:
    """A regex for the line that sets ``key`` (or opens table ``[key]``)."""
    assignment = re.escape(key) + r"\s*="
    return rf"\[*{re.escape(key)}\b|{assignment}" if table else assignment


def _opt(table: dict, key: str) -> str | None:
    value = table.get(key)
    return value if isinstance(value, str) and value.strip() else None


def _check_keys(path: Path, table: dict, allowed: dict[str, bool], label: str, where: str, line_of) -> None:
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
