"""Bad local input, through the real CLI: manifests (exit 2, file and line,
nothing fetched), verify/mirror/repair targets that do not exist or cannot be
read (exit 3 with the reason), collection roots that are not directories or
not writable (exit 3 before any fetch).

Simulating "cannot be read" and "not writable": the tests may run as root,
for whom permission bits do not stop reading or writing. So an unreadable
folder is a folder chmod 000 when we are not root, and otherwise
``/proc/1/map_files`` (listing it needs CAP_SYS_ADMIN, which a container's
root lacks); a not-writable root is a chmod 555 folder when not root, and
otherwise ``/proc/sys`` (read-only even for root in containers). A test skips
only when neither trick works on the machine it runs on.
"""

from __future__ import annotations

import json
import os
import random
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from archiver.cli import app
from archiver.collection.root import list_bag_dirs
from s3fixture import make_bags, s3_server  # noqa: F401 (fixture)

runner = CliRunner()
REPO = Path(__file__).resolve().parent.parent

PAGE = ("<html><head><title>T</title></head><body><article><p>A paragraph long enough to be "
        "extracted as the body of a page.</p></article></body></html>")


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout + result.stderr


def is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


@pytest.fixture
def unreadable_dir(tmp_path: Path):
    """A folder this process cannot list (see the module docstring)."""
    if not is_root():
        folder = tmp_path / "locked"
        folder.mkdir()
        folder.chmod(0)
        yield folder
        folder.chmod(0o755)
        return
    candidate = Path("/proc/1/map_files")
    try:
        os.listdir(candidate)
    except PermissionError:
        yield candidate
        return
    except OSError:
        pass
    pytest.skip("no folder is unreadable to this process (root with CAP_SYS_ADMIN)")


@pytest.fixture
def unwritable_dir(tmp_path: Path):
    """An existing folder this process cannot write in (see the module docstring)."""
    if not is_root():
        folder = tmp_path / "readonly"
        folder.mkdir()
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    candidate = Path("/proc/sys")
    if candidate.is_dir() and not os.access(candidate, os.W_OK):
        yield candidate
        return
    pytest.skip("no folder is read-only to this process (root with a writable /proc/sys)")


# -- collection manifests: exit 2, file and line, nothing fetched -------------------------------

MANIFESTS = {
    # name: (content, expected message, expected line)
    "toml-syntax-error": ("[collection]\nid = 'x'\n\n[[sources]\nurl = '{url}'\n",
                          "TOML syntax error", 4),
    "missing-collection-id": ("[collection]\ntitle = 'x'\n\n[[sources]]\nurl = '{url}'\n",
                              "[collection] is missing 'id'", 1),
    "missing-source-url": ("[collection]\nid = 'x'\n\n[[sources]]\nurl = '{url}'\n\n[[sources]]\nnote = 'n'\n",
                           "source #2 is missing 'url'", 7),
    "unknown-collection-key": ("[collection]\nid = 'x'\ncolour = 'red'\n\n[[sources]]\nurl = '{url}'\n",
                               "unknown key 'colour' in [collection]", 3),
    "unknown-source-key": ("[collection]\nid = 'x'\n\n[[sources]]\nurl = '{url}'\nweight = 3\n",
                           "unknown key 'weight' in source #1", 6),
    "unknown-table": ("[collection]\nid = 'x'\n\n[[sources]]\nurl = '{url}'\n\n[extras]\nx = 1\n",
                      "unknown key 'extras'", 7),
    "missing-source-path": ("[collection]\nid = 'x'\n\n[[sources]]\nurl = '{url}'\n\n[[sources]]\n"
                            "url = 'pages/not-there.html'\n", "source file does not exist", 7),
}


