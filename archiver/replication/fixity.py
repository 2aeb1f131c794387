"""Checking a copy of a bag byte for byte against the bag's manifests.

The *reference* is the source bag: for every file, the digest its manifest
(payload) or tag manifest (tag files) records, preferring sha256. Files no
manifest covers (the tag manifests themselves) are hashed at the source.
A copy is checked by streaming every file back from wherever it is (a disk,
S3) through a ``BagReader`` and comparing digests: nothing is called
"verified" unless every byte was read and hashed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Protocol, Iterable, BinaryIO

from archiver.errors import StorageError
from archiver.bagit.hashing import digest_of as stream_digest
from archiver.bagit.parse import hash_name, parse_manifest_map
from archiver.replication.plan import algorithm_of

CHUNK = 1 << 20
PREFERRED = ("sha256", "sha512", "sha384", "sha224", "sha1", "md5")


class Readable(Protocol):
    location: str

    def open(self, path: str) -> BinaryIO: ...


@dataclass(frozen=True)
class Expected:
    algorithm: str
    digest: str
    size: int | None  # None: listed in a manifest, absent at the source


@dataclass(frozen=True)
class FileFault:
    """One file of a copy that does not match the reference."""

    path: str
    kind: str  # missing | size-mismatch | checksum-mismatch | unreadable | extra
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"path": self.path, "kind": self.kind, "message": self.message}


def _rank(algorithm: str) -> int:
    algorithm = hash_name(algorithm)
    return PREFERRED.index(algorithm) if algorithm in PREFERRED else len(PREFERRED)


def manifest_digests(reader: Readable, names: Iterable[str]) -> dict[str, dict[str, str]]:
    """{path: {algorithm: digest as written}} from every manifest and tag manifest
    among ``names`` (a bag's file listing) whose algorithm hashlib knows.

    Raises StorageError when a manifest cannot be read."""
    recorded: dict[str, dict[str, str]] = {}
    for manifest in sorted(p for p in names if algorithm_of(p)):
        algorithm = hash_name(algorithm_of(manifest) or "")
        if algorithm not in hashlib.algorithms_available:
            continue
        try:
            with reader.open(manifest) as stream:
                # verify's parser: unsafe paths ("../x", "/etc/x") are dropped,
                # so nothing outside the bag is ever read or written by name.
                listed, _repeats, _findings = parse_manifest_map(stream, manifest, algorithm)
        except FileNotFoundError as exc:
            raise StorageError(f"{reader.location}: {manifest} vanished while reading") from exc
        for path, digest in listed.items():
            recorded.setdefault(path, {})[algorithm] = digest
    return recorded


def reference_digests(reader: Readable, files: dict[str, int]) -> dict[str, Expected]:
    """The expected digest of every file of a bag (``files``: path → size, the
    listing of the reference copy) and of every file its manifests list.

    Raises StorageError when a manifest cannot be read."""
    # The best algorithm each file has a digest for.
    recorded = {path: min(digests.items(), key=lambda item: _rank(item[0]))
                for path, digests in manifest_digests(reader, files).items()}
    expected: dict[str, Expected] = {}
    # Files a manifest lists but the source lacks stay in the reference (size
    # unknown): a copy is judged against the manifest, not against the source.
    for path in sorted(set(recorded) - set(files)):
        algorithm, digest = recorded[path]
        expected[path] = Expected(algorithm, digest, None)
    for path, size in files.items():
        if path in recorded:
            algorithm, digest = recorded[path]
        else:
            try:
                digest, _ = stream_digest(reader, path, "sha256")
            except FileNotFoundError as exc:
                raise StorageError(f"{reader.location}: {path} vanished while reading") from exc
            algorithm = "sha256"
        expected[path] = Expected(algorithm, digest, size)
    return expected


def read_tagmanifests(reader: Readable, files: dict[str, int]) -> dict[str, bytes]:
    """The bytes of every tag manifest among ``files`` (a bag's identity, which
    mirror and repair compare). StorageError when one vanished while reading."""
    found = {}
    for path in files:
        if "/" not in path and path.startswith("tagmanifest-") and algorithm_of(path):
            try:
                with reader.open(path) as stream:
                    found[path] = stream.read()
            except FileNotFoundError as exc:
                raise StorageError(f"{reader.location}: {path} vanished while reading") from exc
    return found


def check_copy(reader: Readable, reference: dict[str, Expected],
               present: dict[str, int] | None = None) -> list[FileFault]:
    """Read back every file of ``reference`` from ``reader`` and compare.

    ``present`` (path → size, from a listing of the copy) adds ``extra``
    faults for files the reference does not have. An unreadable file is a
    fault ("could not verify" is never a success)."""
    faults: list[FileFault] = []
    for path in sorted(reference):
        want = reference[path]
        if present is not None and path not in present:
            faults.append(FileFault(path, "missing", f"{path} is missing"))
            continue
        try:
            digest, size = stream_digest(reader, path, want.algorithm)
        except FileNotFoundError:
            faults.append(FileFault(path, "missing", f"{path} is missing"))
            continue
        except (StorageError, OSError) as exc:
            faults.append(FileFault(path, "unreadable", f"{path} could not be read back: {exc}"))
            continue
        if want.size is not None and size != want.size:
            faults.append(FileFault(path, "size-mismatch",
                                    f"{path} is {size} bytes, expected {want.size}"))
        elif digest != want.digest:
            faults.append(FileFault(path, "checksum-mismatch",
                                    f"{path} {want.algorithm} is {digest}, expected {want.digest}"))
    for path in sorted(set(present or ()) - set(reference)):
        faults.append(FileFault(path, "extra", f"{path} is not part of the bag"))
    return faults


def faulty_paths(faults: Iterable[FileFault]) -> list[str]:
    return [f.path for f in faults if f.kind != "extra"]
