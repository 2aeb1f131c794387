"""``archiver export --format tar|tar.gz|zip``: many bags, with or without profiles.

Without a profile each bag is serialised as it is. With profiles, a derived
bag (``derive.py``) named ``<bag>-<profile>`` is built in a temporary folder of
``--out``, serialised, verified against RFC 8493 and every profile, and the
temporary folder removed; the original bag is only read.

    >>> report = export_bags([Path("bags/essay")], Path("out"), "tar", [load_profile("aptrust")],
    ...                      {"Access": "Institution", "Storage-Option": "Standard"})
    >>> report.results[0].archive.name
    'essay-aptrust.tar'
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from archiver.durable import make_temp_dir, release_temp_dir
from archiver.errors import ArchiverError, StorageError, UsageError
from archiver.exchange.derive import build_derived, plan_tags
from archiver.exchange.profiles import MIME, Profile
from archiver.exchange.serialise import ExportResult, export_bag


@dataclass
class ExportReport:
    out: str
    format: str
    results: list[ExportResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r.status in ("exported", "exists") for r in self.results)

    def to_dict(self) -> dict[str, Any]:
        counts = {s: sum(1 for r in self.results if r.status == s) for s in ("exported", "exists", "failed")}
        return {"out": self.out, "format": self.format, "ok": self.ok, **counts,
                "results": [r.to_dict() for r in self.results]}


def _short(profile: Profile) -> str:
    if profile.source.startswith("bundled:"):
        return profile.source.split(":", 1)[1]
    stem = Path(profile.source).stem.lower()
    return re.sub(r"[^a-z0-9.]+", "-", stem).strip("-") or "profile"


def _check_format(fmt: str, profiles: list[Profile]) -> None:
    for profile in profiles:
        if profile.serialization == "forbidden":
            raise UsageError(f"profile {profile.name} forbids serialised bags")
        accepted = profile.accept_serialization
        if accepted is not None and not MIME[fmt] & set(accepted):
            raise UsageError(f"profile {profile.name} accepts {', '.join(accepted)}, not --format {fmt}")


def export_bags(bags: list[Path], out: Path, fmt: str, profiles: list[Profile] | None = None,
                tags: dict[str, str] | None = None, on_progress: Callable[..., None] | None = None) -> ExportReport:
    """Export each bag; a bag that fails is reported and the others go on.
    UsageError before anything is written when a profile's required values are missing."""
    profiles, tags = profiles or [], tags or {}
    if len(profiles) > 1:
        raise UsageError("export makes a derived bag for one --profile at a time")
    _check_format(fmt, profiles)
    for bag in bags:  # refuse up front, with the whole list, rather than half-way through
        for profile in profiles:
            plan_tags(bag, profile, tags)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"cannot create {out}: {exc.strerror}") from exc
    report = ExportReport(str(out), fmt)
    for index, bag in enumerate(bags):
        if on_progress:
            on_progress(index, len(bags), bag.name)
        try:
            report.results.append(_export_one(bag, out, fmt, profiles, tags))
        except ArchiverError as exc:
            report.results.append(ExportResult(bag.name, out / bag.name, "failed",
                                               problems=[{"code": "export-failed", "path": bag.name,
                                                          "message": str(exc)}]))
    if on_progress:
        on_progress(len(bags), len(bags), "")
    return report


def _export_one(bag: Path, out: Path, fmt: str, profiles: list[Profile], tags: dict[str, str]) -> ExportResult:
    if not profiles:
        return export_bag(bag, out, fmt)
    name = "-".join([bag.name] + [_short(p) for p in profiles])
    tmp = make_temp_dir(out, f"derive-{name}")
    try:
        derived = tmp / name
        derived.mkdir()
        build_derived(bag, profiles[0], tags, derived)
        result = export_bag(derived, out, fmt, name, profiles=profiles)
        result.derived_from = bag.name
        return result
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        release_temp_dir(tmp)

