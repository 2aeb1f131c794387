"""Derived bags: a copy of a bag made to meet a BagIt profile, for export.

The original is never changed. The derived bag has the original's payload
(byte-identical), its payload manifests for the algorithms the profile allows,
a new manifest only for an algorithm the profile requires and the original
lacks, the tag files and tags the profile requires (values from ``tags``, else
from the capture's ``data/metadata.json``, else from the original's
bag-info.txt, where External-Description stands in for a Title), and bag-info elements saying what it was derived from::

    Derived-From-Bag: essay-20261125T093000Z
    Derived-From-Tagmanifest: tagmanifest-sha256.txt sha256:9f2c...

A required value that cannot be found is a ``UsageError`` listing every one.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
from pathlib import Path

from archiver.bagit.parse import MANIFEST_NAME, TAG_MANIFEST_NAME
from archiver.bagit.tagfiles import parse_tag_file
from archiver.bagit.reader import LocalBag
from archiver.bagit.hashing import hash_file
from archiver.bagit.write import render_manifest, render_tag_file
from archiver import AGENT
from archiver.clock import iso, utc_now
from archiver.errors import StorageError, UsageError
from archiver.exchange.profiles import Profile, TagRule

# where a capture's metadata.json can fill a required tag
_FROM_METADATA = {"title": "title", "description": "description", "external-description": "title"}
_FROM_BAG_INFO = {"title": "external-description"}  # a foreign bag's own description as its title
_REGENERATED = {"payload-oxum", "bagging-date", "bag-software-agent", "derived-from-bag",
                "derived-from-tagmanifest"}


def _bag_info(bag: Path) -> list[tuple[str, str]]:
    try:
        raw = (bag / "bag-info.txt").read_bytes()
    except FileNotFoundError:
        return []
    elements, _ = parse_tag_file(io.BytesIO(raw), "utf-8", "bag-info.txt", "1.0")
    return elements


def _metadata(bag: Path) -> dict:
    try:
        value = json.loads((bag / "data" / "metadata.json").read_bytes())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _value_for(rule: TagRule, tags: dict[str, str], metadata: dict, info: list[tuple[str, str]]) -> str | None:
    for label, value in tags.items():
        if label.lower() == rule.name.lower():
            return value
    key = _FROM_METADATA.get(rule.name.lower())
    if key and isinstance(metadata.get(key), str) and metadata[key].strip():
        return " ".join(metadata[key].split())
    names = {rule.name.lower(), _FROM_BAG_INFO.get(rule.name.lower(), "")}
    for label, value in info:
        if label.lower() in names and value.strip():
            return value
    return None


def plan_tags(bag: Path, profile: Profile, tags: dict[str, str]) -> dict[str, list[tuple[str, str]]]:
    """Tag file -> elements the derived bag needs. UsageError listing every missing value."""
    metadata, info = _metadata(bag), _bag_info(bag)
    planned: dict[str, list[tuple[str, str]]] = {}
    missing: list[str] = []
    for rule in profile.tags:
        if rule.tag_file == "bagit.txt":
            continue
        value = _value_for(rule, tags, metadata, info)
        allowed = f" (one of {', '.join(rule.values)})" if rule.values else ""
        if value is None or (not value.strip() and not rule.empty_ok):
            if rule.required:
                missing.append(f"{rule.tag_file}: {rule.name}{allowed}")
            continue
        if rule.values and value not in rule.values:
            missing.append(f"{rule.tag_file}: {rule.name}{allowed}, not {value!r}")
            continue
        planned.setdefault(rule.tag_file, []).append((rule.name, value))
    if missing:
        raise UsageError(f"profile {profile.name} needs values archiver cannot take from {bag.name}; "
                         "give them with --tag LABEL=VALUE: " + "; ".join(missing))
    return planned


def _algorithms(bag: Path, profile: Profile) -> tuple[list[str], list[str]]:
    """(algorithms whose manifests are copied, algorithms hashed anew)."""
    present = sorted(m.group(1).lower() for f in bag.iterdir() if (m := MANIFEST_NAME.match(f.name)))
    allowed = {a.lower() for a in profile.manifests_allowed} if profile.manifests_allowed is not None else None
    kept = [a for a in present if allowed is None or a in allowed]
    new = [a.lower() for a in profile.manifests_required if a.lower() not in kept]
    if not kept and not new:
        new = [sorted(allowed)[0] if allowed else "sha256"]
    return kept, new


def build_derived(bag: Path, profile: Profile, tags: dict[str, str], dest: Path) -> Path:
    """Write the derived bag into the empty folder ``dest`` (the caller's temp folder)."""
    planned = plan_tags(bag, profile, tags)
    kept, new = _algorithms(bag, profile)
    payload = [f for f in LocalBag(bag).list_files() if f.path.startswith("data/")]
    tables: dict[str, list[tuple[str, str]]] = {a: [] for a in new}
    for entry in payload:
        if entry.is_symlink:
            raise StorageError(f"{bag}: {entry.path} is a symbolic link; refusing to derive a bag from it")
        target = dest / entry.path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(bag / entry.path, target)
        if new:
            digests, _ = hash_file(target, new)
            for algorithm in new:
                tables[algorithm].append((entry.path, digests[algorithm]))
    tag_files: dict[str, bytes] = {"bagit.txt": b"BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n"}
    for algorithm in kept:
        tag_files[f"manifest-{algorithm}.txt"] = (bag / f"manifest-{algorithm}.txt").read_bytes()
    for algorithm in new:
        tag_files[f"manifest-{algorithm}.txt"] = render_manifest(tables[algorithm])
    info = [(k, v) for k, v in _bag_info(bag) if k.lower() not in _REGENERATED]
    given = {k.lower() for k, _ in info}
    info += [(k, v) for k, v in planned.pop("bag-info.txt", []) if k.lower() not in given]
    source_tm = sorted(f.name for f in bag.iterdir() if TAG_MANIFEST_NAME.match(f.name))
    info.append(("Derived-From-Bag", bag.name))
    for name in source_tm:
        algorithm = TAG_MANIFEST_NAME.match(name).group(1)  # type: ignore[union-attr]
        digest = hashlib.new(algorithm, (bag / name).read_bytes()).hexdigest()
        info.append(("Derived-From-Tagmanifest", f"{name} {algorithm}:{digest}"))
    info += [("Bagging-Date", iso(utc_now())[:10]), ("Bag-Software-Agent", AGENT),
             ("Payload-Oxum", f"{sum(f.size for f in payload)}.{len(payload)}")]
    tag_files["bag-info.txt"] = render_tag_file(info)
    for tag_file, elements in planned.items():
        tag_files[tag_file] = render_tag_file(elements)
    for rel, content in tag_files.items():
        path = dest / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    for algorithm in kept + new:
        entries = [(rel, hashlib.new(algorithm, content).hexdigest()) for rel, content in sorted(tag_files.items())]
        (dest / f"tagmanifest-{algorithm}.txt").write_bytes(render_manifest(entries))
    return dest
