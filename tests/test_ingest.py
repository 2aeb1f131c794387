"""Ingest: bags made elsewhere come in verified, byte-identical, logged; invalid ones never."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import bagit
import pytest
from typer.testing import CliRunner

from archiver.cli import app
from archiver.collection.catalog import open_catalog
from archiver.collection.events import read_events
from archiver.exchange.ingest import ingest
from archiver.exchange.serialise import export_bag
from s3fixture import s3_server  # noqa: F401  (fixture)
from test_catalog import make_bag as make_capture_bag


def foreign_bag(where: Path, name: str = "partner-0001", body: bytes = b"a letter\n") -> Path:
    bag = where / name
    (bag / "sub").mkdir(parents=True)
    (bag / "letter.txt").write_bytes(body)
    (bag / "sub" / "scan.bin").write_bytes(bytes(range(256)) * 10)
    bagit.make_bag(str(bag), {"Source-Organization": "Partner Library", "External-Description": "Letters, 1921",
                              "Bagging-Date": "2026-10-01"}, checksums=["sha256"])
    return bag


def files_of(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def bags_in(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if not p.name.startswith("."))


def test_foreign_folder_is_ingested_byte_identical_logged_catalogued_and_audited(tmp_path: Path) -> None:
    bag = foreign_bag(tmp_path / "incoming")
    root = tmp_path / "bags"
    report = ingest(root, [str(bag)])
    assert [r.status for r in report.results] == ["ingested"]
    assert files_of(root / "partner-0001") == files_of(bag)
    events = [e for e in read_events(root).events if e.type == "ingestion"]
    assert len(events) == 1 and events[0].bag == "partner-0001"
    detail = events[0].detail
    assert detail["from"] == str(bag.resolve()) and detail["verifier"]["valid"] is True
    assert set(detail["digests"]) == {"tagmanifest-sha256.txt"}
    with open_catalog(root) as catalog:
        record = catalog.show("partner-0001")
    assert (record.title, record.source, record.date) == ("Letters, 1921", "Partner Library", "2026-10-01")
    result = CliRunner().invoke(app, ["audit", "--root", str(root), "--json"])
    assert result.exit_code == 0 and json.loads(result.stdout)["ok"] == ["partner-0001"]
    # the same bag again: present, nothing changed
    again = ingest(root, [str(bag)])
    assert [r.status for r in again.results] == ["present"]
    assert len([e for e in read_events(root).events if e.type == "ingestion"]) == 1


def test_invalid_bag_is_refused_and_nothing_is_added(tmp_path: Path) -> None:
    bag = foreign_bag(tmp_path / "incoming")
    (bag / "data" / "letter.txt").write_bytes(b"a lettex\n")
    root = tmp_path / "bags"
    root.mkdir()
    result = CliRunner().invoke(app, ["ingest", str(bag), "--root", str(root), "--json"])
    assert result.exit_code == 1
    document = json.loads(result.stdout)
    assert document["refused"] == 1
    assert "checksum-mismatch" in {p["code"] for p in document["results"][0]["problems"]}
    assert bags_in(root) == []
    assert not list(root.glob(".tmp-*"))
    assert [e for e in read_events(root).events if e.type == "ingestion"] == []


def test_a_different_bag_with_a_taken_name_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "bags"
    ingest(root, [str(foreign_bag(tmp_path / "a"))])
    before = files_of(root / "partner-0001")
    report = ingest(root, [str(foreign_bag(tmp_path / "b", body=b"another letter\n"))])
    assert report.results[0].status == "refused" and report.results[0].problems[0]["code"] == "name-taken"
    assert files_of(root / "partner-0001") == before


@pytest.mark.parametrize("fmt", ["tar", "tar.gz", "zip"])
def test_serialised_capture_bag_is_ingested_and_catalogued_as_a_capture(tmp_path: Path, fmt: str) -> None:
    source = tmp_path / "elsewhere"
    source.mkdir()
    bag = make_capture_bag(source, "essay-20261101T100000Z", url="https://example.org/essay", title="An Essay",
                           author="A. Writer", body="Words.", retrieved="2026-11-01T10:00:00Z")
    (tmp_path / "out").mkdir()
    archive = export_bag(bag, tmp_path / "out", fmt).archive
    root = tmp_path / "bags"
    report = ingest(root, [str(archive)])
    assert [r.status for r in report.results] == ["ingested"], report.to_dict()
    assert files_of(root / bag.name) == files_of(bag)
    event = [e for e in read_events(root).events if e.type == "ingestion"][0]
    assert event.detail["source_sha256"].startswith("sha256:")
    with open_catalog(root) as catalog:
        record = catalog.show(bag.name)
    assert (record.url, record.title, record.author) == ("https://example.org/essay", "An Essay", "A. Writer")


def test_hostile_archive_is_refused_and_nothing_written(tmp_path: Path) -> None:
    bag = foreign_bag(tmp_path / "incoming")
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        tar.add(bag, arcname="partner-0001")
        evil = tarfile.TarInfo("partner-0001/../../escaped.txt")
        evil.size = 4
        tar.addfile(evil, io.BytesIO(b"evil"))
    archive = tmp_path / "partner-0001.tar"
    archive.write_bytes(raw.getvalue())
    root = tmp_path / "c" / "bags"
    report = ingest(root, [str(archive)])
    assert report.results[0].status == "refused"
    assert "archive-entry-unsafe" in {p["code"] for p in report.results[0].problems}
    assert bags_in(root) == []
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path / "c" / "escaped.txt").exists()


def test_profile_refusal_lists_the_profile_problems(tmp_path: Path) -> None:
    bag = foreign_bag(tmp_path / "incoming")
    result = CliRunner().invoke(app, ["ingest", str(bag), "--root", str(tmp_path / "bags"), "--profile", "aptrust",
                                      "--json"])
    assert result.exit_code == 1
    codes = {p["code"] for p in json.loads(result.stdout)["results"][0]["problems"]}
    assert {"profile-serialization", "profile-manifest-required", "profile-tag-file-missing"} <= codes
    assert bags_in(tmp_path / "bags") == []


def test_verify_and_ingest_a_tar_on_s3_in_place(tmp_path: Path, s3_server) -> None:  # noqa: F811
    bag = foreign_bag(tmp_path / "incoming")
    (tmp_path / "out").mkdir()
    archive = export_bag(bag, tmp_path / "out", "tar.gz").archive
    bucket = s3_server.new_bucket()
    s3_server.client().put_object(Bucket=bucket, Key="in/partner-0001.tar.gz", Body=archive.read_bytes())
    url = f"s3://{bucket}/in/partner-0001.tar.gz"
    runner = CliRunner()
    result = runner.invoke(app, ["verify", url, "--endpoint-url", s3_server.endpoint_url, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["bags"][0]["valid"] is True
    result = runner.invoke(app, ["ingest", url, "--root", str(tmp_path / "bags"),
                                 "--endpoint-url", s3_server.endpoint_url, "--json"])
    assert result.exit_code == 0, result.output
    assert files_of(tmp_path / "bags" / "partner-0001") == files_of(bag)
