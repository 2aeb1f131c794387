"""Verifying a bag's contents: manifests, completeness, fetch.txt, names, checksums.

``check_contents(check, files)`` is called by ``archiver.bagit.verify`` with the
bag's file list; it reads the payload and tag manifests and fetch.txt through
the ``BagCheck``'s reader and adds every finding to ``check.out``. Rules (RFC 8493;
those marked 1.0 are warnings in older bags, see ``BagCheck.report_rule``):

- §2.1.3 every payload file is listed in *every* payload manifest (1.0; in the
  drafts, in at least one), listed paths exist, no path twice in a manifest
  (same checksum: 1.0), payload manifests list only ``data/`` paths;
- §2.2.1 tag manifests list every payload manifest (1.0) and no payload file;
- §2.2.3 fetch.txt paths are payload paths listed in a manifest, and a
  fetched file has the length fetch.txt gives;
- §3 checksums match (``full`` mode only);
- and warnings: names equal after Unicode normalisation or case folding,
  system files, tag files no tag manifest covers.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from itertools import filterfalse
from operator import attrgetter
from typing import Callable

from archiver.bagit.check import BagCheck
from archiver.bagit.hashing import DigestJob, HashJob, LocalDigests, check_streams, mismatch_problem
from archiver.bagit.timestamp import TIMESTAMP_FILE
from archiver.bagit.parse import (
    MANIFEST_NAME, TAG_MANIFEST_NAME, FetchEntry, casefold_key, hash_name, normalised_key,
    parse_fetch, parse_manifest_map,
)
from archiver.bagit.reader import FileEntry, LocalBag
from archiver.bagit.report import Collector, Problem
from archiver.errors import StorageError

SYSTEM_FILES = {".ds_store", "thumbs.db", "desktop.ini", "ehthumbs.db", ".spotlight-v100", ".trashes",
                ".fseventsd", ".directory"}
_SYSTEM_FILE = re.compile(r"(?:^|/|\x00)(?:%s|\._[^\x00/]*)(?=\x00|$)"
                          % "|".join(re.escape(n) for n in sorted(SYSTEM_FILES)), re.IGNORECASE)


_SLICE = 10_000  # names per regex pass in _warn_names
_PATH, _IS_SYMLINK = attrgetter("path"), attrgetter("is_symlink")


@dataclass
class Manifest:
    name: str
    algorithm: str
    entries: dict[str, bytes | str]   # listed path -> expected digest (first occurrence): raw bytes,
    #                                     or lower-case hex for an algorithm of unknown digest length
    supported: bool
    is_tag: bool


def check_contents(check: BagCheck, files: list[FileEntry]) -> dict[str, int]:
    """Check manifests, completeness, fetch.txt, names and (full mode) checksums.

    Returns {path: size} of every file that is not a symlink: a local bag in
    full mode may be listed without sizes (-1), which the hashing workers report."""
    if any(map(_IS_SYMLINK, files)):
        present = {f.path: f for f in files if not f.is_symlink}
        symlinks = {f.path for f in files if f.is_symlink}
    else:  # the common case, built in C before the hashing can start
        present, symlinks = dict(zip(map(_PATH, files), files)), set()
    root_names = sorted(path for path in present if "/" not in path)

    digests = _start_local_digests(check, present, root_names)
    try:
        _check_manifests(check, files, present, symlinks, root_names, digests)
    finally:
        if digests is not None:
            digests.close()
    if digests is None:
        return {path: entry.size for path, entry in present.items()}
    return check.sizes


def _start_local_digests(check: BagCheck, present: dict[str, FileEntry], root_names: list[str]) -> LocalDigests | None:
    """For a local bag in full mode, start hashing every file now, with every
    algorithm its manifests could name, so hashing overlaps manifest parsing."""
    reader = check.reader
    if check.mode != "full" or not isinstance(reader, LocalBag):
        return None
    payload_algs = tuple(sorted({m.group(1) for n in root_names if (m := MANIFEST_NAME.match(n))
                                 if _supported(m.group(1))}))
    tag_algs = tuple(sorted({m.group(1) for n in root_names if (m := TAG_MANIFEST_NAME.match(n))
                             if _supported(m.group(1))}))
    jobs: list[DigestJob] = [(path, entry.size, payload_algs if path.startswith("data/") else tag_algs)
                             for path, entry in present.items()]
    if not (payload_algs and tag_algs):  # no algorithm: opened only to learn its size
        jobs = [job for job in jobs if job[2] or job[1] < 0]
    return LocalDigests(str(reader.path), jobs, check.processes)


def _collect_local(check: BagCheck, present: dict[str, FileEntry], digests: LocalDigests,
                   ) -> tuple[dict[str, dict[str, bytes]], list[Problem]]:
    """Wait for the workers; fill in the sizes they saw (and, for files they
    could not open, what the folder says)."""
    tables, sizes, failures = digests.wait(check.on_progress)
    for path in present.keys() - sizes.keys():
        if present[path].size >= 0:
            sizes[path] = present[path].size
            continue
        try:  # the workers could not open it
            sizes[path] = os.lstat(os.path.join(digests.root, path)).st_size
        except OSError:
            sizes[path] = 0
    check.sizes = sizes
    return tables, failures


def _supported(algorithm: str) -> bool:
    """hashlib knows it, with a fixed digest size (not shake_*)."""
    try:
        return hashlib.new(hash_name(algorithm)).digest_size > 0
    except (ValueError, TypeError):
        return False


def _check_manifests(check: BagCheck, files: list[FileEntry], present: dict[str, FileEntry], symlinks: set[str],
                     root_names: list[str], digests: LocalDigests | None) -> None:
    out = check.out
    read = [_read_manifest(check, name, match.group(1), False)
            for name in root_names if (match := MANIFEST_NAME.match(name))]
    read += [_read_manifest(check, name, match.group(1), True)
             for name in root_names if (match := TAG_MANIFEST_NAME.match(name))]
    manifests = [m for m in read if m is not None]
    payload_manifests = [m for m in manifests if not m.is_tag]
    tag_manifests = [m for m in manifests if m.is_tag]
    if not payload_manifests:
        out.add("manifest-missing", "manifest-<algorithm>.txt",
                "the bag has no payload manifest (RFC 8493 §2.1.3)")

    fetch_entries: list[FetchEntry] = []
    if "fetch.txt" in present:
        fetch_entries = _read_fetch(check)

    renamed, absent = _report_missing(check, manifests, present, symlinks, {e.path for e in fetch_entries})
    _check_payload_listed(check, present, payload_manifests, renamed)
    _check_tag_manifests(check, present, payload_manifests, tag_manifests)
    _warn_names(check, manifests, present, absent)
    del absent
    hashed = _collect_local(check, present, digests) if digests is not None else None
    sizes = check.sizes if digests is not None else {path: entry.size for path, entry in present.items()}
    _check_fetch(check, sizes, fetch_entries, payload_manifests)
    if check.mode == "full":
        _check_checksums(check, present, manifests, renamed, hashed)


def _report_missing(check: BagCheck, manifests: list[Manifest], present: dict[str, FileEntry], symlinks: set[str],
                    fetch_paths: set[str]) -> tuple[dict[str, str], list[str]]:
    """Report every listed path that names no file, once, naming the manifests
    that list it. Returns ({listed path: the file it names after Unicode
    normalisation}, the sorted listed paths that are not a file's exact name).

    Memory: a manifest may list a million paths; only one list of the absent
    names (pointers to the manifests' own strings) is built, no set or dict."""
    absent: list[str] = []
    for index, manifest in enumerate(manifests):
        if manifest.entries.keys() <= present.keys():
            continue  # the common case, decided in C without building anything
        earlier = manifests[:index]
        absent += [path for path in manifest.entries
                   if path not in present and not any(path in m.entries for m in earlier)]
    absent.sort()
    resolver = _Resolver(present, check.out)
    renamed: dict[str, str] = {}
    for path in absent:
        disk = resolver.resolve(path)
        if disk is not None:
            renamed[path] = disk
        elif path not in symlinks:
            where = ", ".join(m.name for m in manifests if path in m.entries)
            note = " (it is listed in fetch.txt and has not been fetched: the bag is incomplete)" \
                if path in fetch_paths else ""
            check.out.add("file-missing", path, f"{path} is listed in {where} but is absent{note}", unique=True)
    return renamed, absent


def _read_manifest(check: BagCheck, name: str, algorithm: str, is_tag: bool) -> Manifest | None:
    out = check.out
    supported = _supported(algorithm)
    if not supported:
        out.add("algorithm-unsupported", name,
                f"{name}: algorithm {algorithm!r} is not available, so its checksums cannot be checked")
    try:
        with check.reader.open(name) as stream:
            # Findings go straight to the collector (capped); digests are kept as bytes.
            listed, repeats, _findings = parse_manifest_map(stream, name, algorithm, check.encoding,
                                                            binary=True, findings=out)
    except (StorageError, OSError) as exc:
        out.add("file-unreadable", name, f"cannot read {name}: {exc}")
        return None
    for path in _out_of_place(listed, is_tag):
        if is_tag:
            out.add("tag-manifest-lists-payload", path,
                    f"{name} lists payload file {path}; tag manifests list tag files only (RFC 8493 §2.2.1)")
        else:
            out.add("path-outside-payload", path,
                    f"{name} lists {path}, which is not under data/ (RFC 8493 §2.1.3)")
        del listed[path]
    for entry in repeats:
        if entry.path.startswith("data/") == is_tag:
            continue  # already reported as out of place
        if _same_digest(listed.get(entry.path), entry.digest):
            check.report_rule("duplicate-entry", entry.path,
                              f"{entry.path} is listed twice in {name} (line {entry.line}), with the same checksum")
        else:
            out.add("duplicate-entry-conflict", entry.path,
                    f"{entry.path} is listed twice in {name} with different checksums (line {entry.line})")
    return Manifest(name, algorithm, listed, supported, is_tag)


def _out_of_place(listed: dict[str, bytes | str], is_tag: bool) -> list[str]:
    """§2.1.3 / §2.2.1: the paths a payload manifest lists outside data/, or a tag manifest inside it."""
    if is_tag:
        return [p for p in listed if p.startswith("data/")]
    if _all_under_data(listed):
        return []
    return [p for p in listed if not p.startswith("data/")]


def _all_under_data(listed: dict[str, bytes | str]) -> bool:
    """Fast path of ``_out_of_place``: every path starts with data/, counted in C."""
    return ("\x00" + "\x00".join(listed)).count("\x00data/") == len(listed)


def _same_digest(kept: bytes | str | None, hex_digest: str) -> bool:
    """A manifest's kept digest (raw bytes, or hex for an algorithm of unknown length) against hex."""
    if isinstance(kept, bytes):
        return kept.hex() == hex_digest
    return kept == hex_digest


def _hex(digest: bytes | str) -> str:
    return digest.hex() if isinstance(digest, bytes) else digest


def _read_fetch(check: BagCheck) -> list[FetchEntry]:
    try:
        with check.reader.open("fetch.txt") as stream:
            entries, findings = parse_fetch(stream, check.encoding)
    except (StorageError, OSError) as exc:
        check.out.add("file-unreadable", "fetch.txt", f"cannot read fetch.txt: {exc}")
        return []
    check.out.extend(findings)
    return entries


class _Resolver:
    """Finds the file a listed path names: the exact name, or failing that the
    one file whose name is the same after Unicode normalisation (a bag made on
    macOS and copied to Linux). Case is never folded: HELLO.txt is not hello.txt."""

    def __init__(self, present: dict[str, FileEntry], out: Collector) -> None:
        self.present = present
        self.out = out
        self._by_nfc: dict[str, list[str]] | None = None

    def resolve(self, path: str) -> str | None:
        if path in self.present:
            return path
        if self._by_nfc is None:
            self._by_nfc = {}
            for name in self.present:
                self._by_nfc.setdefault(normalised_key(name), []).append(name)
        candidates = self._by_nfc.get(normalised_key(path), [])
        if len(candidates) == 1:
            self.out.add("name-normalisation-differs", path,
                         f"{path!a} is listed, and matches the file {candidates[0]!a} only after "
                         "Unicode normalisation", error=False)
            return candidates[0]
        return None


def _check_payload_listed(check: BagCheck, present: dict[str, FileEntry], payload_manifests: list[Manifest],
                          renamed: dict[str, str]) -> None:
    if not payload_manifests:
        return
    payload = [path for path in present if path.startswith("data/")]  # sorted below: only what is reported

    def unlisted(manifest: Manifest, paths: list[str]) -> list[str]:
        # filterfalse runs the membership tests in C; a file named by a listed
        # path only after Unicode normalisation counts as listed.
        named = {disk for path, disk in renamed.items() if path in manifest.entries}
        return [path for path in filterfalse(manifest.entries.__contains__, paths) if path not in named]

    if check.rule_applies("payload-in-every-manifest"):
        for manifest in payload_manifests:
            for path in sorted(unlisted(manifest, payload)):
                check.out.add("file-not-in-manifest", path,
                              f"{path} is not listed in {manifest.name} (RFC 8493 §3: every payload "
                              "file is listed in every payload manifest)", unique=True)
    else:
        for manifest in payload_manifests:
            payload = unlisted(manifest, payload)
        for path in sorted(payload):
            check.out.add("file-not-in-manifest", path, f"{path} is not listed in any payload manifest",
                          unique=True)


def _check_tag_manifests(check: BagCheck, present: dict[str, FileEntry], payload_manifests: list[Manifest],
                         tag_manifests: list[Manifest]) -> None:
    out = check.out
    for tag in tag_manifests:
        for manifest in payload_manifests:
            if manifest.name not in tag.entries:
                check.report_rule("tag-manifest-incomplete", tag.name,
                                  f"{tag.name} does not list {manifest.name} (RFC 8493 §2.2.1: every tag "
                                  "manifest lists every payload manifest)")
    tag_files = [p for p in present if not p.startswith("data/") and not TAG_MANIFEST_NAME.match(p)
                 and p != TIMESTAMP_FILE]  # a token covers the tag manifests: none can list it
    if not tag_manifests:
        out.add("tag-manifest-missing", "tagmanifest-<algorithm>.txt",
                "the bag has no tag manifest, so bagit.txt, bag-info.txt and the manifests are unprotected",
                error=False)
        return
    covered = set().union(*(t.entries for t in tag_manifests))
    for path in tag_files:
        if path not in covered:
            out.add("tag-file-not-in-tag-manifest", path, f"tag file {path} is not in any tag manifest",
                    error=False)


def _check_fetch(check: BagCheck, sizes: dict[str, int], fetch_entries: list[FetchEntry],
                 payload_manifests: list[Manifest]) -> None:
    out = check.out
    for entry in fetch_entries:
        if not entry.path.startswith("data/"):
            out.add("path-outside-payload", entry.path,
                    f"fetch.txt line {entry.line} names {entry.path}, which is not under data/")
            continue
        if not any(entry.path in m.entries for m in payload_manifests):
            out.add("fetch-not-in-manifest", entry.path,
                    f"fetch.txt line {entry.line} names {entry.path}, which no payload manifest lists "
                    "(RFC 8493 §2.2.3)")
        size = sizes.get(entry.path)
        if size is not None and entry.length is not None and size != entry.length:
            out.add("fetch-length-mismatch", entry.path,
                    f"fetch.txt gives {entry.length} bytes for {entry.path}; the file has {size}")


def _warn_names(check: BagCheck, manifests: list[Manifest], present: dict[str, FileEntry], absent: list[str]) -> None:
    """Warnings about every name the bag has or lists (``present`` and ``absent``
    together, each name once): system files, names equal after Unicode
    normalisation or case folding. Streams over the names in slices: no set
    or lower-cased copy of a million names is built."""
    out = check.out

    def is_name(name: str) -> bool:
        return name in present or any(name in m.entries for m in manifests)

    upper: dict[str, set[str]] = {}   # lower() -> ASCII names with an upper-case letter
    non_ascii: list[str] = []
    for names in (list(present), absent):
        for start in range(0, len(names), _SLICE):
            piece = names[start:start + _SLICE]
            # One regex pass over a slice of names (joined by NUL, which no path contains).
            joined = "\x00".join(piece)
            for m in _SYSTEM_FILE.finditer(joined):
                name = joined[joined.rfind("\x00", 0, m.start() + 1) + 1:m.end()]
                out.add("system-file", name, f"{name} is an operating-system file, probably not meant as content",
                        error=False)
            if joined.isascii() and joined.lower() == joined:
                continue  # no upper-case letter, nothing non-ASCII: nothing can collide (checked in C)
            for name in piece:
                if not name.isascii():
                    non_ascii.append(name)
                elif (folded := name.lower()) != name:
                    upper.setdefault(folded, set()).add(name)
    # ASCII names are NFC already and fold with lower(): two distinct names fold
    # alike only if one has an upper-case letter, so ``upper`` finds every group.
    fold_groups: dict[str, set[str]] = {}
    for folded, group in upper.items():
        fold_groups[folded] = group | {folded} if is_name(folded) else set(group)
    nfc_groups: dict[str, set[str]] = {}
    for name in non_ascii:
        key, fold = normalised_key(name), casefold_key(name)
        nfc_groups.setdefault(key, set()).add(name)
        if fold not in fold_groups:
            fold_groups[fold] = {fold} if fold.isascii() and is_name(fold) else set()
        fold_groups[fold].add(key)
    for group in nfc_groups.values():
        if len(group) > 1:
            listed = ", ".join(ascii(n) for n in sorted(group))
            for name in sorted(group):
                out.add("name-collision-normalisation", name,
                        f"names equal after Unicode normalisation: {listed}", error=False)
    for group in fold_groups.values():
        if len(group) > 1:
            listed = ", ".join(sorted(group))
            for name in sorted(group):
                out.add("name-collision-case", name, f"names equal after case folding: {listed}", error=False)


def _check_checksums(check: BagCheck, present: dict[str, FileEntry], manifests: list[Manifest],
                     renamed: dict[str, str],
                     hashed: tuple[dict[str, dict[str, bytes]], list[Problem]] | None) -> None:
    """§3: every listed file's digest is its manifest's. Local files were hashed
    by ``LocalDigests`` (``hashed``); any other reader's are hashed here."""
    manifests = [m for m in manifests if m.supported]

    def disk_name(path: str) -> str | None:
        return path if path in present else renamed.get(path)

    if hashed is not None:
        tables, found = hashed
        for manifest in manifests:
            found += _compare_table(manifest, tables.get(manifest.algorithm, {}), disk_name)
    else:
        expected: dict[str, dict[tuple[str, str], None]] = {}
        for manifest in manifests:
            for path, digest in manifest.entries.items():
                disk = disk_name(path)
                if disk is not None:
                    expected.setdefault(disk, {})[(manifest.algorithm, _hex(digest))] = None
        jobs: list[HashJob] = [(path, present[path].size, tuple(pairs)) for path, pairs in sorted(expected.items())]
        found = check_streams(check.reader.open, jobs, check.processes, check.on_progress)
    for problem in sorted(found, key=lambda p: (p.path, p.message)):
        # A file is listed once per manifest, so a mismatch is never found twice.
        check.out.append(problem, unique=problem.code == "checksum-mismatch")


def _compare_table(manifest: Manifest, table: dict[str, bytes],
                   disk_name: Callable[[str], str | None]) -> list[Problem]:
    """Mismatches between a manifest and the digests hashed for its algorithm."""
    if _all_entries_match(manifest, table):
        return []
    mismatches = []
    for path, want in manifest.entries.items():
        disk = disk_name(path)
        got = table.get(disk) if disk is not None else None
        if disk is not None and got is not None and (got != want if isinstance(want, bytes) else got.hex() != want):
            mismatches.append(mismatch_problem(disk, manifest.algorithm, _hex(want), got.hex()))
    return mismatches


def _all_entries_match(manifest: Manifest, table: dict[str, bytes]) -> bool:
    """Fast path of ``_compare_table``: every entry is exactly a hashed file's
    (path, raw digest), decided in C with one set comparison."""
    return manifest.entries.items() <= table.items()
