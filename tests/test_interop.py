"""Bags made by six other BagIt implementations (../shared/interop-bags), via the CLI.

Each row of its ``index.tsv`` is scored against the ``rfc8493`` column (the
verdict by RFC 8493; it differs from the source project's ``expected`` on 5
rows, see the corpus README): ``valid`` -> exit 0; ``warning`` -> exit 0 and at
least one warning; ``invalid`` -> exit 1 and at least one problem.

Not scored (``UNSCORED``): the 17 ``profile`` rows are about BagIt-Profile
conformance (a required tag, a forbidden fetch.txt, APTrust's naming rules),
not about RFC 8493 validity, so RFC 8493 gives no verdict for them; the one
``nonrfc`` row is bagit-java's ``.bagit/`` "2.0" draft layout, which is not an
RFC 8493 bag. They are still verified once, to show archiver gives a report
(no crash, exit 0 or 1) on them. The corpus is read in place, never modified.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from archiver.cli import app
from conftest import SHARED

CORPUS = SHARED / "interop-bags"
SCORED = ("valid", "invalid", "warning")
UNSCORED = {
    "profile": "a BagIt-Profile conformance case: the source's verdict is about the profile, not RFC 8493",
    "nonrfc": "bagit-java's '.bagit/' BagIt 2.0 draft layout, not an RFC 8493 bag",
}


def rows() -> list[dict[str, str]]:
    index = CORPUS / "index.tsv"
    if not index.is_file():
        return []
    with open(index, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


ROWS = rows()
SCORED_ROWS = [r for r in ROWS if r["rfc8493"] in SCORED]
UNSCORED_ROWS = [r for r in ROWS if r["rfc8493"] not in SCORED]


def run_verify(bag: Path) -> tuple[int, dict]:
    result = CliRunner().invoke(app, ["verify", "--json", str(bag)])
    document = json.loads(result.stdout)
    return result.exit_code, document


def test_the_corpus_is_what_its_readme_says(shared_dir: Path) -> None:
    assert len(ROWS) == 117
    assert len(SCORED_ROWS) == 99
    assert {r["rfc8493"] for r in UNSCORED_ROWS} == set(UNSCORED)
    assert sum(r["rfc8493"] == "profile" for r in UNSCORED_ROWS) == 17


@pytest.mark.parametrize("row", SCORED_ROWS, ids=[r["case"] for r in SCORED_ROWS])
def test_interop_case_agrees_with_rfc8493(row: dict[str, str], shared_dir: Path) -> None:
    code, document = run_verify(CORPUS / row["case"])
    assert document["errors"] == [], document["errors"]
    report = document["bags"][0]
    summary = f"{row['case']} ({row['why']}): {report['problems'][:5]}"
    if row["rfc8493"] == "invalid":
        assert code == 1, summary
        assert report["problems"], "an invalid bag names at least one problem"
    else:
        assert code == 0, summary
        assert report["valid"] is True
    if row["rfc8493"] == "warning":
        assert report["warnings"], f"{row['case']}: a warning case must carry at least one warning"


@pytest.mark.parametrize("row", UNSCORED_ROWS, ids=[r["case"] for r in UNSCORED_ROWS])
def test_unscored_case_gets_a_report(row: dict[str, str], shared_dir: Path) -> None:
    code, document = run_verify(CORPUS / row["case"])
    assert code in (0, 1), document
    assert len(document["bags"]) == 1


def test_the_version_rules_the_corpus_exposed(shared_dir: Path) -> None:
    """bagit-python's 0.97 bags whose tag manifests omit the payload manifests: a
    1.0 rule, so a warning here, never a problem (issue 10)."""
    for case in ("bagit-python/optional_tagfile_good", "bagit-python/unicode_normalization"):
        code, document = run_verify(CORPUS / case)
        report = document["bags"][0]
        assert code == 0 and report["version"] == "0.97", report["problems"]
        assert "tag-manifest-incomplete" in {w["code"] for w in report["warnings"]}
