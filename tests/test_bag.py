"""archiver.bagit.write: every bag written passes the bagit library, atomically."""

from __future__ import annotations

import os
from pathlib import Path

import bagit
import pytest

from archiver.bagit.write import encode_manifest_path, render_manifest, render_tag_file, write_bag
from archiver.collection.root import open_collection
from archiver.errors import StorageError


def test_written_bag_is_valid_bagit_1_0(tmp_path: Path) -> None:
    source_file = tmp_path / "big.bin"
    source_file.write_bytes(os.urandom(3 * 1024 * 1024))
    root = open_collection(tmp_path / "bags")
    bag_dir = write_bag(root, "essay-20261125T093000Z",
                        {"text.txt": "Title: Ünïcode\n\nBody\n".encode(), "sub/big.bin": source_file},
                        [("Source-URL", "https://example.org/a"), ("Bag-Group-Identifier", "c1")])
    assert (bag_dir / "bagit.txt").read_text() == "BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n"
    bag = bagit.Bag(str(bag_dir))
    bag.validate()  # raises on any problem
    text_size = len("Title: Ünïcode\n\nBody\n".encode())
    assert bag.info["Payload-Oxum"] == f"{text_size + 3 * 1024 * 1024}.2"
    assert bag.info["Source-URL"] == "https://example.org/a"
    assert set(bag.algorithms) == {"sha256", "sha512"}
    tagmanifest = (bag_dir / "tagmanifest-sha512.txt").read_text()
    for name in ("bagit.txt", "bag-info.txt", "manifest-sha256.txt", "manifest-sha512.txt"):
        assert f"  {name}\n" in tagmanifest
    assert not [p for p in root.iterdir() if p.name.startswith(".tmp-")]


def test_existing_bag_is_never_overwritten(tmp_path: Path) -> None:
    root = open_collection(tmp_path)
    write_bag(root, "a", {"t.txt": b"one"}, [])
    with pytest.raises(StorageError, match="already exists"):
        write_bag(root, "a", {"t.txt": b"two"}, [])
    assert (root / "a" / "data" / "t.txt").read_bytes() == b"one"
    assert not [p for p in root.iterdir() if p.name.startswith(".tmp-")]


def test_failure_midway_leaves_nothing(tmp_path: Path) -> None:
    root = open_collection(tmp_path)
    with pytest.raises(StorageError, match="cannot write bag"):
        write_bag(root, "b", {"a.txt": b"x", "b.txt": tmp_path / "missing"}, [])
    assert [p.name for p in root.iterdir()] == [".archiver"]


def test_leftover_temporary_folder_is_removed_on_open(tmp_path: Path) -> None:
    root = open_collection(tmp_path)
    (root / ".tmp-crashed-123" / "data").mkdir(parents=True)
    open_collection(root)
    assert not (root / ".tmp-crashed-123").exists()


def test_manifest_paths_are_percent_encoded() -> None:
    assert encode_manifest_path("data/100%\nx\r") == "data/100%25%0Ax%0D"
    assert render_manifest([("data/b", "22"), ("data/a", "11")]) == b"11  data/a\n22  data/b\n"


@pytest.mark.parametrize("label,value", [("Bad:Label", "x"), ("Ok", "two\nlines"), (" Pad", "x")])
def test_tag_file_refuses_what_would_change_meaning(label: str, value: str) -> None:
    with pytest.raises(ValueError):
        render_tag_file([(label, value)])
