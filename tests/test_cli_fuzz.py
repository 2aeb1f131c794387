"""Bad input never crashes: every verb of the CLI, fuzzed through the CLI.

The verbs are found by walking the click group built from ``archiver.cli.app``,
so a verb added later is fuzzed without a line here (only long-running verbs,
``LONG_RUNNING``, are left out). Each example runs one verb with hostile
arguments (malformed URLs, odd schemes, paths with NUL, newlines or ``..``,
broken manifests, bad option values) and checks the CLI contract:

- never a traceback, never an "internal error";
- the exit code is one of 0/1/2/3;
- with ``--json``, stdout is exactly one valid JSON document;
- a password in a URL never appears in the output.

No network: every generated URL names 127.0.0.1 (closed ports) or is not a
valid URL at all, and fetching verbs get ``--timeout``/``--retries 0``/
``--delay 0`` appended so a refused connection fails fast. The working
directory is a scratch folder two levels below ``tmp_path``, so ``..`` and
relative paths stay inside it; no absolute path outside it is generated.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import typer
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from archiver.cli import app

LONG_RUNNING = {"serve"}  # verbs that run until stopped: not fuzzed
SECRET = "s3cr3tFuzzPw"
CLOSED = "127.0.0.1:9"  # discard port: nothing listens there
LOOPBACK_S3 = f"http://{CLOSED}"
# Verbs whose JSON echoes the user's own argument as data (a search query):
# a password typed there is not a source URL, so only their error lines are checked.
ECHOES_ARGUMENTS = {"search"}

runner = CliRunner()


def leaf_commands() -> list[tuple[list[str], Any]]:
    """(command path, click command) for every verb, sub-commands included."""
    found: list[tuple[list[str], Any]] = []

    def walk(command: Any, path: list[str]) -> None:
        subs = getattr(command, "commands", None)
        if subs:
            for name, sub in sorted(subs.items()):
                walk(sub, path + [name])
        elif path and path[0] not in LONG_RUNNING:
            found.append((path, command))

    walk(typer.main.get_command(app), [])
    return found


VERBS = leaf_commands()

URLS = [
    "http://[::1", "http://[::1]:99999/", "http://", "https://", "http:///nohost", "http://:80/",
    f"http://{CLOSED}/page", f"https://{CLOSED}/x?y=%00", f"http://{CLOSED}/%zz", "http://127.0.0.1:0/",
    f"http://fuzz:{SECRET}@{CLOSED}/private", f"https://user:{SECRET}@[::1/", f"ftp://{CLOSED}/x",
    "javascript:alert(1)", "data:text/html,<p>hi</p>", "mailto:a@b", "s3://", "s3://bucket",
    f"s3://x:{SECRET}@b/c", f"sftp://{CLOSED}/x", "file://", "file:///nonexistent/fuzz.html",
    "file://host/x", "urn:isbn:0451450523", "ark:/57799/b9dd5t", "http://127.0.0.1:9/\nOK  forged",
]
PATHS = [
    "a\x00b", "bad\nname", "..", "../..", "../../x", "./", ".", "", " ", "-", "~", "%00", "x" * 300,
    "bags", "coll", "nonexistent", "page.html", "empty.html", "manifest.toml", "broken.toml",
    "binary.toml", "creds.toml", "badurl.toml", "dir.toml", "broken.warc.gz", "coll/page-bag",
    "coll/.archiver", "/nonexistent-archiver-fuzz/x", "s3:", "CON", "名前.html",
]
NUMBERS = ["-1", "0", "1", "nan", "inf", "-inf", "1e309", "abc", "", "99999999999999999999", "0.0001",
           "90d", "0d", "-5d", "12x", "2w"]
VALUES = URLS + PATHS + NUMBERS


def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """S3 on a closed loopback port, dummy credentials, no instance-metadata lookups."""
    monkeypatch.setenv("ARCHIVER_S3_ENDPOINT_URL", LOOPBACK_S3)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "fuzz")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "fuzz")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for name in ("ARCHIVER_ROOT", "ARCHIVER_DEBUG", "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)


def value() -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(VALUES), st.text(max_size=12))


def options_of(command: Any) -> tuple[list[Any], list[Any]]:
    options = [p for p in command.params if p.param_type_name == "option" and not p.hidden
               and "--help" not in p.opts]
    arguments = [p for p in command.params if p.param_type_name == "argument"]
    return options, arguments


@st.composite
def invocations(draw: st.DrawFn) -> tuple[list[str], bool]:
    path, command = draw(st.sampled_from(VERBS))
    options, arguments = options_of(command)
    args = list(path)
    for argument in arguments:
        count = draw(st.integers(0, 2)) if argument.nargs != 1 else draw(st.sampled_from([1, 1, 1, 0]))
        args += [draw(value()) for _ in range(count)]
    for option in draw(st.lists(st.sampled_from(options), max_size=3, unique_by=id)) if options else []:
        name = option.opts[0]
        if name == "--json":
            continue
        if option.is_flag:
            args.append(draw(st.sampled_from(option.opts + option.secondary_opts)))
        else:
            args += [name, draw(value())]
    wants_json = draw(st.booleans())
    if wants_json:
        args.insert(len(path), "--json")
    names = {opt for o in options for opt in o.opts}
    # Anything that fetches fails fast on loopback, never waits; S3 is a closed
    # loopback port too (the last value of an option wins).
    for name, fast in (("--timeout", "0.5"), ("--retries", "0"), ("--delay", "0"),
                       ("--endpoint-url", LOOPBACK_S3)):
        if name in names:
            args += [name, fast]
    return args, wants_json


def scratch(base: Path) -> Path:
    """A working folder with the files the fuzzer names: good and broken."""
    work = base / "a" / "b"
    work.mkdir(parents=True)
    page = ("<html><head><title>Fuzz</title></head><body><article><p>A paragraph long enough "
            "to be extracted as the body of a page, with a few more words.</p></article></body></html>")
    (work / "page.html").write_text(page)
    (work / "empty.html").write_text("")
    (work / "broken.toml").write_text("[collection\nid = ")
    (work / "binary.toml").write_bytes(b"\xff\xfe\x00\x01[[sources]]")
    (work / "manifest.toml").write_text('[collection]\nid = "fuzz"\n\n[[sources]]\nurl = "page.html"\n')
    (work / "creds.toml").write_text(f'[collection]\nid = "c"\n\n[[sources]]\nurl = "http://u:{SECRET}@{CLOSED}/"\n')
    (work / "badurl.toml").write_text('[collection]\nid = "c"\n\n[[sources]]\nurl = "http://[::1"\n')
    (work / "dir.toml").mkdir()
    (work / "broken.warc.gz").write_bytes(b"\x1f\x8b\x08\x00garbage")
    result = runner.invoke(app, ["snapshot", str(work / "page.html"), "--root", str(work / "coll")])
    assert result.exit_code == 0, result.output
    return work


def check_contract(args: list[str], wants_json: bool, result: Any) -> None:
    shown = f"archiver {args!r}\nstdout: {result.stdout[:2000]}\nstderr: {result.stderr[:2000]}"
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        f"{shown}\n{result.exc_info}"
    assert result.exit_code in (0, 1, 2, 3), shown
    assert "Traceback" not in result.stdout + result.stderr, shown
    assert "internal error" not in result.stderr, shown
    assert SECRET not in result.stderr, shown
    if args[0] not in ECHOES_ARGUMENTS:
        assert SECRET not in result.stdout, shown
    if wants_json and "--help" not in args:
        try:
            json.loads(result.stdout)  # exactly one document: two would be "Extra data"
        except ValueError as exc:
            pytest.fail(f"not one JSON document ({exc}): {shown}")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return scratch(tmp_path_factory.mktemp("fuzz"))


def test_every_verb_is_found_and_takes_json() -> None:
    names = {" ".join(path) for path, _ in VERBS}
    assert {"snapshot", "verify", "audit", "mirror", "repair", "list", "search", "catalog rebuild"} <= names
    for path, command in VERBS:
        options, _ = options_of(command)
        assert any("--json" in o.opts for o in options), f"{' '.join(path)} has no --json"


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                    HealthCheck.too_slow])
@given(invocation=invocations())
def test_no_input_crashes_any_verb(workdir: Path, invocation: tuple[list[str], bool],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(workdir)
    no_network(monkeypatch)
    args, wants_json = invocation
    result = runner.invoke(app, args)
    event(f"exit {result.exit_code}")  # --hypothesis-show-statistics: how far runs get
    check_contract(args, wants_json, result)


@pytest.mark.parametrize("args", [
    ["snapshot", "http://[::1"],
    ["snapshot", "http://[::1", "--json"],
    ["snapshot", "--json"],
    ["snapshot", "--json", "--delay", "soon"],
    ["verify", "--json"],
    ["verify", "--processes", "0", "--json", "."],
    ["mirror", "--json"],
    ["mirror", "coll", "sftp://127.0.0.1:9/x", "--json"],
    ["repair", "coll", "--json"],
    ["audit", "--max-age", "soon", "--json"],
    ["search", "--json"],
    ["no-such-verb", "--json"],
    ["catalog", "no-such", "--json"],
    ["list", "--root", "a\x00b", "--json"],
    ["list", "--root", "sftp://lib/col", "--json"],
])
def test_usage_errors_print_one_line_and_one_json_document(workdir: Path, args: list[str],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(workdir)
    no_network(monkeypatch)
    result = runner.invoke(app, args)
    check_contract(args, "--json" in args, result)
    assert result.exit_code == 2, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("archiver: error:")]
    assert len(errors) == 1 and len(result.stderr.splitlines()) == 1, result.stderr
    if "--json" in args:
        document = json.loads(result.stdout)
        assert document["exit_code"] == 2 and document["error"] in errors[0]
