"""One S3 collection through every verb, end to end, as a library would use it:
captured by ``snapshot`` (the writer, ``collection/s3store.py``), read by the
catalogue verbs (``collection/s3root.py``), audited by reading and with the
server's checksums (``replication/server_fixity.py``), mirrored to a folder,
damaged on the server and repaired from the mirror. The parts are tested on
their own elsewhere; this test shows they agree with each other (the marker
the writer publishes is what the readers look for, the events the writer
logs are what the catalogue and the audit plan from)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from archiver.cli import app
from archiver.replication import make_client
from s3fixture import s3_server, seaweedfs  # noqa: F401  (fixtures)

PAGE = """<!doctype html><html><head><title>{title}</title></head><body>
<article><h1>{title}</h1><p>{body}</p><p>A second paragraph, so the extractor keeps the article.</p>
</article><footer>site footer</footer></body></html>"""


def page(folder: Path, name: str, title: str, words: str) -> str:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(PAGE.format(title=title, body=(words + " ") * 30), encoding="utf-8")
    return str(path)


def run(endpoint: str, *args: str, code: int = 0) -> dict:
    result = CliRunner().invoke(app, [*args, "--endpoint-url", endpoint, "--json"])
    assert result.exit_code == code, result.output
    return json.loads(result.stdout)


def captures_of(endpoint: str, url: str, root: str) -> int:
    history = run(endpoint, "history", url, "--root", root)["history"]
    return sum(1 for entry in history if entry["kind"] == "capture")


def flow(endpoint: str, bucket: str, tmp_path: Path, server_checks: bool) -> None:
    root = f"s3://{bucket}/library/texts"
    pages = tmp_path / "pages"
    first = page(pages, "mutual-aid.html", "Mutual Aid", "cooperation among animals")
    second = page(pages, "fields.html", "Fields, Factories and Workshops", "integrated labour")
    captured = run(endpoint, "snapshot", first, second, "--root", root)
    names = sorted(s["bag"] for s in captured["sources"])
    assert [s["outcome"] for s in captured["sources"]] == ["captured", "captured"]

    # the catalogue verbs see exactly what the writer published
    listed = run(endpoint, "list", "--root", root)
    assert sorted(b["name"] for b in listed["bags"]) == names
    hits = run(endpoint, "search", "cooperation", "--root", root)
    assert [h["name"] for h in hits["results"]] == [n for n in names if n.startswith("mutual-aid")]
    url = Path(first).resolve().as_uri()
    page(pages, "mutual-aid.html", "Mutual Aid", "cooperation among animals and among people")
    again = run(endpoint, "snapshot", first, "--root", root)
    assert again["sources"][0]["outcome"] == "captured"
    assert captures_of(endpoint, url, root) == 2
    assert run(endpoint, "show", url, "--root", root)["name"] == again["sources"][0]["bag"]
    assert run(endpoint, "verify", root)["incomplete"] == []

    # fixity with the server's checksums: labelled server-attested, never "verified"
    attested = run(endpoint, "audit", "--root", root, "--server-checksums")
    assert attested["method"] == "server-attested" and attested["checked"] == 3
    if server_checks:  # SeaweedFS refuses a wrong SHA-256, so its stored values are used
        assert attested["server"]["checks_checksums"] is True
        assert len(attested["server_attested"]) == 3 and attested["attested"] > 0
    else:  # moto stores whatever it is sent: nothing is attested, every file is read
        assert attested["server"]["checks_checksums"] is False
        assert attested["server_attested"] == [] and len(attested["verified_by_reading"]) == 3

    # mirror to a folder, damage one object on the server, the audit finds it, repair mends it
    copy = tmp_path / "copy"
    assert run(endpoint, "mirror", root, str(copy))["mirrored"] == 3
    victim = names[0]
    client = make_client(endpoint)
    key = f"library/texts/{victim}/data/text.txt"
    client.put_object(Bucket=bucket, Key=key, Body=b"silently changed on the server\n")
    audited = run(endpoint, "audit", "--root", root, "--max-age", "0s", code=1)
    assert [f["bag"] for f in audited["failed"]] == [victim]
    repaired = run(endpoint, "repair", root, "--from", str(copy))
    assert [r["bag"] for r in repaired["results"] if r["status"] == "repaired"] == [victim]
    clean = run(endpoint, "audit", "--root", root, "--max-age", "0s")
    assert clean["failed"] == [] and clean["checked"] == 3
    assert captures_of(endpoint, url, root) == 2  # repair and audits add events, never captures


def test_one_s3_collection_through_every_verb_on_moto(s3_server, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    flow(s3_server.endpoint_url, s3_server.new_bucket(), tmp_path, server_checks=False)


@pytest.mark.seaweedfs
@pytest.mark.slow
def test_one_s3_collection_through_every_verb_on_seaweedfs(seaweedfs, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    flow(seaweedfs, "archiver-mirror", tmp_path, server_checks=True)
