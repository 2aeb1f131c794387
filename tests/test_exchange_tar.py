"""Serialised bags: export to tar/tar.gz/zip, read back by GNU tar, bsdtar, 7-Zip and
Python; verify in place; hostile archives refused with a code naming the entry."""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import subprocess
import tarfile
import zipfile
from pathlib import Path

import bagit
import pytest
from typer.testing import CliRunner

from archiver.cli import app
from archiver.exchange.archive_reader import ArchiveGuard, verify_archive
from archiver.exchange.serialise import export_bag

FORMATS = ("tar", "tar.gz", "zip")
MTIME = 1_600_000_000


def make_bag(where: Path, name: str = "essay-1", files: dict[str, bytes] | None = None) -> Path:
    bag = where / name
    bag.mkdir(parents=True)
    for rel, content in (files or {"text.txt": b"hello\n", "sub/w\u00e9b.html": b"<p>x</p>\n"}).items():
        (bag / rel).parent.mkdir(parents=True, exist_ok=True)
        (bag / rel).write_bytes(content)
    bagit.make_bag(str(bag), {"Source-Organization": "Test U"}, checksums=["sha256", "sha512"])
    for path in [bag, *bag.rglob("*")]:
        os.utime(path, (MTIME, MTIME))
    return bag


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("fmt", FORMATS)
def test_export_round_trips_through_python_and_verifies_in_place(tmp_path: Path, fmt: str) -> None:
    bag = make_bag(tmp_path / "bags")
    before = snapshot(bag)
    result = export_bag(bag, tmp_path / "out", fmt) if (tmp_path / "out").mkdir() is None else None
    assert result.status == "exported" and result.archive.name == f"essay-1{'.' + fmt}"
    assert snapshot(bag) == before  # the original is only read
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".tmp")]
    report = verify_archive(result.archive)
    assert report.valid, report.problems
    assert (report.files, report.bytes) == (2, 15)
    extracted = tmp_path / "x"
    if fmt == "zip":
        with zipfile.ZipFile(result.archive) as z:
            names = z.namelist()
            z.extractall(extracted)
    else:
        with tarfile.open(result.archive) as t:
            names = t.getnames()
            assert all(m.mtime == MTIME for m in t.getmembers())
            assert all(m.uid == 0 and m.uname == "" for m in t.getmembers())
            t.extractall(extracted, filter="data")
    assert {n.split("/")[0] for n in names} == {"essay-1"}
    assert names[1].rstrip("/") == "essay-1/bagit.txt"  # tag files first, then data/
    assert snapshot(extracted / "essay-1") == before
    assert bagit.Bag(str(extracted / "essay-1")).is_valid()
    # stable: a second export of the same bag is byte-identical
    again = export_bag(bag, tmp_path / "out2", fmt) if (tmp_path / "out2").mkdir() is None else None
    assert again.archive.read_bytes() == result.archive.read_bytes()
    assert export_bag(bag, tmp_path / "out", fmt).status == "exists"


def _tool(*names: str) -> str:
    for name in names:
        if shutil.which(name):
            return name
    pytest.skip(f"{' / '.join(names)} not installed (apt: tar, libarchive-tools, p7zip-full)")


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("tool", ["gnutar", "bsdtar", "7z"])
def test_external_tools_read_the_archives(tmp_path: Path, fmt: str, tool: str) -> None:
    if tool == "gnutar" and fmt == "zip":
        pytest.skip("GNU tar does not read zip")
    bag = make_bag(tmp_path / "bags")
    (tmp_path / "out").mkdir()
    archive = export_bag(bag, tmp_path / "out", fmt).archive
    dest = tmp_path / "x"
    dest.mkdir()
    if tool == "gnutar":
        subprocess.run([_tool("tar"), "-xf", str(archive), "-C", str(dest)], check=True)
    elif tool == "bsdtar":
        subprocess.run([_tool("bsdtar"), "-xf", str(archive), "-C", str(dest)], check=True)
    else:
        seven = _tool("7z", "7zz")
        if fmt == "tar.gz":  # 7-Zip opens the gzip layer, then the tar inside
            subprocess.run([seven, "x", "-y", f"-o{tmp_path / 'gz'}", str(archive)], check=True,
                           capture_output=True)
            archive = next((tmp_path / "gz").iterdir())
        subprocess.run([seven, "x", "-y", f"-o{dest}", str(archive)], check=True, capture_output=True)
    assert snapshot(dest / "essay-1") == snapshot(bag)
    if tool == "gnutar":
        listing = subprocess.run(["tar", "--full-time", "-tvf", str(archive)], check=True, capture_output=True,
                                 text=True).stdout
        assert "2020-09-13 12:26:40" in listing  # MTIME kept


