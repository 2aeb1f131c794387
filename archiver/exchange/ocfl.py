"""OCFL 1.1 export: a collection as versioned objects in an OCFL storage root.

One object per source URL (its id is the URL), one version per capture of that
URL, oldest first: ``created`` is the retrieval time, ``message`` the bag's
name, and the version's logical state is the whole bag, so checking out any
version gives back the bag byte for byte. Objects are placed by the registered
storage layout extension 0003 (hashed n-tuple with the id as folder name).

Files are content-addressed with sha512 and stored once per object: a file
whose digest the object already holds is not stored again. The digests come
from the bag's own ``manifest-sha512.txt`` / ``tagmanifest-sha512.txt`` where
they list the file (only the tag manifests themselves, and files of bags made
elsewhere without sha512 manifests, are hashed). That reuse is safe because
every byte that is *stored* is hashed on its way in and must match the digest
it is filed under (a damaged bag is refused, never stored under a wrong
digest); a file that is *not* stored is only named by its digest, and the
content the object holds under that digest was itself checked when stored.

Re-export adds only the captures the object lacks (bags already a version's
``message``). Writes are atomic: new versions (or a new object whole) are
built in a ``.tmp-*`` folder inside the storage root, fsynced and renamed into
place; the object's root inventory is replaced last. An update cut short is
finished by the next export (the newest complete version's inventory is
rolled forward), and crash leftovers in the root are removed.

    >>> report = export_ocfl(Path("bags"), None, None, Path("ocfl-root"))
    >>> [(o.id, o.added) for o in report.objects][:1]
    [('https://example.org/essay', ['v1', 'v2', 'v3'])]
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable
from urllib.parse import quote

from archiver.bagit.reader import split_safe_relpath
from archiver.bagit.verify import Problem
from archiver.collection.root import remove_leftovers
from archiver.durable import fsync_dir, make_temp_dir, release_temp_dir
from archiver.replication.directory import sync_folder
from archiver.errors import ArchiverError, StorageError, UsageError
from archiver.exchange.captures import (CaptureBag, manifest_digests, read_bag_info, require_some,
                                        select_captures)

ROOT_DECLARATION = "0=ocfl_1.1"
OBJECT_DECLARATION = "0=ocfl_object_1.1"
INVENTORY_TYPE = "https://ocfl.io/1.1/spec/#inventory"
LAYOUT = "0003-hash-and-id-n-tuple-storage-layout"
LAYOUT_CONFIG = {"extensionName": LAYOUT, "digestAlgorithm": "sha256", "tupleSize": 3, "numberOfTuples": 3}
_CHUNK = 1 << 20
_SHA512 = re.compile(r"^[0-9a-f]{128}$")
_VERSION_DIR = re.compile(r"^v([1-9][0-9]*)$")


@dataclass
class OcflObjectResult:
    id: str
    path: str                                         # relative to the storage root
    added: list[str] = field(default_factory=list)    # versions added by this export
    bags: list[str] = field(default_factory=list)     # their bags, in the same order
    head: str | None = None
    recovered: bool = False                           # an update cut short was finished first


@dataclass
class OcflReport:
    out: str
    objects: list[OcflObjectResult] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    files_stored: int = 0          # content files written by this export
    files_deduplicated: int = 0    # logical files whose content the object already held
    bytes_stored: int = 0          # bytes of content written by this export
    bytes_in_bags: int = 0         # bytes of every file of the exported bags
    digests_from_manifests: int = 0
    digests_computed: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def versions_added(self) -> int:
        return sum(len(o.added) for o in self.objects)

    def to_dict(self) -> dict[str, Any]:
        return {"format": "ocfl", "out": self.out, "ok": self.ok, "versions_added": self.versions_added,
                "files_stored": self.files_stored, "files_deduplicated": self.files_deduplicated,
                "bytes_stored": self.bytes_stored, "bytes_in_bags": self.bytes_in_bags,
                "digests_from_manifests": self.digests_from_manifests,
                "digests_computed": self.digests_computed,
                "objects": [vars(o) for o in self.objects],
                "problems": [p.to_dict() for p in self.problems]}


def object_path(identifier: str) -> str:
    """Where extension 0003 (sha256, 3 tuples of 3) puts an object, relative to the root."""
    digest = hashlib.sha256(identifier.encode("utf-8")).hexdigest()
    encoded = "".join(ch if re.fullmatch(r"[A-Za-z0-9_-]", ch) else
                      "".join(f"%{b:02x}" for b in ch.encode("utf-8")) for ch in identifier)
    if len(encoded) > 100:
        encoded = f"{encoded[:100]}-{digest}"
    return f"{digest[0:3]}/{digest[3:6]}/{digest[6:9]}/{encoded}"


def export_ocfl(root: Path, bags: list[str] | None, urls: list[str] | None, out: Path,
                on_progress: Callable[..., None] | None = None) -> OcflReport:
    """Write (or update) the OCFL storage root ``out`` with the selected captures of
    the collection at ``root`` (``bags`` names, every capture of ``urls``, or every
    bag when both are None). A bag that cannot be exported is a problem in the
    report, and the object's later captures wait for the next export (versions
    stay in capture order). UsageError when nothing can be exported or ``out`` is
    not an OCFL storage root archiver can write; StorageError on I/O failure."""
    captures, problems = select_captures(Path(root), bags, urls)
    require_some(captures, problems)
    out = Path(out)
    report = OcflReport(out=str(out), problems=list(problems))
    by_url: dict[str, list[CaptureBag]] = {}
    for capture in captures:
        by_url.setdefault(capture.url, []).append(capture)
    try:
        _open_storage_root(out)
        lock = _lock(out)
        try:
            remove_leftovers(out)
            done = 0
            for url, group in by_url.items():
                try:
                    _export_object(out, url, group, report)
                except ArchiverError as exc:
                    report.problems.append(Problem("object-not-written", url, str(exc)))
                done += len(group)
                if on_progress:
                    on_progress(done, len(captures), url)
        finally:
            os.close(lock)
    except OSError as exc:
        raise StorageError(f"cannot write OCFL storage root {out}: {exc.strerror or exc}") from exc
    return report


# --------------------------------------------------------------------------- storage root

def _open_storage_root(out: Path) -> None:
    """Create an OCFL 1.1 storage root at ``out`` (absent or empty folder), or
    check that the existing one uses the layout archiver writes."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out} is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not (out / ROOT_DECLARATION).is_file():
            raise UsageError(f"{out} is neither empty nor an OCFL 1.1 storage root (no {ROOT_DECLARATION})")
        try:
            layout = json.loads((out / "ocfl_layout.json").read_text("utf-8"))
            config = json.loads((out / "extensions" / LAYOUT / "config.json").read_text("utf-8"))
        except (OSError, ValueError) as exc:
            raise UsageError(f"{out} is an OCFL storage root without the {LAYOUT} layout archiver writes "
                             f"({exc})") from exc
        if layout.get("extension") != LAYOUT or any(config.get(k) != v for k, v in LAYOUT_CONFIG.items()):
            raise UsageError(f"{out} uses another storage layout ({layout.get('extension')!r}); "
                             f"archiver writes only {LAYOUT} with its default parameters")
        return
    out.mkdir(parents=True, exist_ok=True)
    _write_file(out / "extensions" / LAYOUT / "config.json", _json(LAYOUT_CONFIG))
    _write_file(out / "ocfl_layout.json", _json({
        "extension": LAYOUT,
        "description": "OCFL object identifiers are hashed with sha256 into three 3-character tuples, "
                       "then percent-encoded as the object's folder name (extension 0003)"}))
    fsync_dir(out / "extensions")
    _write_file(out / ROOT_DECLARATION, b"ocfl_1.1\n")  # the declaration last: the root is complete
    fsync_dir(out)
    fsync_dir(out.parent)


