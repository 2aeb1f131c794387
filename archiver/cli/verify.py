"""verify and audit: fixity verbs."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from archiver.cli.common import (EXIT_CANNOT_RUN, EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE, CollectionRootOption,
                                 JsonOption, app, collection_root, emit_json, endpoint_option, error_line,
                                 errors_to_exit, event_log_warnings, fail, one_line, out, progress_bar, warn)
from archiver.cli.trust import TsaCaOption, read_tsa_ca
from archiver.errors import ArchiverError, UsageError


ServerChecksumsOption = typer.Option(
    False, "--server-checksums",
    help="s3:// only: compare the server's stored SHA-256 of each payload file with manifest-sha256.txt "
         "instead of reading it (reported as server-attested, not verified); files without a usable "
         "stored checksum, and tag files, are read and hashed.")

_MODE_LABELS = {
    "full": ("valid: every checksum verified", "INVALID"),
    "fast": ("Payload-Oxum matches (--fast: counts and sizes only, checksums NOT checked)",
             "Payload-Oxum check FAILED (--fast: checksums NOT checked)"),
    "completeness": ("complete (--completeness-only: every file present and listed, checksums NOT checked)",
                     "INCOMPLETE or malformed (--completeness-only: checksums NOT checked)"),
}



def _print_bag_report(report: Any) -> None:
    good, bad = _MODE_LABELS[report.mode]
    version = f", BagIt {report.version}" if report.version else ""
    location = one_line(report.location)
    if report.valid:
        out.print(f"OK   {location}: {good} ({report.files} files, {report.bytes} bytes{version})",
                  markup=False)
    else:
        out.print(f"BAD  {location}: {bad}: {len(report.problems)} problem(s){version}", markup=False)
    if report.timestamp:
        stamp = report.timestamp
        out.print(f"     time-stamp {stamp['status']}: {one_line(stamp['message'] or '')}", markup=False)
    print_findings(report.problems, report.warnings)


def print_findings(problems: list[Any], warnings: list[Any]) -> None:
    """A bag's problems and warnings, one line each, under its report line."""
    for problem in problems:
        out.print(f"     error    {problem.code}  {one_line(problem.path)}: {one_line(problem.message)}",
                  markup=False)
    for warning in warnings:
        out.print(f"     warning  {warning.code}  {one_line(warning.path)}: {one_line(warning.message)}",
                  markup=False)


def _collection_folder(name: str) -> bool:
    """A collection's own folders, which hold no bags: .archiver/ and .tmp-* (bags being written)."""
    from archiver.collection.root import META_DIR
    from archiver.durable import TMP_PREFIX

    return name == META_DIR or name.startswith(TMP_PREFIX)


