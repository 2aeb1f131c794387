"""BagIt profiles: the BagIt-Profiles specification's JSON (1.1-1.4) and DART's JSON.

``load_profile(name_or_file)`` reads either format (and LoC Bagger's older
field list) into one ``Profile``;
``check_profile(profile, reader, archive=...)`` lists every unmet rule as a
``ProfileProblem(code, path, message, rule)`` where ``rule`` names the rule's
source (the profile and the key it comes from). Bundled by name (files in
``archiver/exchange/profile_data/``, written for archiver after the published
profiles): ``aptrust`` (APTrust 2.3), ``btr`` (Beyond the Repository 1.0) and
``rfc8493`` (no rules beyond the RFC).

Codes: ``profile-version-not-accepted``, ``profile-tag-missing``,
``profile-value-not-allowed``, ``profile-tag-not-repeatable``,
``profile-tag-file-missing``, ``profile-tag-file-not-allowed``,
``profile-manifest-required``, ``profile-manifest-not-allowed``,
``profile-tag-manifest-required``, ``profile-tag-manifest-not-allowed``,
``profile-fetch-not-allowed``, ``profile-serialization``,
``profile-tar-dir-name``, ``profile-payload-file-missing``,
``profile-payload-file-not-allowed``, ``profile-file-name``; warning
``profile-tag-recommended``.
"""

from __future__ import annotations

import fnmatch
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from archiver.bagit.parse import MANIFEST_NAME, TAG_MANIFEST_NAME, lookup_encoding, parse_bagit_txt
from archiver.bagit.tagfiles import parse_tag_file
from archiver.bagit.reader import BagReader
from archiver.errors import StorageError, UsageError

BUNDLED = {"aptrust": "aptrust-2.3.json", "btr": "btr-1.0.json", "rfc8493": "rfc8493.json"}
DATA = Path(__file__).with_name("profile_data")
MIME = {
    "tar": {"application/tar", "application/x-tar"},
    "tar.gz": {"application/gzip", "application/x-gzip", "application/tar+gzip", "application/x-tgz",
               "application/x-gtar"},
    "zip": {"application/zip", "application/x-zip-compressed"},
}
# archiver's reading of APTrust's file-name rules (exchange and preservation-services tests):
# no control characters (DEL included), no leading dash, none of * ? \ : < > | "
_APTRUST_BAD_NAME = re.compile(r'[\x00-\x1f\x7f*?\\:<>|"]|(^|/)-')


@dataclass(frozen=True)
class ProfileProblem:
    code: str
    path: str
    message: str
    rule: str

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "path": self.path, "message": self.message, "rule": self.rule}


@dataclass
class TagRule:
    tag_file: str
    name: str
    required: bool = False
    values: list[str] | None = None
    repeatable: bool = True
    empty_ok: bool = True
    recommended: bool = False
    key: str = ""                 # where in the profile the rule comes from


@dataclass
class Profile:
    name: str
    source: str
    accept_versions: list[str] | None = None
    serialization: str = "optional"        # required | optional | forbidden
    accept_serialization: list[str] | None = None
    allow_fetch: bool = True
    manifests_required: list[str] = field(default_factory=list)
    manifests_allowed: list[str] | None = None
    tag_manifests_required: list[str] = field(default_factory=list)
    tag_manifests_allowed: list[str] | None = None
    tag_files_required: list[str] = field(default_factory=list)
    tag_files_allowed: list[str] | None = None
    payload_files_required: list[str] = field(default_factory=list)
    payload_files_allowed: list[str] | None = None
    tags: list[TagRule] = field(default_factory=list)
    tar_dir_must_match_name: bool = False
    file_name_rules: str | None = None     # archiver extension: "aptrust"

    def rule(self, key: str) -> str:
        return f"{self.name} ({self.source}): {key}"


def load_profile(name_or_file: str | Path) -> Profile:
    """A bundled profile by name, or a profile file in either JSON format. UsageError if neither."""
    text = str(name_or_file)
    if text.lower() in BUNDLED:
        path = DATA / BUNDLED[text.lower()]
        return parse_profile(json.loads(path.read_text("utf-8")), f"bundled:{text.lower()}")
    path = Path(text)
    if not path.is_file():
        raise UsageError(f"no profile {text!r}: not one of {', '.join(sorted(BUNDLED))} and not a file")
    try:
        document = json.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"profile {path} is not readable JSON: {exc}") from exc
    return parse_profile(document, path.name)


