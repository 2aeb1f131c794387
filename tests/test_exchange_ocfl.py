"""OCFL export: ocfl-py's validator finds the storage root valid with no warnings,
before and after a re-export; versions rebuild the bags byte for byte."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import ocfl
import ocfl.validator
import pytest
from typer.testing import CliRunner

from conftest import LoopbackServer
from exchange_fixture import export as run_export
from exchange_fixture import Collection, capture_again, make_collection

from archiver.cli import app
from archiver.exchange.ocfl import object_path

runner = CliRunner()
BIN = Path(sys.executable).parent


@pytest.fixture
def collection(tmp_path) -> Collection:
    server = LoopbackServer()
    try:
        yield make_collection(tmp_path / "bags", server)
    finally:
        server.close()


def export(root: Path, out: Path, *selection: str) -> tuple[int, dict]:
    return run_export(root, out, "ocfl", *selection)


def validate(out: Path) -> list[str]:
    """Every error and warning ocfl-py reports for the storage root and each object
    (an empty list: valid with no warnings)."""
    store = ocfl.StorageRoot(root=str(out))
    messages = []
    try:
        if not store.validate(log_warnings=True, check_digests=True):
            messages.append(f"storage root invalid: {list(store.log.messages)}")
    except TypeError as exc:  # ocfl-py 2.0 raises while wording a traversal error (E072, …); 2.1 reports it
        return [f"storage root invalid: ocfl-py raised {exc!r} reporting a traversal error"]
    messages += [f"{path}: {text}" for path, text in store.errors]
    messages += list(store.log.messages)
    if store.good_objects != store.num_objects:
        messages.append(f"{store.num_objects - store.good_objects} invalid objects")
    for path, _identifier in ocfl.StorageRoot(root=str(out)).list_objects():
        validator = ocfl.validator.Validator(log_warnings=True, check_digests=True)
        validator.validate_object(str(out / path))
        if validator.log.num_warnings or validator.log.num_errors:
            messages.append(f"{path}: {validator.status_str()}")
    cli = subprocess.run([str(BIN / "ocfl-validate.py"), str(out)], capture_output=True, text=True, timeout=300)
    if cli.returncode != 0 or "WARNING" in cli.stdout + cli.stderr or "ERROR" in cli.stdout + cli.stderr:
        messages.append(f"ocfl-validate.py: {cli.returncode} {cli.stdout}{cli.stderr}")
    return messages


def inventory(out: Path, url: str) -> dict:
    return json.loads((out / object_path(url) / "inventory.json").read_text("utf-8"))


def checkout(out: Path, url: str, version: str) -> dict[str, bytes]:
    """A version's logical files, read through the inventory's manifest."""
    inv = inventory(out, url)
    obj = out / object_path(url)
    files = {}
    for digest, paths in inv["versions"][version]["state"].items():
        content = (obj / inv["manifest"][digest][0]).read_bytes()
        assert hashlib.sha512(content).hexdigest() == digest
        for path in paths:
            files[path] = content
    return files


def bag_files(bag: Path) -> dict[str, bytes]:
    return {p.relative_to(bag).as_posix(): p.read_bytes() for p in bag.rglob("*") if p.is_file()}


def test_export_is_valid_with_no_warnings_and_versions_rebuild_the_bags(collection, tmp_path) -> None:
    out = tmp_path / "ocfl"
    code, document = export(collection.root, out, "--all")
    assert code == 0 and document["ok"], document
    assert validate(out) == []
    essay_bags = collection.bags_of(collection.essay_url)
    inv = inventory(out, collection.essay_url)
    assert inv["id"] == collection.essay_url and inv["digestAlgorithm"] == "sha512" and inv["head"] == "v3"
    for number, bag in enumerate(essay_bags, start=1):
        version = inv["versions"][f"v{number}"]
        metadata = json.loads((collection.root / bag / "data" / "metadata.json").read_text())
        assert version["message"] == bag and version["created"] == metadata["retrieved"]
        assert checkout(out, collection.essay_url, f"v{number}") == bag_files(collection.root / bag)
    # Unchanged files are stored once: bagit.txt is the same in every capture.
    bagit_digest = hashlib.sha512((collection.root / essay_bags[0] / "bagit.txt").read_bytes()).hexdigest()
    assert inv["manifest"][bagit_digest] == ["v1/content/bagit.txt"]
    assert all(bagit_digest in inv["versions"][v]["state"] for v in ("v1", "v2", "v3"))
    assert document["files_deduplicated"] >= 2
    # The sha512 digests came from the bags' manifests; only files no sha512 manifest lists were hashed.
    assert document["digests_computed"] == 2 * 5  # tagmanifest-sha256.txt and tagmanifest-sha512.txt per bag
    assert document["digests_from_manifests"] > document["digests_computed"]
    for url in (collection.gz_url, collection.chunked_url):
        assert inventory(out, url)["head"] == "v1"


def test_re_export_adds_only_new_versions_and_stays_valid(collection, tmp_path) -> None:
    out = tmp_path / "ocfl"
    assert export(collection.root, out, "--all")[0] == 0
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    code, document = export(collection.root, out, "--all")
    assert code == 0 and document["versions_added"] == 0 and document["files_stored"] == 0
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    capture_again(collection, 4)
    code, document = export(collection.root, out, "--url", collection.essay_url)
    assert code == 0, document
    assert document["versions_added"] == 1
    assert [(o["id"], o["added"]) for o in document["objects"]] == [(collection.essay_url, ["v4"])]
    after = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    obj = out / object_path(collection.essay_url)
    changed = {p for p in before if after.get(p) != before[p]}
    assert changed == {obj / "inventory.json", obj / "inventory.json.sha512"}  # v1..v3 untouched
    assert validate(out) == []
    newest = collection.bags_of(collection.essay_url)[-1]
    assert inventory(out, collection.essay_url)["versions"]["v4"]["message"] == newest
    assert checkout(out, collection.essay_url, "v4") == bag_files(collection.root / newest)


def test_an_update_cut_short_is_finished_by_the_next_export(collection, tmp_path) -> None:
    out = tmp_path / "ocfl"
    assert export(collection.root, out, "--all")[0] == 0
    capture_again(collection, 4)
    assert export(collection.root, out, "--all")[0] == 0
    obj = out / object_path(collection.essay_url)
    # The state a crash leaves between renaming v4 into place and replacing the root inventory:
    for name in ("inventory.json", "inventory.json.sha512"):
        shutil.copy(obj / "v3" / name, obj / name)
    assert validate(out) != []  # ocfl-py sees the half-done update (control)
    (out / ".tmp-ocfl-crashed").mkdir()   # and what a crash leaves while building
    (out / ".tmp-ocfl-crashed" / "half.bin").write_bytes(b"x")
    assert validate(out) != []
    code, document = export(collection.root, out, "--all")
    assert code == 0 and document["versions_added"] == 0, document
    assert [o["recovered"] for o in document["objects"] if o["id"] == collection.essay_url] == [True]
    assert not (out / ".tmp-ocfl-crashed").exists()
    assert validate(out) == []
    assert inventory(out, collection.essay_url)["head"] == "v4"


def test_a_damaged_capture_is_refused_and_later_ones_wait(collection, tmp_path) -> None:
    out = tmp_path / "ocfl"
    second = collection.bags_of(collection.essay_url)[1]
    text = collection.root / second / "data" / "text.txt"
    text.write_bytes(text.read_bytes().replace(b"draft 2", b"draft X"))
    code, document = export(collection.root, out, "--all")
    assert code == 1
    assert [(p["code"], p["path"]) for p in document["problems"]] == [("checksum-mismatch", second)]
    assert inventory(out, collection.essay_url)["head"] == "v1"
    assert validate(out) == []
    assert not [p for p in out.iterdir() if p.name.startswith(".tmp-")]


def test_the_validator_check_can_fail(collection, tmp_path) -> None:
    """Control: a version without a user is a warning, and validate() reports it."""
    out = tmp_path / "ocfl"
    assert export(collection.root, out, collection.bags_of(collection.gz_url)[0])[0] == 0
    obj = out / object_path(collection.gz_url)
    for folder in (obj, obj / "v1"):
        inv = json.loads((folder / "inventory.json").read_text())
        del inv["versions"]["v1"]["user"]
        data = json.dumps(inv, indent=2).encode()
        (folder / "inventory.json").write_bytes(data)
        (folder / "inventory.json.sha512").write_text(f"{hashlib.sha512(data).hexdigest()} inventory.json\n")
    assert any("W007b" in message for message in validate(out))


def test_out_that_is_not_an_ocfl_root_is_refused_and_left_alone(collection, tmp_path) -> None:
    out = tmp_path / "papers"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    code, document = export(collection.root, out, "--all")
    assert code == 2 and "is neither empty nor an OCFL 1.1 storage root" in document["error"]
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_object_paths_match_ocfl_py_layout_0003() -> None:
    from ocfl.layout_0003_hash_and_id_n_tuple import Layout_0003_Hash_And_Id_N_Tuple

    layout = Layout_0003_Hash_And_Id_N_Tuple()
    for identifier in ("https://example.org/essay?id=1&x=ä", "http://127.0.0.1:8080/a b/c",
                       "https://example.org/" + "long-" * 40, "file:///tmp/zine%20fair.html"):
        assert object_path(identifier) == layout.identifier_to_path(identifier)
