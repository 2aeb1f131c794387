"""The BagIt conformance suite (../shared/conformance/bagit-conformance-suite), every case, via the CLI.

Expectations (issue 3): ``valid`` -> exit 0; ``invalid``, ``linux-only``,
``windows-only`` -> exit 1 (archiver judges paths the same on every OS);
``warning`` -> exit 0 with at least one warning, except the two cases whose
listed files are absent on a case-sensitive disk: exit 1 naming that file,
plus the warning. The suite is read in place and never modified.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from archiver.cli import app
from conftest import SHARED

SUITE = SHARED / "conformance" / "bagit-conformance-suite"
ABSENT_ON_CASE_SENSITIVE_DISK = {
    "duplicate-file-with-different-case": ("data/HELLO.txt", "name-collision-case"),
    "special-system-files": ("data/.DS_Store", "system-file"),
}


def suite_cases() -> list[Path]:
    if not SUITE.is_dir():
        return []
    return sorted(p for p in SUITE.glob("v*/*/*") if p.is_dir())


CASES = suite_cases()


def run_verify(bag: Path) -> tuple[int, dict]:
    result = CliRunner().invoke(app, ["verify", "--json", str(bag)])
    return result.exit_code, json.loads(result.stdout)


def test_the_suite_has_sixty_cases(shared_dir: Path) -> None:
    assert len(CASES) == 60, [str(c) for c in CASES]


@pytest.mark.parametrize("bag", CASES, ids=[str(c.relative_to(SUITE)) for c in CASES])
def test_conformance_case(bag: Path, shared_dir: Path) -> None:
    category = bag.parent.name
    code, document = run_verify(bag)
    assert len(document["bags"]) == 1
    report = document["bags"][0]
    if category == "valid":
        assert code == 0, report["problems"]
        assert report["valid"] is True
    elif category in ("invalid", "linux-only", "windows-only"):
        assert code == 1, report
        assert report["problems"], "an invalid bag must name at least one problem"
    elif category == "warning" and bag.name in ABSENT_ON_CASE_SENSITIVE_DISK:
        missing_file, warning_code = ABSENT_ON_CASE_SENSITIVE_DISK[bag.name]
        assert code == 1
        assert {"file-missing"} <= {p["code"] for p in report["problems"]}
        assert missing_file in {p["path"] for p in report["problems"] if p["code"] == "file-missing"}
        assert warning_code in {w["code"] for w in report["warnings"]}
    elif category == "warning":
        assert code == 0, report["problems"]
        assert report["warnings"], "a warning case must produce at least one warning"
    else:  # pragma: no cover - a new category in the suite must be looked at
        pytest.fail(f"unknown conformance category {category}")


def test_out_of_scope_paths_are_never_opened(shared_dir: Path) -> None:
    """The out-of-scope cases are reported as path-unsafe, on every OS."""
    unsafe = [c for c in CASES if "out-of-scope" in c.name]
    assert len(unsafe) == 14
    for bag in unsafe:
        _code, document = run_verify(bag)
        assert "path-unsafe" in {p["code"] for p in document["bags"][0]["problems"]}, bag.name