def parse_profile(document: Any, source: str) -> Profile:
    if not isinstance(document, dict):
        raise UsageError(f"profile {source} is not a JSON object")
    if "BagIt-Profile-Info" in document:
        return _standard(document, source)
    if "acceptBagItVersion" in document or "tags" in document:
        return _dart(document, source)
    if _is_bagger(document):
        return _bagger(document, source)
    raise UsageError(f"profile {source} is neither BagIt-Profiles JSON nor DART JSON")


def _list(value: Any) -> list[str] | None:
    return None if value is None else [str(v) for v in value]


def _standard(d: dict[str, Any], source: str) -> Profile:
    info = d.get("BagIt-Profile-Info", {})
    name = info.get("BagIt-Profile-Identifier") or info.get("External-Description") or source
    tags = [TagRule("bag-info.txt", label, bool(rule.get("required", False)), _list(rule.get("values")),
                    bool(rule.get("repeatable", True)), True, bool(rule.get("recommended", False)),
                    f"Bag-Info.{label}")
            for label, rule in (d.get("Bag-Info") or {}).items() if isinstance(rule, dict)]
    return Profile(
        name=str(name), source=source, accept_versions=_list(d.get("Accept-BagIt-Version")),
        serialization=d.get("Serialization", "optional"), accept_serialization=_list(d.get("Accept-Serialization")),
        allow_fetch=bool(d.get("Allow-Fetch.txt", True)),
        manifests_required=_list(d.get("Manifests-Required")) or [],
        manifests_allowed=_list(d.get("Manifests-Allowed")),
        tag_manifests_required=_list(d.get("Tag-Manifests-Required")) or [],
        tag_manifests_allowed=_list(d.get("Tag-Manifests-Allowed")),
        tag_files_required=_list(d.get("Tag-Files-Required")) or [],
        tag_files_allowed=_list(d.get("Tag-Files-Allowed")),
        payload_files_required=_list(d.get("Payload-Files-Required")) or [],
        payload_files_allowed=_list(d.get("Payload-Files-Allowed")),
        tags=tags, file_name_rules=d.get("x-archiver-file-name-rules"),
    )


_BAGGER_KEYS = {"fieldRequired", "requiredValue", "defaultValue", "valueList", "isReadOnly", "fieldType"}


def _is_bagger(d: dict[str, Any]) -> bool:
    """LoC Bagger's older profile JSON: bag-info fields -> {fieldRequired, requiredValue, valueList}
    (optionally in an ``ordered`` list of one-field objects)."""
    fields = d["ordered"] if isinstance(d.get("ordered"), list) else [d]
    return all(isinstance(f, dict) and all(isinstance(v, dict) and set(v) <= _BAGGER_KEYS for v in f.values())
               for f in fields)


def _bagger(d: dict[str, Any], source: str) -> Profile:
    fields = d["ordered"] if isinstance(d.get("ordered"), list) else [d]
    tags = []
    for group in fields:
        for label, rule in group.items():
            values = [rule["requiredValue"]] if rule.get("requiredValue") else _list(rule.get("valueList"))
            tags.append(TagRule("bag-info.txt", label, bool(rule.get("fieldRequired", False)) or bool(values),
                                values or None, True, True, False, label))
    return Profile(name=source, source=source, tags=tags)


def _dart(d: dict[str, Any], source: str) -> Profile:
    tags = []
    versions = _list(d.get("acceptBagItVersion"))
    for t in d.get("tags") or []:
        if t.get("tagFile") == "bagit.txt" and t.get("tagName") == "BagIt-Version":
            continue  # acceptBagItVersion says it, and is what DART checks
        values = _list(t.get("values")) or None
        tags.append(TagRule(t.get("tagFile", "bag-info.txt"), t.get("tagName", ""), bool(t.get("required")),
                            values, True, bool(t.get("emptyOk", not t.get("required"))), False,
                            f"tags[{t.get('tagFile')}:{t.get('tagName')}]"))
    allowed_tag_files = _list(d.get("tagFilesAllowed"))
    return Profile(
        name=str(d.get("name") or source), source=source, accept_versions=versions,
        serialization=d.get("serialization", "optional"), accept_serialization=_list(d.get("acceptSerialization")),
        allow_fetch=bool(d.get("allowFetchTxt", True)),
        manifests_required=_list(d.get("manifestsRequired")) or [],
        manifests_allowed=_list(d.get("manifestsAllowed")),
        tag_manifests_required=_list(d.get("tagManifestsRequired")) or [],
        tag_manifests_allowed=_list(d.get("tagManifestsAllowed")),
        tag_files_required=_list(d.get("tagFilesRequired")) or [],
        tag_files_allowed=None if not allowed_tag_files or "*" in allowed_tag_files else allowed_tag_files,
        tags=tags, tar_dir_must_match_name=bool(d.get("tarDirMustMatchName", False)),
        file_name_rules=d.get("x-archiver-file-name-rules"),
    )


