"""Collections that hold serialised bags: audit verifies them, mirror copies them as files."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from archiver.cli import app
from archiver.exchange.archive_reader import verify_archive
from archiver.exchange.check import s3_archive
from archiver.exchange.serialise import export_bag
from s3fixture import s3_server  # noqa: F401  (fixture)
from test_exchange_tar import make_bag


def collection(tmp_path: Path) -> Path:
    root = tmp_path / "bags"
    make_bag(root, "folder-bag")
    export_bag(make_bag(tmp_path / "src", "essay-1"), root, "tar.gz")
    export_bag(make_bag(tmp_path / "src", "essay-2"), root, "zip")
    return root


def test_audit_verifies_serialised_bags_and_finds_a_damaged_one(tmp_path: Path) -> None:
    root = collection(tmp_path)
    runner = CliRunner()
    result = runner.invoke(app, ["audit", "--root", str(root), "--json"])
    assert result.exit_code == 0, result.output
    assert sorted(json.loads(result.stdout)["ok"]) == ["essay-1.tar.gz", "essay-2.zip", "folder-bag"]
    data = (root / "essay-1.tar.gz").read_bytes()
    (root / "essay-1.tar.gz").write_bytes(data[: len(data) - 40])  # its end lost
    result = runner.invoke(app, ["audit", "--root", str(root), "--max-age", "0s", "--json"])
    assert result.exit_code == 1
    assert [f["bag"] for f in json.loads(result.stdout)["failed"]] == ["essay-1.tar.gz"]


def test_mirror_copies_archives_as_files_verified_and_rerun_is_present(tmp_path: Path) -> None:
    root = collection(tmp_path)
    target = tmp_path / "mirror"
    runner = CliRunner()
    result = runner.invoke(app, ["mirror", str(root), str(target), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["mirrored"] == 3
    for name in ("essay-1.tar.gz", "essay-2.zip"):
        assert (target / name).read_bytes() == (root / name).read_bytes()
        assert verify_archive(target / name).valid
    result = runner.invoke(app, ["mirror", str(root), str(target), "--json"])
    assert json.loads(result.stdout)["present"] == 3
    assert not list(target.glob(".tmp-*"))


def test_mirror_to_s3_then_the_archive_verifies_in_place(tmp_path: Path, s3_server) -> None:  # noqa: F811
    root = collection(tmp_path)
    bucket = s3_server.new_bucket()
    result = CliRunner().invoke(app, ["mirror", str(root), f"s3://{bucket}/texts",
                                      "--endpoint-url", s3_server.endpoint_url, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["mirrored"] == 3
    report = verify_archive(s3_archive(f"s3://{bucket}/texts/essay-1.tar.gz", client=s3_server.client()))
    assert report.valid and report.files == 2
