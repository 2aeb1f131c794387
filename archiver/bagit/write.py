"""Writing BagIt 1.0 bags (RFC 8493), atomically.

A bag is built in a ``.tmp-*`` folder inside the collection root, every file
and folder fsynced, then renamed into place: a reader never sees a partial
bag, and a crash leaves only a temporary folder the next run removes
(``archiver.collection.remove_leftovers``). Bags are immutable once written.

We write our own rather than call ``bagit.make_bag`` because bagit-python
writes BagIt 0.97 and bags in place (moving the caller's files into ``data/``);
every bag written here is still validated by the bagit library in the tests.

    >>> write_bag(root, "essay-20261125T093000Z",
    ...           {"text.txt": b"Title: ...\\n"}, [("Source-URL", "https://...")])
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Callable, Iterable, Mapping

from archiver import AGENT
from archiver.bagit.hashing import hash_file
from archiver.durable import fsync_path, fsync_tree, make_temp_dir, release_temp_dir, renamed_held_dir
from archiver.errors import StorageError
from archiver.clock import iso, utc_now

DEFAULT_ALGORITHMS = ("sha256", "sha512")
_CHUNK = 1 << 20


def encode_manifest_path(path: str) -> str:
    """Percent-encode what RFC 8493 §2.1.3 requires in a manifest path."""
    return path.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def render_tag_file(pairs: Iterable[tuple[str, str]]) -> bytes:
    """``Label: value`` lines (RFC 8493 §2.2.2), UTF-8, LF line ends.

    Values must be one line: a newline in a value would silently become a
    new (malformed) element, so it is refused instead."""
    lines = []
    for label, value in pairs:
        if not label or ":" in label or label != label.strip() or any(c in label for c in "\r\n"):
            raise ValueError(f"illegal tag label {label!r}")
        if any(c in value for c in "\r\n"):
            raise ValueError(f"tag value for {label!r} contains a line break")
        lines.append(f"{label}: {value}\n")
    return "".join(lines).encode("utf-8")


def render_manifest(entries: Iterable[tuple[str, str]]) -> bytes:
    """``<digest>  <path>`` lines (two spaces, as sha256sum writes), sorted by path."""
    return "".join(
        f"{digest}  {encode_manifest_path(path)}\n" for path, digest in sorted(entries)
    ).encode("utf-8")


def _check_payload_name(name: str) -> None:
    parts = name.split("/")
    if not name or name.startswith("/") or any(p in ("", ".", "..") for p in parts) or "\\" in name:
        raise ValueError(f"illegal payload path {name!r}")


def write_bag(
    root: Path,
    name: str,
    payload: Mapping[str, bytes | Path],
    info: Iterable[tuple[str, str]],
    algorithms: Iterable[str] = DEFAULT_ALGORITHMS,
    keep_held: bool = False,
    before_publish: Callable[[Path], None] | None = None,
) -> Path:
    """Build a BagIt 1.0 bag named ``name`` in ``root`` and return its path.

    ``payload`` maps paths relative to ``data/`` to bytes or to a file to copy.
    ``info`` is bag-info.txt's elements in order; Bagging-Date,
    Bag-Software-Agent and Payload-Oxum are added. Raises StorageError if the
    bag exists or cannot be written; nothing is left behind on failure.
    ``keep_held=True`` keeps the folder's flock after the rename, for a caller that
    must log the bag before other runs may take it for unrecorded: it then calls
    ``collection.release_temp_dir(bag)``.
    ``before_publish(tmp)`` runs on the complete bag before its rename (used to
    add a time-stamp token: a tag file the tag manifests cannot list).
    """
    root = Path(root)
    algorithms = tuple(algorithms)
    final = root / name
    if "/" in name or name.startswith(".") or not name:
        raise ValueError(f"illegal bag name {name!r}")
    if final.exists():
        raise StorageError(f"bag {final} already exists")
    for rel in payload:
        _check_payload_name(rel)
    try:
        tmp = make_temp_dir(root, name)
    except OSError as exc:
        raise StorageError(f"cannot create a temporary folder in {root}: {exc.strerror}") from exc
    written = False
    try:
        _build(tmp, payload, list(info), algorithms)
        if before_publish is not None:
            before_publish(tmp)
        fsync_tree(tmp)
        if final.exists():
            raise StorageError(f"bag {final} already exists")
        os.rename(tmp, final)
        renamed_held_dir(tmp, final)
        fsync_path(root)
        written = True
    except OSError as exc:
        _remove_tree(tmp)
        raise StorageError(f"cannot write bag {final}: {exc.strerror or exc}") from exc
    except BaseException:
        _remove_tree(tmp)
        raise
    finally:
        release_temp_dir(tmp)
        if not (keep_held and written):
            release_temp_dir(final)
    return final


def _build(tmp: Path, payload: Mapping[str, bytes | Path], info: list[tuple[str, str]],
           algorithms: tuple[str, ...]) -> None:
    data = tmp / "data"
    data.mkdir()
    manifests: dict[str, list[tuple[str, str]]] = {alg: [] for alg in algorithms}
    total_bytes = 0
    for rel, content in sorted(payload.items()):
        target = data / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, (bytes, bytearray)):
            target.write_bytes(content)
        else:
            with open(content, "rb") as src, open(target, "wb") as dst:
                while chunk := src.read(_CHUNK):
                    dst.write(chunk)
        digests, size = hash_file(target, algorithms)
        total_bytes += size
        for alg in algorithms:
            manifests[alg].append((f"data/{rel}", digests[alg]))

    tag_files: dict[str, bytes] = {
        "bagit.txt": b"BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n",
    }
    elements = [(k, v) for k, v in info if k not in ("Payload-Oxum", "Bagging-Date", "Bag-Software-Agent")]
    elements += [
        ("Bagging-Date", iso(utc_now())[:10]),
        ("Bag-Software-Agent", AGENT),
        ("Payload-Oxum", f"{total_bytes}.{len(payload)}"),
    ]
    tag_files["bag-info.txt"] = render_tag_file(elements)
    for alg in algorithms:
        tag_files[f"manifest-{alg}.txt"] = render_manifest(manifests[alg])
    for rel, content in tag_files.items():
        (tmp / rel).write_bytes(content)
    for alg in algorithms:
        entries = [(rel, hashlib.new(alg, content).hexdigest()) for rel, content in tag_files.items()]
        (tmp / f"tagmanifest-{alg}.txt").write_bytes(render_manifest(entries))


def _remove_tree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
