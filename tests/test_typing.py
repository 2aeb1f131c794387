"""mypy over the whole package, with the configuration in pyproject.toml
([tool.mypy]; stricter rules for the rooms listed in its overrides).

A type error anywhere in ``archiver/`` fails the suite, so CI runs mypy with
every test run. Locally: ``.venv/bin/python -m mypy``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_mypy_is_clean() -> None:
    proc = subprocess.run([sys.executable, "-m", "mypy", "--no-error-summary", "--hide-error-context"],
                          cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"mypy found errors:\n{proc.stdout[-6000:]}{proc.stderr[-2000:]}"