@dataclass
class ArchiveFacts:
    """What a profile may ask of a serialised bag."""

    kind: str       # tar | tar.gz | zip
    name: str       # the archive's file name without its suffix
    top: str | None  # the one top-level folder inside it


class _Check:
    def __init__(self, profile: Profile, reader: BagReader, archive: ArchiveFacts | None) -> None:
        self.p = profile
        self.reader = reader
        self.archive = archive
        self.problems: list[ProfileProblem] = []
        self.warnings: list[ProfileProblem] = []
        self.files = [f.path for f in reader.list_files()]
        self.encoding = "utf-8"
        self.version: str | None = None

    def add(self, code: str, path: str, message: str, key: str, warning: bool = False) -> None:
        rule = self.p.rule(key)
        (self.warnings if warning else self.problems).append(ProfileProblem(code, path, f"{message} [{rule}]", rule))

    def read(self, path: str) -> bytes | None:
        try:
            with self.reader.open(path) as stream:
                return stream.read(4 * 1024 * 1024)
        except FileNotFoundError:
            return None
        except (StorageError, OSError):
            return None

    def run(self) -> None:
        raw = self.read("bagit.txt")
        if raw is not None:
            self.version, declared, _ = parse_bagit_txt(raw)
            self.encoding = lookup_encoding(declared) or "utf-8"
        self.check_version()
        self.check_serialization()
        self.check_manifests()
        self.check_fetch()
        self.check_tag_files()
        self.check_tags()
        self.check_payload_files()
        if self.p.file_name_rules == "aptrust":
            for path in self.files:
                if _APTRUST_BAD_NAME.search(path):
                    self.add("profile-file-name", path, f"{path!r} breaks APTrust's file-name rules "
                             "(control character, leading dash, or one of * ? \\ : < > | \")",
                             "x-archiver-file-name-rules")

    def check_version(self) -> None:
        if self.p.accept_versions and self.version not in self.p.accept_versions:
            self.add("profile-version-not-accepted", "bagit.txt",
                     f"BagIt-Version {self.version} is not one of {', '.join(self.p.accept_versions)}",
                     "Accept-BagIt-Version")

    def check_serialization(self) -> None:
        p, archive = self.p, self.archive
        if archive is None:
            if p.serialization == "required":
                self.add("profile-serialization", "", "the profile requires a serialised bag "
                         f"({', '.join(p.accept_serialization or [])}); this is a folder", "Serialization")
            return
        if p.serialization == "forbidden":
            self.add("profile-serialization", archive.name, "the profile forbids serialised bags", "Serialization")
        elif p.accept_serialization is not None and not MIME[archive.kind] & set(p.accept_serialization):
            self.add("profile-serialization", archive.name,
                     f"a {archive.kind} archive is not one of {', '.join(p.accept_serialization)}",
                     "Accept-Serialization")
        if p.tar_dir_must_match_name and archive.kind in ("tar", "tar.gz") and archive.top != archive.name:
            self.add("profile-tar-dir-name", archive.top or "",
                     f"the top-level folder {archive.top!r} differs from the archive's name {archive.name!r}",
                     "tarDirMustMatchName")

    def _algorithms(self, pattern: re.Pattern[str]) -> set[str]:
        return {m.group(1).lower() for f in self.files if (m := pattern.match(f))}

    def check_manifests(self) -> None:
        for pattern, required, allowed, code, key, name in (
                (MANIFEST_NAME, self.p.manifests_required, self.p.manifests_allowed,
                 "profile-manifest", "Manifests", "manifest"),
                (TAG_MANIFEST_NAME, self.p.tag_manifests_required, self.p.tag_manifests_allowed,
                 "profile-tag-manifest", "Tag-Manifests", "tagmanifest")):
            present = self._algorithms(pattern)
            for algorithm in required:
                if algorithm.lower() not in present:
                    self.add(f"{code}-required", f"{name}-{algorithm}.txt",
                             f"{name}-{algorithm}.txt is required", f"{key}-Required")
            if allowed is not None:
                for algorithm in sorted(present - {a.lower() for a in allowed} - {a.lower() for a in required}):
                    self.add(f"{code}-not-allowed", f"{name}-{algorithm}.txt",
                             f"{name}-{algorithm}.txt is not among {', '.join(allowed)}", f"{key}-Allowed")

    def check_fetch(self) -> None:
        if not self.p.allow_fetch and "fetch.txt" in self.files:
            self.add("profile-fetch-not-allowed", "fetch.txt", "the profile does not allow fetch.txt",
                     "Allow-Fetch.txt")

    def _tag_files(self) -> list[str]:
        builtin = {"bagit.txt", "bag-info.txt", "fetch.txt", "package-info.txt"}
        return [f for f in self.files if not f.startswith("data/") and f not in builtin
                and not MANIFEST_NAME.match(f) and not TAG_MANIFEST_NAME.match(f)]

    def check_tag_files(self) -> None:
        for required in self.p.tag_files_required:
            if required not in self.files:
                self.add("profile-tag-file-missing", required, f"tag file {required} is required",
                         "Tag-Files-Required")
        allowed = self.p.tag_files_allowed
        if allowed is not None:
            for path in self._tag_files():
                if not any(fnmatch.fnmatchcase(path, g) for g in allowed + self.p.tag_files_required):
                    self.add("profile-tag-file-not-allowed", path, f"tag file {path} is not allowed",
                             "Tag-Files-Allowed")

    def _elements(self, tag_file: str) -> list[tuple[str, str]] | None:
        raw = self.read(tag_file)
        if raw is None:
            return None
        if tag_file == "bagit.txt":
            return [tuple(line.split(": ", 1)) for line in raw.decode("utf-8", "replace").splitlines()  # type: ignore[misc]
                    if ": " in line]
        elements, _ = parse_tag_file(io.BytesIO(raw), self.encoding, tag_file, self.version)
        return elements

    def check_tags(self) -> None:
        cache: dict[str, list[tuple[str, str]] | None] = {}
        for rule in self.p.tags:
            if rule.tag_file not in cache:
                cache[rule.tag_file] = self._elements(rule.tag_file)
            elements = cache[rule.tag_file]
            if elements is None:
                if rule.required:
                    self.add("profile-tag-file-missing", rule.tag_file,
                             f"{rule.tag_file} is missing (it must hold {rule.name})", rule.key)
                    cache[rule.tag_file] = []  # one problem per missing file is enough
                continue
            values = [v for label, v in elements if label.lower() == rule.name.lower()]
            if not values or (not rule.empty_ok and rule.required and all(not v.strip() for v in values)):
                if rule.required:
                    self.add("profile-tag-missing", rule.tag_file, f"{rule.tag_file} has no {rule.name}"
                             + (" value" if values else ""), rule.key)
                elif rule.recommended:
                    self.add("profile-tag-recommended", rule.tag_file,
                             f"{rule.tag_file} has no {rule.name} (recommended)", rule.key, warning=True)
                continue
            if not rule.repeatable and len(values) > 1:
                self.add("profile-tag-not-repeatable", rule.tag_file,
                         f"{rule.name} appears {len(values)} times in {rule.tag_file}", rule.key)
            if rule.values:
                for value in values:
                    if value not in rule.values and (value.strip() or not rule.empty_ok):
                        self.add("profile-value-not-allowed", rule.tag_file,
                                 f"{rule.name}: {value!r} is not one of {', '.join(rule.values)}", rule.key)

    def check_payload_files(self) -> None:
        payload = [f for f in self.files if f.startswith("data/")]
        for required in self.p.payload_files_required:
            if not any(fnmatch.fnmatchcase(f, required) for f in payload):
                self.add("profile-payload-file-missing", required, f"payload file {required} is required",
                         "Payload-Files-Required")
        allowed = self.p.payload_files_allowed
        if allowed is not None:
            for path in payload:
                if not any(fnmatch.fnmatchcase(path, g) for g in allowed + self.p.payload_files_required):
                    self.add("profile-payload-file-not-allowed", path, f"payload file {path} is not allowed",
                             "Payload-Files-Allowed")


def check_profile(profile: Profile, reader: BagReader,
                  archive: ArchiveFacts | None = None) -> tuple[list[ProfileProblem], list[ProfileProblem]]:
    """(problems, warnings) of a bag against a profile; see the module docstring."""
    check = _Check(profile, reader, archive)
    check.run()
    return check.problems, check.warnings
