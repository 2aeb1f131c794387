"""Auditing a collection on a rotation: verify the bags least recently checked.

State comes from the event log alone: a bag's last good check is its latest
``fixity`` event with outcome ``success``. ``audit_collection`` verifies (in
full) the bags never checked, then the oldest checked, until every bag has a
good check younger than ``max_age`` or ``limit`` bags were checked, and
appends one ``fixity`` event per bag as it goes (so an interrupted audit keeps
what it did). A bag the log knows but whose folder vanished is *missing*
(event outcome ``unverifiable``), not failed.

    >>> report = audit_collection(Path("bags"), max_age=timedelta(days=90), limit=100)
    >>> report.to_dict()["failed"]
    []
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Callable

from archiver.collection.root import list_bag_dirs
from archiver.errors import StorageError, UsageError
from archiver.collection.events import Event, append_event, read_events
from archiver.clock import parse_iso, utc_now
from archiver.bagit.verify import BagReport, CannotVerify

MAX_FILES_IN_EVENT = 1000
_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw]?)\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks", "": "days"}


def parse_max_age(text: str) -> timedelta:
    """``90d`` -> 90 days; units s, m, h, d, w; a bare number is days."""
    match = _DURATION.match(text)
    if not match:
        raise UsageError(f"--max-age {text!r} is not a duration like 90d, 12h, 2w")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


@dataclass
class AuditPlan:
    due: list[str]                                   # to verify now, in this order
    skipped: list[tuple[str, str]]                   # (bag, reason): "checked-recently" | "limit"
    missing: list[str]                               # known to the log, folder gone
    last_ok: dict[str, str | None] = field(default_factory=dict)


@dataclass
class AuditReport:
    root: str
    ok: list[str] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)    # {"bag", "files", "problems"}
    missing: list[str] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)   # {"bag", "reason", "last_checked"}
    torn_events: list[str] = field(default_factory=list)  # (S3) event objects or lines that are not whole events

    @property
    def checked(self) -> int:
        return len(self.ok) + len(self.failed)

    @property
    def clean(self) -> bool:
        return not self.failed and not self.missing

    def to_dict(self) -> dict[str, Any]:
        return {"root": self.root, "checked": self.checked, "ok": self.ok, "failed": self.failed,
                "missing": self.missing, "skipped": self.skipped}


def plan_audit(on_disk: list[str], events: list[Event], now: datetime, max_age: timedelta,
               limit: int | None, good: tuple[str, ...] = ("success",)) -> AuditPlan:
    """Which bags to verify, skip, or report missing. Pure: names and events in, a plan out.
    ``good``: the fixity outcomes that count as a check (``audit --server-checksums``
    also counts ``server-attested``; a plain audit never does)."""
    last_ok: dict[str, datetime] = {}
    last_event: dict[str, Event] = {}
    for event in events:
        if not event.bag:
            continue
        if event.target:  # about a mirror copy: it says the bag exists, not that this folder is good
            last_event.setdefault(event.bag, event)
            continue
        last_event[event.bag] = event
        if event.type == "fixity" and event.outcome in good:
            when = parse_iso(event.time)
            if event.bag not in last_ok or when > last_ok[event.bag]:
                last_ok[event.bag] = when
    present = set(on_disk)
    known = {bag for bag, event in last_event.items() if event.type != "deletion"}
    missing = sorted(known - present)
    never = sorted(bag for bag in present if bag not in last_ok)
    stale = sorted((bag for bag in present if bag in last_ok and now - last_ok[bag] >= max_age),
                   key=lambda bag: (last_ok[bag], bag))
    fresh = sorted(bag for bag in present if bag in last_ok and now - last_ok[bag] < max_age)
    candidates = never + stale
    due = candidates if limit is None else candidates[:max(limit, 0)]
    skipped = [(bag, "limit") for bag in candidates[len(due):]] + [(bag, "checked-recently") for bag in fresh]
    stamps = {bag: (_iso(last_ok[bag]) if bag in last_ok else None) for bag in present}
    return AuditPlan(due, skipped, missing, stamps)


def audit_collection(root: Path, max_age: timedelta = timedelta(days=90), limit: int | None = None,
                     processes: int | None = None, now: datetime | None = None,
                     on_progress: Callable[..., None] | None = None, tsa_ca: bytes | None = None) -> AuditReport:
    """Verify the bags of ``root`` that are due, log a fixity event for each; see the module doc.
    ``tsa_ca``: PEM roots to check RFC 3161 tokens' signatures (archiver.bagit.timestamp)."""
    root = Path(root)
    if not root.is_dir():
        raise StorageError(f"collection root {root} does not exist or is not a folder")
    log = read_events(root)
    on_disk = {p.name for p in list_bag_dirs(root)}
    # A bag folder that lost its bagit.txt is still on disk (and will fail), not missing.
    on_disk |= {e.bag for e in log.events if e.bag and "/" not in e.bag and (root / e.bag).is_dir()}
    on_disk |= _serialised_bags(root)
    plan = plan_audit(sorted(on_disk), log.events, now or utc_now(), max_age, limit)

    def refuse(bag: str) -> str | None:
        if (root / bag).is_symlink():  # verifying through it would read outside the collection
            return f"bag folder {bag} is a symbolic link (never followed)"
        return None

    return run_audit(str(root), plan, lambda bag: _verify(root / bag, processes, tsa_ca),
                     lambda event: append_event(root, event), lambda bag: f"bag folder {bag} is gone",
                     on_progress, refuse)


