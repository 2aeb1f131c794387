"""The README's promises: its two opening commands are what CI runs, and every
CLI command is documented."""

from __future__ import annotations

import re
from pathlib import Path

from typer.main import get_command
from typer.testing import CliRunner

from archiver.cli import app

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text(encoding="utf-8")


def opening_commands() -> list[str]:
    blocks = re.findall(r"```(?:sh|bash|console)?\n(.*?)```", README, flags=re.S)
    return [line.strip() for block in blocks[:2] for line in block.splitlines()
            if line.strip() and not line.strip().startswith("#")]


def test_readme_opens_with_two_commands_that_ci_runs_verbatim() -> None:
    commands = opening_commands()
    assert len(commands) == 2, commands
    install_and_run, install_and_test = commands
    assert "archiver snapshot --manifest manifests/example.toml" in install_and_run
    assert "pytest" in install_and_test
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert install_and_run in ci and install_and_test in ci


def all_command_names() -> set[str]:
    group = get_command(app)
    names = set(group.commands)  # type: ignore[attr-defined]
    for name, command in group.commands.items():  # type: ignore[attr-defined]
        if hasattr(command, "commands"):
            names |= {f"{name} {sub}" for sub in command.commands}
    return names


def test_every_command_has_working_help() -> None:
    runner = CliRunner()
    for name in sorted(all_command_names()):
        result = runner.invoke(app, [*name.split(), "--help"])
        assert result.exit_code == 0, (name, result.output, result.exception)
        assert "Usage" in result.output


def test_every_command_is_documented() -> None:
    missing = sorted(n for n in all_command_names() if f"archiver {n}" not in README)
    assert not missing, f"commands missing from README: {missing}"


def test_every_runtime_dependency_is_explained_and_imported() -> None:
    """Declared = imported by archiver at run time, and the README says what for."""
    import tomllib

    declared = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"]
    names = [re.split(r"[<>=\[; ]", spec, maxsplit=1)[0].lower() for spec in declared]
    section = README.split("## Dependencies", 1)[1].split("\n## ", 1)[0].lower()
    assert not [n for n in names if n not in section], "README's Dependencies section misses some"
    sources = "\n".join(p.read_text(encoding="utf-8") for p in (REPO / "archiver").rglob("*.py"))
    module = {"charset-normalizer": "charset_normalizer", "cdxj-indexer": "cdxj_indexer", "rfc3161-client": "rfc3161_client", "htmldate": "htmldate"}
    needed_by_a_dependency = {"lxml_html_clean"}  # trafilatura imports lxml.html.clean (README says so)
    unused = [n for n in names if n not in needed_by_a_dependency
              and not re.search(rf"^\s*(import|from) {module.get(n, n)}\b", sources, re.M)]
    assert not unused, f"declared but never imported: {unused}"