@pytest.mark.parametrize("name", sorted(MANIFESTS))
def test_bad_manifest_exit_2_with_file_and_line_and_nothing_fetched(name, tmp_path, http_server) -> None:
    content, message, line = MANIFESTS[name]
    url = http_server.add("/page", PAGE)
    manifest = tmp_path / "collection.toml"
    manifest.write_text(content.format(url=url))
    root = tmp_path / "bags"
    code, output = run("snapshot", "--manifest", str(manifest), "--root", str(root), "--delay", "0",
                       http_server.add("/other", PAGE))
    assert code == 2, output
    lines = [x for x in output.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("archiver: error: "), output
    assert message in lines[0]
    # The file and the line: "FILE:LINE: ..." or, for TOML syntax, "FILE: ... (at line LINE, ...)".
    assert f"{manifest}:{line}: " in lines[0] or (
        f"{manifest}: " in lines[0] and f"(at line {line}," in lines[0]), lines[0]
    assert http_server.requests == [], "nothing is fetched from a manifest that does not load"
    assert not root.exists(), "not even the collection root is created"


# -- verify / mirror / repair targets that do not exist or cannot be read: exit 3 ----------------------

@pytest.fixture
def collection(tmp_path: Path) -> Path:
    root = tmp_path / "bags"
    make_bags(root, 2)
    return root


def missing_target_commands(collection: Path, missing: Path, tmp_path: Path) -> dict[str, list[str]]:
    return {
        "verify": ["verify", str(missing)],
        "verify-json": ["verify", str(missing), "--json"],
        "mirror-root": ["mirror", str(missing), str(tmp_path / "copy")],
        "repair-target": ["repair", str(missing), "--from", str(collection)],
        "repair-from": ["repair", str(collection), "--from", str(missing)],
    }


@pytest.mark.parametrize("command", ["verify", "verify-json", "mirror-root", "repair-target", "repair-from"])
def test_missing_target_is_exit_3_with_the_reason(command, collection, tmp_path) -> None:
    missing = tmp_path / "no-such-folder"
    before = {p.name for p in collection.iterdir()}
    code, output = run(*missing_target_commands(collection, missing, tmp_path)[command])
    assert code == 3, output
    assert str(missing) in output
    assert "does not exist" in output or "not a directory" in output
    assert {p.name for p in collection.iterdir()} == before, "the good collection is untouched"
    assert not (tmp_path / "copy").exists()


@pytest.mark.parametrize("command", ["verify", "mirror-root", "repair-target", "repair-from"])
def test_unreadable_target_is_exit_3_with_the_reason(command, collection, tmp_path, unreadable_dir) -> None:
    code, output = run(*missing_target_commands(collection, unreadable_dir, tmp_path)[command])
    assert "Traceback" not in output
    assert code == 3, output
    assert str(unreadable_dir) in output and "Permission denied" in output, output


def test_s3_locations_that_do_not_exist_or_cannot_be_reached_are_exit_3(collection, s3_server) -> None:
    endpoint = ("--endpoint-url", s3_server.endpoint_url)
    empty_bucket = s3_server.new_bucket()
    cases = [
        (["verify", "s3://no-such-bucket/texts", *endpoint], "no-such-bucket"),
        (["verify", f"s3://{empty_bucket}/nothing-here", *endpoint], f"no bag at or under s3://{empty_bucket}"),
        (["verify", f"s3://{empty_bucket}/x", "--endpoint-url", "http://127.0.0.1:1"], "Could not connect"),
        (["mirror", str(collection), "s3://no-such-bucket/texts", *endpoint], "no-such-bucket"),
        (["repair", "s3://no-such-bucket/texts", "--from", str(collection), *endpoint], "no-such-bucket"),
        (["repair", str(collection), "--from", "s3://no-such-bucket/texts", *endpoint], "no-such-bucket"),
    ]
    for args, reason in cases:
        code, output = run(*args)
        assert code == 3 and "Traceback" not in output, (args, output)
        assert reason in output, (args, output)


def test_mirror_to_a_target_that_cannot_be_written_is_exit_3(collection, tmp_path) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("x")
    for target in (a_file, a_file / "below"):
        code, output = run("mirror", str(collection), str(target))
        assert code == 3, output
        assert str(target) in output and ("cannot be" in output or "does not exist" in output or
                                          "not a directory" in output.lower()), output


# -- collection root: not a directory, not writable → exit 3 before any fetch -----------------------------

def snapshot_into(root: Path, http_server) -> tuple[int, str]:
    return run("snapshot", http_server.add("/page", PAGE), "--root", str(root), "--delay", "0")


def test_root_that_is_a_file_is_exit_3_before_any_fetch(tmp_path, http_server) -> None:
    a_file = tmp_path / "bags"
    a_file.write_text("not a folder")
    code, output = snapshot_into(a_file, http_server)
    assert code == 3 and f"collection root {a_file} is not a directory" in output, output
    assert http_server.requests == []
    assert a_file.read_text() == "not a folder"


def test_root_below_a_file_is_exit_3_before_any_fetch(tmp_path, http_server) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("x")
    code, output = snapshot_into(a_file / "bags", http_server)
    assert code == 3 and f"cannot create collection root {a_file / 'bags'}" in output, output
    assert http_server.requests == []


def test_root_that_is_not_writable_is_exit_3_before_any_fetch(unwritable_dir, http_server) -> None:
    before = sorted(os.listdir(unwritable_dir))
    code, output = snapshot_into(unwritable_dir, http_server)
    assert code == 3 and f"collection root {unwritable_dir} is not writable" in output, output
    assert http_server.requests == []
    assert sorted(os.listdir(unwritable_dir)) == before


def test_every_catalogue_verb_on_a_missing_root_is_exit_3(tmp_path) -> None:
    missing = tmp_path / "nowhere"
    for args in (["list"], ["search", "word"], ["show", "x"], ["history", "https://e.org/"],
                 ["catalog", "rebuild"], ["rebuild", "--all"], ["audit"]):
        code, output = run(*args, "--root", str(missing))
        assert code == 3, (args, output)
        assert str(missing) in output, (args, output)
        assert not missing.exists(), f"{args} created the root it was asked to read"


def test_absent_root_is_created_with_its_parents(tmp_path, http_server) -> None:
    root = tmp_path / "absent" / "bags"
    code, output = snapshot_into(root, http_server)
    assert code == 0, output
    assert len(list_bag_dirs(root)) == 1 and (root / ".archiver" / "events.jsonl").is_file()


def test_bag_folders_get_the_permissions_mkdir_gives(tmp_path, http_server) -> None:
    """Bags are built in a temporary folder and renamed: the bag must not keep a temporary
    folder's private 0700 mode, or colleagues and mirror jobs running as other users
    (same group, umask permitting) could not read the collection."""
    root = tmp_path / "bags"
    code, output = snapshot_into(root, http_server)
    assert code == 0, output
    probe = root / "probe"
    probe.mkdir()
    expected = probe.stat().st_mode & 0o777
    [bag] = list_bag_dirs(root)
    for folder in (bag, bag / "data"):
        assert folder.stat().st_mode & 0o777 == expected, f"{folder}: {oct(folder.stat().st_mode & 0o777)}"


def test_a_write_that_fails_mid_bag_leaves_nothing_and_the_batch_goes_on(tmp_path, http_server) -> None:
    """A full disk, simulated with RLIMIT_FSIZE (writes past 200 kB fail with EFBIG): the bag
    being written is abandoned whole, with the reason; the next source is still bagged."""
    rng = random.Random(7)
    words = " ".join("".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9)))
                     for _ in range(40_000))  # incompressible enough to pass 200 kB as a WARC
    big = http_server.add("/big", f"<html><head><title>Big</title></head><body><article><p>{words}</p>"
                                  "</article></body></html>")
    small = http_server.add("/small", PAGE)
    root = tmp_path / "bags"

    def small_disk() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))

    proc = subprocess.run([sys.executable, "-m", "archiver.cli", "snapshot", big, small, "--root", str(root),
                           "--delay", "0", "--json"], capture_output=True, text=True, timeout=60,
                          preexec_fn=small_disk, cwd=REPO)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 3, proc.stdout
    outcomes = {s["source"]: s for s in json.loads(proc.stdout)["sources"]}
    assert outcomes[big]["outcome"] == "failed" and "File too large" in outcomes[big]["reason"]
    assert outcomes[small]["outcome"] == "captured"
    assert [b.name for b in list_bag_dirs(root)] == [outcomes[small]["bag"]]
    assert sorted(p.name for p in root.iterdir()) == sorted([".archiver", outcomes[small]["bag"]])