@app.command()
def verify(
    paths: list[str] = typer.Argument(..., metavar="PATH...",
                                      help="A bag or a collection root (every bag under it); "
                                           "or s3://bucket/prefix[/bag], read in place."),
    fast: bool = typer.Option(False, "--fast", help="Check Payload-Oxum only (file count and bytes)."),
    completeness_only: bool = typer.Option(False, "--completeness-only",
                                           help="Check everything except checksums."),
    processes: Optional[int] = typer.Option(None, "--processes", min=1,
                                            help="Hashing processes (default: one per core)."),
    endpoint_url: Optional[str] = endpoint_option,
    profile: Optional[list[str]] = typer.Option(None, "--profile", metavar="NAME|FILE",
                                                help="Also check a BagIt profile: aptrust, btr, rfc8493, or a "
                                                     "profile JSON file (BagIt-Profiles 1.1-1.4 or DART). "
                                                     "Repeatable."),
    tsa_ca: Optional[Path] = TsaCaOption,
    server_checksums: bool = ServerChecksumsOption,
    json_output: bool = JsonOption,
) -> None:
    """Verify bags strictly by RFC 8493 (BagIt 0.93 - 1.0); report every problem, by file.
    A .tar, .tar.gz or .zip bag (local or s3://) is verified in place, without extracting it.

    Example: ``archiver verify bags/`` or ``archiver verify --fast bags/essay-20261125T093000Z``.
    Exit 0 all valid (warnings allowed), 1 any invalid, 3 a path could not be read.
    """
    from archiver.bagit.verify import find_bags
    from archiver.exchange.archive_reader import archive_kind as is_archive_name
    from archiver.exchange.check import find_bags_and_archives, s3_archive, verify_any
    from archiver.exchange.profiles import load_profile
    from archiver.replication import is_remote

    if fast and completeness_only:
        raise fail("--fast and --completeness-only exclude each other", EXIT_USAGE)
    if server_checksums and (fast or completeness_only or profile):
        raise fail("--server-checksums excludes --fast, --completeness-only and --profile", EXIT_USAGE)
    with errors_to_exit(json_output):
        profiles = [load_profile(p) for p in profile or []]
    mode = "fast" if fast else "completeness" if completeness_only else "full"
    with errors_to_exit(json_output):
        ca_pem = read_tsa_ca(tsa_ca)
    if server_checksums:
        from archiver.cli.attest import verify_server_checksums

        verify_server_checksums(paths, endpoint_url, ca_pem, json_output)
    reports: list[Any] = []
    errors: list[dict[str, str]] = []
    incomplete: list[str] = []  # bags of an S3 collection without a completion marker or receipt

    def could_not_read(path: Any, message: str) -> None:
        errors.append({"path": str(path), "error": error_line(message)})

    for given in paths:
        left_out: list[str] = []
        try:
            if given.startswith("s3://") and is_archive_name(given):
                bags: list[Any] = [s3_archive(given, endpoint_url)]
            elif is_remote(given):
                bags, left_out = _remote_bags(given, endpoint_url)
                incomplete.extend(left_out)
            elif not Path(given).exists():
                could_not_read(Path(given), f"{given} does not exist")
                continue
            else:
                bags = find_bags_and_archives(Path(given), lambda p: find_bags(p, skip=_collection_folder))
        except UsageError:
            raise  # an unsupported scheme: the whole command is a usage error
        except ArchiverError as exc:
            could_not_read(Path(given), str(exc))
            continue
        if not bags:
            could_not_read(Path(given), f"no bag at or under {given}" + (
                " (only bags with no completion marker or receipt: being written, or left by a crash)"
                if left_out else ""))
            continue
        for bag in bags:
            label = getattr(bag, "name", None) or str(getattr(bag, "location", bag)).rsplit("/", 1)[-1]
            try:
                with progress_bar(f"verifying {label}", enabled=not json_output) as on_progress:
                    report = verify_any(bag, mode, processes, on_progress, profiles, tsa_ca=ca_pem)
            except ArchiverError as exc:
                could_not_read(bag, str(exc))
                continue
            reports.append(report)
            if not json_output:
                _print_bag_report(report)
    invalid = sum(1 for r in reports if not r.valid)
    for location in incomplete:
        warn(f"{location}: not verified: no completion marker or receipt (being written, or left by a crash)")
    if json_output:
        emit_json({"mode": mode, "bags": [r.to_dict() for r in reports], "errors": errors,
                   "incomplete": incomplete})
    elif len(reports) > 1:
        word = {"full": "valid", "fast": "Payload-Oxum OK (--fast)",
                "completeness": "complete (--completeness-only)"}[mode]
        out.print(f"{len(reports)} bags: {len(reports) - invalid} {word}, {invalid} with problems", markup=False)
    raise typer.Exit(EXIT_CANNOT_RUN if errors else EXIT_PROBLEMS if invalid else EXIT_OK)


def _remote_bags(location: str, endpoint_url: Optional[str]) -> tuple[list[Any], list[str]]:
    """Readers for an s3:// location (inside a collection: its complete bags only), and
    the locations of the bags left out; any other scheme is a usage error."""
    from archiver.replication import is_s3, make_client, open_site

    if not is_s3(location):
        return open_site(location, endpoint_url).bag_readers(), []
    from archiver.collection.s3root import verifiable_bags

    return verifiable_bags(make_client(endpoint_url), location)