def _lock(out: Path) -> int:
    """An exclusive flock on the storage root: one export writes at a time."""
    fd = os.open(out, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        os.close(fd)
        raise StorageError(f"another export is writing to {out}; try again when it has finished") from exc
    return fd


# --------------------------------------------------------------------------- objects

def _export_object(out: Path, url: str, captures: list[CaptureBag], report: OcflReport) -> None:
    rel = object_path(url)
    obj_dir = out / rel
    result = OcflObjectResult(id=url, path=rel)
    inventory: dict[str, Any] | None = None
    if obj_dir.exists():
        result.recovered = _recover(out, obj_dir)
        inventory = _read_inventory(obj_dir)
        if inventory.get("id") != url:
            raise StorageError(f"{rel} holds object {inventory.get('id')!r}, not {url!r}")
        if inventory.get("digestAlgorithm") != "sha512":
            raise StorageError(f"object {url} uses {inventory.get('digestAlgorithm')}; archiver adds only to "
                               "sha512 objects")
    present = {v.get("message") for v in (inventory or {}).get("versions", {}).values()}
    new = [c for c in captures if c.bag not in present]
    result.head = (inventory or {}).get("head")
    if not new:
        report.objects.append(result)
        return
    inventory = inventory or {"id": url, "type": INVENTORY_TYPE, "digestAlgorithm": "sha512",
                              "head": "v0", "manifest": {}, "versions": {}}
    staging = make_temp_dir(out, "ocfl")
    try:
        build = staging / "object" if not obj_dir.exists() else staging
        build.mkdir(exist_ok=True)
        for capture in new:
            number = int(inventory["head"][1:]) + 1
            version = f"v{number}"
            try:
                _build_version(build / version, version, capture, inventory, report)
            except ArchiverError as exc:
                report.problems.append(Problem(getattr(exc, "code", "bag-not-exported"), capture.bag,
                                               f"{exc}; this and later captures of {url} were not exported"))
                shutil.rmtree(build / version, ignore_errors=True)
                break
            result.added.append(version)
            result.bags.append(capture.bag)
        if result.added:
            _publish(out, obj_dir, build, result.added, inventory)
            result.head = inventory["head"]
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        release_temp_dir(staging)
    report.objects.append(result)


class _BagDamaged(StorageError):
    code = "checksum-mismatch"


def _build_version(vdir: Path, version: str, capture: CaptureBag, inventory: dict[str, Any],
                   report: OcflReport) -> None:
    """Add one version to ``inventory`` (in memory) and write its new content and its
    inventory under ``vdir``. Raises ArchiverError (nothing of it kept) when the
    bag cannot be read, holds a symlink, lacks a file its manifest lists, or a
    file does not match its manifest digest."""
    reader = capture.reader()
    files = reader.list_files()
    links = [f.path for f in files if f.is_symlink]
    if links:
        raise StorageError(f"{capture.bag} holds a symbolic link ({links[0]}); it is never followed")
    listed = {**manifest_digests(reader, "tagmanifest-sha512.txt", "sha512"),
              **manifest_digests(reader, "manifest-sha512.txt", "sha512")}
    missing = sorted(set(listed) - {f.path for f in files})
    if missing:
        raise StorageError(f"{capture.bag} lacks {missing[0]}, which its manifest lists")
    content_dir = inventory.get("contentDirectory", "content")
    manifest: dict[str, list[str]] = dict(inventory["manifest"])  # kept only if the version completes
    state: dict[str, list[str]] = {}
    counts = OcflReport(out="")  # this version's figures, added to the report only if it completes
    for entry in files:
        try:
            split_safe_relpath(entry.path)
        except ValueError as exc:
            raise StorageError(f"{capture.bag}: {exc}") from exc
        counts.bytes_in_bags += entry.size
        digest = listed.get(entry.path, "")
        if _SHA512.match(digest):
            counts.digests_from_manifests += 1
        else:
            digest = _hash(reader, entry.path)
            counts.digests_computed += 1
        if digest in manifest:
            counts.files_deduplicated += 1
        else:
            content_path = f"{version}/{content_dir}/{entry.path}"
            counts.bytes_stored += _copy_checked(reader, entry.path, vdir / content_dir / entry.path,
                                                 digest, capture.bag)
            counts.files_stored += 1
            manifest[digest] = [content_path]
        state.setdefault(digest, []).append(entry.path)
    organization = read_bag_info(reader).get("Source-Organization") or "archiver"
    inventory["versions"][version] = {
        "created": capture.retrieved,
        "message": capture.bag,
        "user": {"name": organization, "address": "urn:x-archiver:" + quote(organization, safe="")},
        "state": {digest: sorted(paths) for digest, paths in sorted(state.items())},
    }
    inventory["head"] = version
    inventory["manifest"] = dict(sorted(manifest.items()))
    vdir.mkdir(parents=True, exist_ok=True)
    _write_inventory(vdir, inventory)
    for name in ("bytes_in_bags", "digests_from_manifests", "digests_computed", "files_deduplicated",
                 "files_stored", "bytes_stored"):
        setattr(report, name, getattr(report, name) + getattr(counts, name))


def _hash(reader: Any, path: str) -> str:
    digest = hashlib.sha512()
    with reader.open(path) as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _copy_checked(reader: Any, path: str, target: Path, digest: str, bag: str) -> int:
    """Copy one file of a bag, hashing it on the way; _BagDamaged if it does not match."""
    target.parent.mkdir(parents=True, exist_ok=True)
    found = hashlib.sha512()
    size = 0
    with reader.open(path) as source, open(target, "xb") as sink:
        while chunk := source.read(_CHUNK):
            found.update(chunk)
            sink.write(chunk)
            size += len(chunk)
    if found.hexdigest() != digest:
        raise _BagDamaged(f"{bag}: {path} does not match its sha512 manifest entry (the bag is damaged; "
                          "check it with `archiver verify`)")
    return size


def _json(document: Any) -> bytes:
    return (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def _write_file(path: Path, data: bytes, sync: bool = True) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(data)
        if sync:
            handle.flush()
            os.fsync(handle.fileno())


def _write_inventory(folder: Path, inventory: dict[str, Any]) -> None:
    """Inventory and sidecar, unsynced: they are written in staging, made durable
    with the rest of it (``sync_folder``) before anything is renamed into place."""
    data = _json(inventory)
    _write_file(folder / "inventory.json", data, sync=False)
    _write_file(folder / "inventory.json.sha512", f"{hashlib.sha512(data).hexdigest()} inventory.json\n".encode(),
                sync=False)


def _publish(out: Path, obj_dir: Path, build: Path, added: list[str], inventory: dict[str, Any]) -> None:
    """Move the built versions (or the built object) into place, root inventory last.
    Everything built is made durable first (one syncfs of the staging folder)."""
    if not obj_dir.exists():
        _write_file(build / OBJECT_DECLARATION, b"ocfl_object_1.1\n", sync=False)
        _write_inventory(build, inventory)
    sync_folder(build)
    if not obj_dir.exists():
        _make_parents(out, obj_dir.parent)
        os.rename(build, obj_dir)
        fsync_dir(obj_dir.parent)
        return
    for version in added:
        os.rename(build / version, obj_dir / version)
    fsync_dir(obj_dir)
    _replace_root_inventory(out, obj_dir, obj_dir / added[-1])


def _replace_root_inventory(out: Path, obj_dir: Path, version_dir: Path) -> None:
    """Make the object's root inventory (and sidecar) the copy of ``version_dir``'s.
    The copies are written in the storage root's top folder (never inside the
    hierarchy, where a leftover would look like a broken object) and renamed."""
    for name in ("inventory.json", "inventory.json.sha512"):
        tmp = out / f".tmp-inventory-{os.getpid()}-{name}"
        _write_file(tmp, (version_dir / name).read_bytes())
        os.rename(tmp, obj_dir / name)
    fsync_dir(obj_dir)


def _make_parents(out: Path, folder: Path) -> None:
    """mkdir -p ``folder`` below ``out``, fsyncing each new entry's parent."""
    missing = []
    current = folder
    while not current.exists():
        missing.append(current)
        current = current.parent
    for path in reversed(missing):
        path.mkdir()
        fsync_dir(path.parent)


def _read_inventory(folder: Path) -> dict[str, Any]:
    """An inventory whose sidecar matches it. StorageError otherwise."""
    try:
        data = (folder / "inventory.json").read_bytes()
        sidecar = (folder / "inventory.json.sha512").read_text("utf-8").split()
    except OSError as exc:
        raise StorageError(f"cannot read the inventory of {folder}: {exc.strerror or exc}") from exc
    if not sidecar or sidecar[0].lower() != hashlib.sha512(data).hexdigest():
        raise StorageError(f"the inventory of {folder} does not match its sidecar")
    try:
        inventory = json.loads(data)
    except ValueError as exc:
        raise StorageError(f"the inventory of {folder} is not JSON: {exc}") from exc
    if not isinstance(inventory, dict) or not isinstance(inventory.get("versions"), dict):
        raise StorageError(f"the inventory of {folder} is not an OCFL inventory")
    return inventory


def _recover(out: Path, obj_dir: Path) -> bool:
    """Finish an update cut short: when the newest version folder holds a complete
    inventory newer than (or differing from) the root one, roll it forward. True
    if anything was done."""
    numbers = sorted(int(m.group(1)) for p in obj_dir.iterdir() if (m := _VERSION_DIR.match(p.name)))
    for number in reversed(numbers):
        version_dir = obj_dir / f"v{number}"
        try:
            newest = _read_inventory(version_dir)
        except StorageError:
            continue
        if newest.get("head") != f"v{number}":
            continue
        root_bytes = (obj_dir / "inventory.json").read_bytes() if (obj_dir / "inventory.json").exists() else b""
        sidecar_ok = True
        try:
            _read_inventory(obj_dir)
        except StorageError:
            sidecar_ok = False
        if root_bytes == (version_dir / "inventory.json").read_bytes() and sidecar_ok:
            return False
        _replace_root_inventory(out, obj_dir, version_dir)
        return True
    return False