def test_cli_verify_archive_and_json(tmp_path: Path) -> None:
    bag = make_bag(tmp_path / "bags")
    runner = CliRunner()
    result = runner.invoke(app, ["export", str(bag), "--format", "tar.gz", "--out", str(tmp_path / "out"),
                                 "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["exported"] == 1
    archive = tmp_path / "out" / "essay-1.tar.gz"
    result = runner.invoke(app, ["verify", str(archive), "--json"])
    assert result.exit_code == 0 and json.loads(result.stdout)["bags"][0]["valid"] is True
    # a collection folder holding an archive: verify finds it too
    result = runner.invoke(app, ["verify", str(tmp_path / "out"), "--json"])
    assert [b["path"] for b in json.loads(result.stdout)["bags"]] == [str(archive)]


# ---------------------------------------------------------------------------- corrupt and hostile

def _tar_bytes(entries: list[tuple[tarfile.TarInfo, bytes | None]], gz: bool = False) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz" if gz else "w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return raw.getvalue()


def _good_entries(tmp_path: Path) -> list[tuple[tarfile.TarInfo, bytes | None]]:
    bag = make_bag(tmp_path / "src")
    entries = []
    for path in sorted([bag, *bag.rglob("*")]):
        name = "essay-1/" + str(path.relative_to(bag)) if path != bag else "essay-1"
        info = tarfile.TarInfo(name.rstrip("/."))
        if path.is_dir():
            info.type = tarfile.DIRTYPE
            entries.append((info, None))
        else:
            data = path.read_bytes()
            info.size = len(data)
            entries.append((info, data))
    return entries


def _member(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", link: str = "") -> tuple:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    return info, data if kind == tarfile.REGTYPE else None


HOSTILE = {
    "dotdot": (_member("essay-1/../../evil.txt", data=b"x"), "archive-entry-unsafe"),
    "absolute": (_member("/tmp/evil.txt", data=b"x"), "archive-entry-unsafe"),
    "symlink": (_member("essay-1/data/link", tarfile.SYMTYPE, link="/etc/passwd"), "archive-entry-link"),
    "hardlink": (_member("essay-1/data/hard", tarfile.LNKTYPE, link="essay-1/bagit.txt"), "archive-entry-link"),
    "device": (_member("essay-1/data/dev", tarfile.CHRTYPE), "archive-entry-special"),
    "fifo": (_member("essay-1/data/fifo", tarfile.FIFOTYPE), "archive-entry-special"),
    "duplicate": (_member("essay-1/data/text.txt", data=b"evil\n"), "archive-entry-duplicate"),
    "second-top": (_member("other/bagit.txt", data=b"x"), "archive-top-folder"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_tar_entries_are_problems_naming_the_entry(tmp_path: Path, case: str) -> None:
    extra, code = HOSTILE[case]
    archive = tmp_path / "essay-1.tar"
    archive.write_bytes(_tar_bytes(_good_entries(tmp_path) + [extra]))
    before = sorted(tmp_path.rglob("*"))
    report = verify_archive(archive)
    assert not report.valid
    assert (code, extra[0].name) in {(p.code, p.path) for p in report.problems}
    assert sorted(tmp_path.rglob("*")) == before  # nothing written (verify never extracts)
    assert not Path("/tmp/evil.txt").exists() and not (tmp_path.parent.parent / "evil.txt").exists()
    result = CliRunner().invoke(app, ["verify", str(archive)])
    assert result.exit_code == 1 and code in result.output


def test_truncated_archives_are_reported_not_crashes(tmp_path: Path) -> None:
    whole = _tar_bytes(_good_entries(tmp_path), gz=True)
    archive = tmp_path / "essay-1.tar.gz"
    archive.write_bytes(whole[: len(whole) // 2])
    report = verify_archive(archive)
    assert not report.valid and "archive-truncated" in {p.code for p in report.problems}
    zipped = tmp_path / "z" / "essay-1.zip"
    zipped.parent.mkdir()
    export_bag(make_bag(tmp_path / "zb"), zipped.parent, "zip")
    data = zipped.read_bytes()
    zipped.write_bytes(data[:-30])  # end of central directory cut off
    report = verify_archive(zipped)
    assert not report.valid and {p.code for p in report.problems} & {"archive-unreadable", "archive-truncated"}


def test_a_changed_payload_byte_is_a_checksum_mismatch(tmp_path: Path) -> None:
    entries = _good_entries(tmp_path)
    for info, data in entries:
        if info.name == "essay-1/data/text.txt":
            entries[entries.index((info, data))] = (info, b"jello\n")
    archive = tmp_path / "essay-1.tar"
    archive.write_bytes(_tar_bytes(entries))
    report = verify_archive(archive)
    codes = {(p.code, p.path) for p in report.problems}
    assert ("checksum-mismatch", "data/text.txt") in codes


def test_manifests_after_the_payload_still_verify(tmp_path: Path) -> None:
    entries = _good_entries(tmp_path)
    entries.sort(key=lambda e: (not e[0].name.startswith("essay-1/data"), e[0].name))
    archive = tmp_path / "essay-1.tar.gz"
    archive.write_bytes(_tar_bytes(entries, gz=True))
    assert verify_archive(archive).valid


def test_decompression_bomb_is_a_resource_guard_not_a_verdict(tmp_path: Path) -> None:
    bomb = tmp_path / "essay-1.tar.gz"
    with gzip.open(bomb, "wb") as gz, tarfile.open(fileobj=gz, mode="w") as tar:
        for info, data in _good_entries(tmp_path):
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
        info = tarfile.TarInfo("essay-1/data/zeros")
        info.size = 8 * 1024 * 1024
        tar.addfile(info, io.BytesIO(bytes(info.size)))
    assert bomb.stat().st_size < 64 * 1024
    with pytest.raises(ArchiveGuard, match="archive-bomb.*essay-1/data/zeros"):
        verify_archive(bomb, bomb_floor=1024 * 1024, max_ratio=100)
    result = CliRunner().invoke(app, ["verify", str(bomb)])
    assert result.exit_code == 1  # default guards let 8 MiB of zeros through: a real verdict (unlisted file)


def test_cli_reports_a_tripped_guard_as_could_not_verify(tmp_path: Path, monkeypatch) -> None:
    import functools

    import archiver.exchange.check as check
    from archiver.exchange.archive_reader import scan_archive

    monkeypatch.setattr(check, "scan_archive", functools.partial(scan_archive, bomb_floor=1, max_ratio=0.5))
    archive = tmp_path / "essay-1.tar.gz"
    archive.write_bytes(_tar_bytes(_good_entries(tmp_path), gz=True))
    result = CliRunner().invoke(app, ["verify", str(archive), "--json"])
    assert result.exit_code == 3
    document = json.loads(result.stdout)
    assert document["bags"] == [] and "archive-bomb" in document["errors"][0]["error"]


def test_export_refuses_a_symlink_in_the_bag(tmp_path: Path) -> None:
    bag = make_bag(tmp_path / "bags")
    (bag / "data" / "link").symlink_to("/etc/passwd")
    (tmp_path / "out").mkdir()
    from archiver.errors import StorageError
    with pytest.raises(StorageError, match="not a regular file"):
        export_bag(bag, tmp_path / "out", "tar")
    assert list((tmp_path / "out").iterdir()) == []


# ---------------------------------------------------------------------------- derived bags for a profile

def test_export_with_aptrust_profile_makes_a_derived_bag(tmp_path: Path) -> None:
    from test_catalog import make_bag as make_capture_bag

    root = tmp_path / "bags"
    root.mkdir()
    bag = make_capture_bag(root, "essay-20261101T100000Z", url="https://example.org/e", title="An  Essay",
                           author=None, body="Words.", retrieved="2026-11-01T10:00:00Z")
    before = snapshot(bag)
    runner = CliRunner()
    out = tmp_path / "out"
    refused = runner.invoke(app, ["export", bag.name, "--root", str(root), "--format", "tar", "--out", str(out),
                                  "--profile", "aptrust"])
    assert refused.exit_code == 2
    assert "Access (one of Consortia, Institution, Restricted)" in refused.output
    assert "Storage-Option" in refused.output and "Title" not in refused.output.split("needs")[1]
    assert not out.exists() or list(out.iterdir()) == []
    wrong_format = runner.invoke(app, ["export", bag.name, "--root", str(root), "--format", "zip", "--out",
                                       str(out), "--profile", "aptrust", "--tag", "Access=Institution",
                                       "--tag", "Storage-Option=Standard"])
    assert wrong_format.exit_code == 2 and "application/tar" in wrong_format.output
    result = runner.invoke(app, ["export", bag.name, "--root", str(root), "--format", "tar", "--out", str(out),
                                 "--profile", "aptrust", "--tag", "Access=Institution",
                                 "--tag", "Storage-Option=Standard", "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)["results"][0]
    assert document["derived_from"] == bag.name
    archive = out / f"{bag.name}-aptrust.tar"
    assert document["archive"] == str(archive)
    assert snapshot(bag) == before  # the original is never changed
    checked = runner.invoke(app, ["verify", str(archive), "--profile", "aptrust", "--json"])
    assert checked.exit_code == 0, checked.output
    with tarfile.open(archive) as tar:
        top = f"{bag.name}-aptrust"
        info = tar.extractfile(f"{top}/bag-info.txt").read().decode()
        aptrust = tar.extractfile(f"{top}/aptrust-info.txt").read().decode()
        names = tar.getnames()
        payload = tar.extractfile(f"{top}/data/text.txt").read()
    assert f"Derived-From-Bag: {bag.name}\n" in info and "Derived-From-Tagmanifest: tagmanifest-sha256.txt" in info
    assert aptrust == "Title: An Essay\nAccess: Institution\nStorage-Option: Standard\n"
    assert f"{top}/manifest-md5.txt" in names and f"{top}/manifest-sha256.txt" in names
    assert payload == (bag / "data" / "text.txt").read_bytes()
    # the plain original fails the profile, with the reasons
    plain = export_bag(bag, out, "tar").archive
    failed = runner.invoke(app, ["verify", str(plain), "--profile", "aptrust", "--json"])
    assert failed.exit_code == 1
    codes = {p["code"] for p in json.loads(failed.stdout)["bags"][0]["problems"]}
    assert codes == {"profile-manifest-required", "profile-tag-file-missing", "profile-tag-missing"}


def test_export_other_formats_say_not_available_when_absent(tmp_path: Path, monkeypatch) -> None:
    import sys

    for fmt in ("wacz", "ocfl"):
        monkeypatch.setitem(sys.modules, f"archiver.exchange.{fmt}", None)  # import fails: module absent
        result = CliRunner().invoke(app, ["export", "--all", "--root", str(tmp_path), "--format", fmt,
                                          "--out", str(tmp_path / "o")])
        assert result.exit_code == 2 and "format not available" in result.output


def test_wacz_and_ocfl_formats_are_dispatched_with_the_documented_arguments(tmp_path: Path, monkeypatch) -> None:
    """A stand-in module records the call (the real exporters are another part of issue 12)."""
    import sys
    import types

    calls = []

    class Report:
        ok = True

        def to_dict(self) -> dict:
            return {"ok": True}

    root = tmp_path / "bags"
    make_bag(root, "essay-1")
    for fmt in ("wacz", "ocfl"):
        module = types.ModuleType(f"archiver.exchange.{fmt}")
        setattr(module, f"export_{fmt}", lambda *args: calls.append(args) or Report())
        monkeypatch.setitem(sys.modules, f"archiver.exchange.{fmt}", module)
        result = CliRunner().invoke(app, ["export", "--all", "--root", str(root), "--format", fmt, "--url", "https://x/",
                                          "--out", str(tmp_path / fmt), "--json"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout) == {"ok": True}
    assert [c[:4] for c in calls] == [(root, [str((root / "essay-1").resolve())], ["https://x/"], tmp_path / f)
                                      for f in ("wacz", "ocfl")]


def test_memory_follows_the_number_of_files_not_their_size(tmp_path: Path) -> None:
    """A 48 MB payload file is hashed chunk by chunk: the pass's Python allocations
    stay a few MB (the 1 MiB read buffers and hashing queues), never the file."""
    import tracemalloc

    big = 48 * 1024 * 1024
    bag = make_bag(tmp_path / "bags", files={"big.bin": b"\0" * big, "small.txt": b"x\n"})
    (tmp_path / "out").mkdir()
    archive = export_bag(bag, tmp_path / "out", "tar.gz").archive
    tracemalloc.start()
    try:
        report = verify_archive(archive)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report.valid and report.bytes == big + 2
    assert peak < 16 * 1024 * 1024, peak
