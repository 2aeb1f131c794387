"""``verify --server-checksums`` and ``audit --server-checksums``: fixity of bags
on S3 from the server's stored SHA-256 (``archiver.replication.server_fixity``),
printed and exported as **server-attested**, never as "verified" or "valid"."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Optional

import typer

from archiver.cli.common import (EXIT_CANNOT_RUN, EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE, emit_json, errors_to_exit,
                                 fail, one_line, out, progress_bar)

_REASONS = {
    "tag-file": "tag files", "tag-manifest": "tag manifests", "manifest-has-no-sha256": "no sha256 in the manifests",
    "no-stored-sha256": "no stored SHA-256", "composite": "multipart (composite checksum)",
    "server-does-not-check": "the server does not check checksums", "server-unprobed": "the server was not probed",
}


def _reasons(read: dict[str, int]) -> str:
    return ", ".join(f"{n} {_REASONS.get(r, r)}" for r, n in sorted(read.items()))


def _print_bag(result: Any) -> None:
    from archiver.cli.verify import print_findings

    location = one_line(result.location)
    read = f"{result.read_files} read and hashed ({_reasons(result.read)})"
    if not result.ok:
        out.print(f"BAD  {location}: FAILED (server-checksum check): {len(result.problems)} problem(s); "
                  f"{result.attested} files server-attested, {read}", markup=False)
    elif result.attested:
        out.print(f"OK   {location}: server-attested: {result.attested} files by the server's stored SHA-256 "
                  f"(bodies NOT read), {read}", markup=False)
    else:
        out.print(f"OK   {location}: verified by reading (no stored checksum usable): {read}", markup=False)
    print_findings(result.problems, result.warnings)


def _print_summary(site: Any) -> None:
    checks = {True: "yes", False: "NO", None: "unknown"}[site.probe.checks]
    out.print(f"server checks uploaded checksums: {checks} ({one_line(site.probe.message)})", markup=False)
    attested = sum(1 for b in site.bags if b.ok and b.attested)
    by_reading = sum(1 for b in site.bags if b.ok and not b.attested)
    failed = sum(1 for b in site.bags if not b.ok)
    out.print(f"{len(site.bags)} bags: {attested} server-attested, {by_reading} verified by reading, "
              f"{failed} with problems; files: {site.total('attested')} server-attested, "
              f"{site.total('read')} read and hashed ({_reasons(site.read_reasons())})", markup=False)


def verify_server_checksums(paths: list[str], endpoint_url: Optional[str], ca_pem: bytes | None,
                            json_output: bool) -> None:
    """``verify PATH… --server-checksums``: every PATH an s3:// site or bag."""
    from archiver.errors import ArchiverError
    from archiver.exchange.archive_reader import archive_kind
    from archiver.replication import is_s3, open_site
    from archiver.replication.server_fixity import attest_location

    for given in paths:
        if not is_s3(given):
            raise fail(f"--server-checksums needs s3:// locations ({one_line(given)} is not one): "
                       "a local disk keeps no checksums of its own", EXIT_USAGE)
        if archive_kind(given):
            raise fail(f"--server-checksums checks bags stored as objects, not archives ({one_line(given)})",
                       EXIT_USAGE)
    sites: list[Any] = []
    errors: list[dict[str, str]] = []
    for given in paths:
        with errors_to_exit(json_output):
            site = open_site(given, endpoint_url)
        try:
            with progress_bar(f"checking {given}", enabled=not json_output) as on_progress:
                result = attest_location(site, on_progress=on_progress, tsa_ca=ca_pem)
        except ArchiverError as exc:
            if exc.exit_code == EXIT_USAGE:
                raise fail(str(exc), EXIT_USAGE) from None
            errors.append({"path": given, "error": one_line(str(exc))})
            continue
        if not result.bags and not result.errors:
            errors.append({"path": given, "error": f"no bag at or under {given}"})
        errors.extend(result.errors)
        sites.append(result)
        if not json_output:
            for bag in result.bags:
                _print_bag(bag)
            _print_summary(result)
    failed = sum(1 for s in sites for b in s.bags if not b.ok)
    if json_output:
        emit_json({"mode": "server-attested", "method": "server-attested",
                   "sites": [s.to_dict() for s in sites], "errors": errors})
    else:
        for error in errors:
            out.print(f"ERROR {one_line(error['path'])}: could not check: {one_line(error['error'])}", markup=False)
    raise typer.Exit(EXIT_CANNOT_RUN if errors else EXIT_PROBLEMS if failed else EXIT_OK)


def audit_server_checksums(root: str, endpoint_url: Optional[str], age: timedelta, limit: Optional[int],
                           ca_pem: bytes | None, json_output: bool) -> None:
    """``audit --root s3://… --server-checksums``: the S3 site's due bags, server-attested."""
    from archiver.replication import is_s3, open_site
    from archiver.replication.server_fixity import audit_site

    if not is_s3(root):
        raise fail(f"--server-checksums needs an s3:// root ({one_line(root)} is a local folder, "
                   "which keeps no checksums of its own; a plain audit reads and hashes it)", EXIT_USAGE)
    with errors_to_exit(json_output):
        site = open_site(root, endpoint_url)
        with progress_bar("auditing (server checksums)", enabled=not json_output) as on_progress:
            report = audit_site(site, age, limit, on_progress=on_progress, tsa_ca=ca_pem)
    if json_output:
        emit_json(report.to_dict())
    else:
        for bag in report.attestation.bags:
            _print_bag(bag)
        for missing in report.missing:
            out.print(f"MISSING  {missing}: this site's log knows the bag but its objects are gone", markup=False)
        for error in report.attestation.errors:
            out.print(f"ERROR {one_line(error['path'])}: could not check: {one_line(error['error'])}", markup=False)
        out.print(f"audit of {one_line(root)} (--server-checksums): {len(report.skipped)} skipped", markup=False)
        _print_summary(report.attestation)
    if report.attestation.errors and report.clean:
        raise typer.Exit(EXIT_CANNOT_RUN)
    raise typer.Exit(EXIT_OK if report.clean else EXIT_PROBLEMS)