def run_audit(location: str, plan: AuditPlan, verify: Callable[[str], BagReport], log: Callable[[Event], None],
              missing_message: Callable[[str], str], on_progress: Callable[..., None] | None = None,
              refuse: Callable[[str], str | None] | None = None) -> AuditReport:
    """Carry out ``plan`` wherever the bags live: ``verify(bag)`` reads and hashes
    every byte of one bag, ``log(event)`` records each outcome as it comes (so an
    interrupted audit keeps what it did); ``refuse(bag)`` names a reason not to
    read a bag at all (a failure)."""
    report = AuditReport(location)
    report.skipped = [{"bag": bag, "reason": reason, "last_checked": plan.last_ok.get(bag)}
                      for bag, reason in plan.skipped]
    for bag in plan.missing:
        report.missing.append(bag)
        log(Event("fixity", "unverifiable", bag=bag, detail={"reason": "missing", "message": missing_message(bag)}))
    for index, bag in enumerate(plan.due):
        if on_progress:
            on_progress(index, len(plan.due), bag)
        reason = refuse(bag) if refuse else None
        if reason:
            report.failed.append({"bag": bag, "files": [], "problems": [
                {"code": "bag-is-symlink", "path": "", "message": reason}]})
            log(Event("fixity", "failure", bag=bag, detail={"reason": reason}))
            continue
        try:
            bag_report = verify(bag)
        except StorageError as exc:
            # CannotVerify: archiver refused to judge the bag (a resource guard), so the
            # log says "unverifiable", never "failure"; the audit still reports it.
            unjudged = isinstance(exc, CannotVerify)
            report.failed.append({"bag": bag, "files": [], "problems": [
                {"code": "cannot-verify" if unjudged else "bag-unreadable", "path": "", "message": str(exc)}]})
            log(Event("fixity", "unverifiable" if unjudged else "failure", bag=bag, detail={"reason": str(exc)}))
            continue
        log(_fixity_event(bag, bag_report))
        if bag_report.valid:
            report.ok.append(bag)
        else:
            report.failed.append({"bag": bag, "files": _problem_files(bag_report),
                                  "problems": [p.to_dict() for p in bag_report.problems]})
    if on_progress:
        on_progress(len(plan.due), len(plan.due), "")
    return report


def _serialised_bags(root: Path) -> set[str]:
    """.tar/.tar.gz/.zip bags in the root (``archiver export --out`` or a mirror of one)."""
    from archiver.exchange.mirror_archives import collection_archives
    return {p.name for p in collection_archives(root)}


def _verify(path: Path, processes: int | None, tsa_ca: bytes | None = None) -> BagReport:
    # A bag folder, or a serialised bag verified in place: one dispatch, verify's own.
    from archiver.exchange.check import verify_any

    return verify_any(path, "full", processes, tsa_ca=tsa_ca)


def _problem_files(report: BagReport) -> list[str]:
    return sorted({p.path for p in report.problems if p.path})


def _fixity_event(bag: str, report: BagReport) -> Event:
    detail: dict[str, Any] = {"mode": report.mode, "algorithm": "all manifests", "file_count": report.files,
                              "bytes": report.bytes, "warnings": len(report.warnings)}
    if report.timestamp:
        detail["timestamp"] = report.timestamp
    if report.valid:
        return Event("fixity", "success", bag=bag, detail=detail)
    files = _problem_files(report)
    detail["files"] = files[:MAX_FILES_IN_EVENT]
    detail["problems"] = [p.to_dict() for p in report.problems[:MAX_FILES_IN_EVENT]]
    if len(files) > MAX_FILES_IN_EVENT:
        detail["files_not_listed"] = len(files) - MAX_FILES_IN_EVENT
    return Event("fixity", "failure", bag=bag, detail=detail)


def _iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")