@app.command()
def audit(
    root: str = CollectionRootOption,
    max_age: str = typer.Option("90d", "--max-age", help="Re-verify bags not checked for this long (90d, 12h, 2w)."),
    limit: Optional[int] = typer.Option(None, "--limit", min=0, help="Verify at most N bags this run."),
    processes: Optional[int] = typer.Option(None, "--processes", min=1, help="Hashing processes per bag."),
    tsa_ca: Optional[Path] = TsaCaOption,
    server_checksums: bool = ServerChecksumsOption,
    endpoint_url: Optional[str] = endpoint_option,
    json_output: bool = JsonOption,
) -> None:
    """Fully verify the bags least recently checked, log a fixity event for each, print one summary.

    Every byte of every bag checked is read and hashed, on S3 too (--root s3://bucket/prefix).

    Example: ``archiver audit --root bags --max-age 90d --limit 500``.
    With --server-checksums (s3:// roots): bags are server-attested, not read (see verify).
    Exit 0 all checked bags valid and none missing, 1 a bag failed or vanished, 3 could not run.
    """
    from archiver.clock import utc_now
    from archiver.collection.audit import audit_collection, parse_max_age

    with errors_to_exit(json_output):
        try:
            age = parse_max_age(max_age)
            utc_now() - age  # a span reaching back before year 1 cannot be compared with dates
        except (OverflowError, ValueError):
            raise fail(f"--max-age {max_age!r} is too long (at most a few thousand years)", EXIT_USAGE) from None
        ca_pem = read_tsa_ca(tsa_ca)
        location = collection_root(root)
    if server_checksums:
        from archiver.cli.attest import audit_server_checksums

        audit_server_checksums(str(location), endpoint_url, age, limit, ca_pem, json_output)
    with errors_to_exit(json_output):
        with progress_bar("auditing", enabled=not json_output) as on_progress:
            if isinstance(location, Path):
                report = audit_collection(location, age, limit, processes, on_progress=on_progress, tsa_ca=ca_pem)
            else:
                report = _audit_s3(location, endpoint_url, age, limit, processes, on_progress, ca_pem)
    warnings = event_log_warnings(location) if isinstance(location, Path) else _s3_log_warnings(report)
    if json_output:
        emit_json({**report.to_dict(), "warnings": warnings})
    else:
        by_reason: dict[str, int] = {}
        for item in report.skipped:
            by_reason[item["reason"]] = by_reason.get(item["reason"], 0) + 1
        reasons = ", ".join(f"{n} {r.replace('-', ' ')}" for r, n in sorted(by_reason.items()))
        out.print(f"audit of {root}: {report.checked} checked, {len(report.ok)} ok, {len(report.failed)} failed, "
                  f"{len(report.missing)} missing, {len(report.skipped)} skipped"
                  + (f" ({reasons})" if reasons else ""), markup=False)
        for failure in report.failed:
            codes = sorted({p["code"] for p in failure["problems"]})
            files = ", ".join(failure["files"]) or "(the bag as a whole)"
            out.print(f"FAILED   {failure['bag']}: {files} [{', '.join(codes)}]", markup=False)
        for bag in report.missing:
            out.print(f"MISSING  {bag}: the event log knows this bag but it is gone", markup=False)
    raise typer.Exit(EXIT_OK if report.clean else EXIT_PROBLEMS)


def _s3_log_warnings(report: Any) -> list[dict[str, Any]]:
    """An S3 root's event objects (or legacy lines) that are not whole events: warned, never fatal."""
    if not report.torn_events:
        return []
    shown = ", ".join(report.torn_events[:5]) + (", …" if len(report.torn_events) > 5 else "")
    message = (f"{report.root}: {len(report.torn_events)} event object(s) or line(s) are not whole events "
               f"({shown}); the other events are intact")
    warn(message)
    return [{"code": "event-log-torn-line", "path": report.root, "keys": report.torn_events, "message": message}]


def _audit_s3(location: str, endpoint_url: Optional[str], age: Any, limit: Optional[int],
              processes: Optional[int], on_progress: Any, ca_pem: Optional[bytes]) -> Any:
    """``audit --root s3://…``: every byte read and hashed (``collection.s3audit``)."""
    from archiver.collection.s3audit import audit_s3_collection
    from archiver.collection.s3root import S3Collection

    return audit_s3_collection(S3Collection(location, endpoint_url), age, limit, processes,
                               on_progress=on_progress, tsa_ca=ca_pem)