# --- roots and path options are local paths -----------------------------------------------
# (snapshot and sync write to s3:// roots: tests/test_s3_collection_write.py; the reader verbs
# read them: tests/test_s3root.py)
@pytest.mark.parametrize("verb", [["rebuild", "--all"]])
def test_s3_root_is_a_usage_error_not_a_local_folder_named_s3(tmp_path: Path, monkeypatch, verb) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "page.html").write_text(PAGE)
    result = runner.invoke(app, [*verb, "--root", "s3://lib/col", "--json"])
    assert result.exit_code == 2, result.output
    assert "S3 roots are not supported yet" in result.stderr
    assert json.loads(result.stdout)["exit_code"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["page.html"]  # no "s3:" folder


@pytest.mark.parametrize("verb", [["list"], ["audit"], ["catalog", "rebuild"], ["search", "x"], ["show", "x"],
                                  ["history", "https://example.org/x"]])
def test_an_s3_root_is_read_from_s3_never_a_local_folder_named_s3(tmp_path: Path, monkeypatch, verb) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    (tmp_path / "page.html").write_text(PAGE)
    result = runner.invoke(app, [*verb, "--root", "s3://lib/col", "--endpoint-url", "http://127.0.0.1:9",
                                 "--json"])
    assert result.exit_code == 3, result.output  # nothing listens there: could not run
    assert json.loads(result.stdout)["exit_code"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["page.html"]  # no "s3:" folder, no cache
    code, output = run(*verb, "--root", "sftp://host/col")
    assert code == 2 and "sftp:// locations are not supported" in output, output


@pytest.mark.parametrize("given", ["sftp://host/col", "file:///tmp/col", "https://example.org/col"])
def test_root_naming_any_url_scheme_is_a_usage_error(tmp_path: Path, monkeypatch, given: str) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "page.html").write_text(PAGE)
    code, output = run("snapshot", "page.html", "--root", given)
    assert code == 2 and "takes a local path" in output, output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["page.html"]


def test_root_from_the_environment_is_checked_too(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ARCHIVER_ROOT", "s3://lib/col")
    code, output = run("rebuild", "--all")
    assert code == 2 and "S3 roots are not supported yet" in output
    monkeypatch.setenv("ARCHIVER_ROOT", "sftp://lib/col")
    code, output = run("list")
    assert code == 2 and "sftp:// locations are not supported" in output


def test_mirror_or_repair_to_an_unknown_scheme_is_a_usage_error(tmp_path: Path) -> None:
    root = tmp_path / "bags"
    assert run("snapshot", str(write_page(tmp_path)), "--root", str(root))[0] == 0
    for args in (["mirror", str(root), "sftp://127.0.0.1:9/x"], ["repair", "sftp://127.0.0.1:9/x", "--from", str(root)],
                 ["verify", "gs://bucket/x"]):
        code, output = run(*args)
        assert code == 2, output
        assert f"{args[-1].split(':')[0] if args[0] == 'verify' else 'sftp'}:// locations are not supported" in output


def write_page(folder: Path) -> Path:
    page = folder / "page.html"
    page.write_text(PAGE)
    return page


# --- the event log's torn lines are warned about --------------------------------------------
@pytest.mark.parametrize("verb", ["audit", "list"])
def test_torn_event_line_is_a_warning_in_text_and_json(tmp_path: Path, verb: str) -> None:
    root = tmp_path / "bags"
    assert run("snapshot", str(write_page(tmp_path)), "--root", str(root))[0] == 0
    log = root / ".archiver" / "events.jsonl"
    with log.open("ab") as f:
        f.write(b'{"id": "torn", "type": "capt')
    torn_line = len(log.read_bytes().split(b"\n"))
    result = runner.invoke(app, [verb, "--root", str(root)])
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if line.startswith("archiver: warning:")]
    assert len(warnings) == 1 and f"line {torn_line}" in warnings[0], result.stderr
    result = runner.invoke(app, [verb, "--root", str(root), "--json"])
    document = json.loads(result.stdout)
    [warning] = document["warnings"]
    assert warning["code"] == "event-log-torn-line" and warning["lines"] == [torn_line]


@pytest.mark.parametrize("verb", ["audit", "list"])
def test_whole_event_log_gives_no_warning(tmp_path: Path, verb: str) -> None:
    root = tmp_path / "bags"
    assert run("snapshot", str(write_page(tmp_path)), "--root", str(root))[0] == 0
    result = runner.invoke(app, [verb, "--root", str(root), "--json"])
    assert json.loads(result.stdout)["warnings"] == [] and "warning" not in result.stderr


# --- search without a hit says so -------------------------------------------------------------
def test_search_without_a_hit_says_so_and_exits_0(tmp_path: Path) -> None:
    root = tmp_path / "bags"
    assert run("snapshot", str(write_page(tmp_path)), "--root", str(root))[0] == 0
    result = runner.invoke(app, ["search", "zyzzyva", "--root", str(root)])
    assert result.exit_code == 0 and "no match for 'zyzzyva'" in result.stdout, result.output
    result = runner.invoke(app, ["search", "zyzzyva", "--root", str(root), "--json"])
    document = json.loads(result.stdout)
    assert result.exit_code == 0 and document["count"] == 0 and document["results"] == []
    result = runner.invoke(app, ["search", "paragraph", "--root", str(root)])
    assert result.exit_code == 0 and "no match" not in result.stdout and "T" in result.stdout


def test_extract_url_with_credentials_is_refused(tmp_path: Path) -> None:
    result = runner.invoke(app, ["extract", str(write_page(tmp_path)), "--url", "https://u:pw-s3cr3t@example.org/x",
                                 "--json"])
    assert result.exit_code == 2 and "pw-s3cr3t" not in result.output
    assert json.loads(result.stdout)["exit_code"] == 2


@pytest.mark.parametrize("as_json", [False, True])
def test_a_url_with_credentials_given_to_ingest_is_never_printed(tmp_path: Path, as_json: bool) -> None:
    """Found by the CLI fuzz test: ``ingest`` echoed a source it could not find,
    password and all. Every value the CLI prints is redacted (``one_line``, ``emit_json``)."""
    args = ["ingest", "http://u:pw-s3cr3t@127.0.0.1:9/private", "--root", str(tmp_path / "bags")]
    result = runner.invoke(app, args + (["--json"] if as_json else []))
    assert result.exit_code in (1, 2, 3), result.output
    assert "pw-s3cr3t" not in result.stdout and "pw-s3cr3t" not in result.stderr
    assert "***@127.0.0.1:9" in result.stdout + result.stderr  # the source is still named
    if as_json:
        json.loads(result.stdout)


@pytest.mark.parametrize("verb", ["snapshot", "discover"])
@pytest.mark.parametrize("agent", ["\u0100", "two\nlines"])
def test_a_user_agent_that_cannot_be_a_header_is_a_usage_error(tmp_path: Path, verb: str, agent: str) -> None:
    """Found by the CLI fuzz test: a User-Agent outside Latin-1 was an internal error."""
    args = [verb, "http://127.0.0.1:9/page", "--user-agent", agent, "--timeout", "0.5", "--retries", "0",
            "--delay", "0", "--json"]
    result = runner.invoke(app, args + (["--root", str(tmp_path / "bags")] if verb == "snapshot" else []))
    assert result.exit_code == 2, result.output
    assert "--user-agent" in json.loads(result.stdout)["error"]
    assert "internal error" not in result.stderr
