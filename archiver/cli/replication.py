"""mirror and repair: replication verbs."""

from __future__ import annotations

from typing import Any, Optional

import typer

from archiver.cli.common import (EXIT_OK, EXIT_PROBLEMS, JsonOption, app, collection_root, one_line,
                                 emit_json, endpoint_option, err, errors_to_exit, out, progress_bar)



EndpointOption = endpoint_option
ChecksumOption = typer.Option(
    True, "--s3-checksum-when-required/--s3-checksum-default",
    help="boto3 request_checksum_calculation: 'when_required' (default; works with stores that "
         "reject CRC headers) or boto3's default. Uploads always carry SHA256.")


@app.command()
def mirror(
    root: str = typer.Argument(..., metavar="SOURCE",
                               help="The collection root to mirror: a directory, or s3://bucket/prefix "
                                    "(its complete bags only)."),
    target: str = typer.Argument(..., help="A directory, or s3://bucket/prefix."),
    verify: bool = typer.Option(True, "--verify/--no-verify",
                                help="Read every file back and hash it against the manifest (default)."),
    endpoint_url: Optional[str] = EndpointOption,
    checksum_when_required: bool = ChecksumOption,
    workers: int = typer.Option(4, "--workers", min=1, help="Bags mirrored at once."),
    wait: float = typer.Option(0.0, "--wait", min=0, metavar="SECONDS",
                               help="If another mirror to TARGET is running, wait up to this long "
                                    "for it (default: exit 3 at once)."),
    json_output: bool = JsonOption,
) -> None:
    """Mirror every bag of SOURCE to TARGET: incremental, verified, resumable.

    Example: archiver mirror bags s3://library-b/texts --endpoint-url http://127.0.0.1:8333
    """
    from archiver.replication import mirror_collection, open_site
    from archiver.replication.lock import describe

    with errors_to_exit(json_output):
        where = open_site(target, endpoint_url, checksum_when_required)
        location = collection_root(root)
        if isinstance(location, str):
            from archiver.replication.s3source import open_mirror_source

            source: Any = open_mirror_source(location, endpoint_url)
        else:
            source = location
        with progress_bar("mirror", enabled=not json_output) as on_progress:
            report = mirror_collection(
                source, where, verify=verify, workers=workers, on_progress=on_progress, wait=wait,
                on_wait=lambda h: err.print(f"waiting up to {wait:g}s for the mirror run of "
                                            f"{describe(h)}", markup=False))
    summary = report.to_dict()
    code = EXIT_OK if report.ok else EXIT_PROBLEMS
    if json_output:
        emit_json({**summary, "exit_code": code})
    else:
        if report.lock_taken_over:
            err.print(f"warning: took over a stale mirror lock ({describe(report.lock_taken_over)})",
                      markup=False)
        for result in report.bags:
            if result.status == "failed":
                err.print(one_line(f"failed      {result.bag}: {result.error}"), markup=False)
                for fault in result.faults[:5]:
                    err.print(one_line(f"            {fault.message}"), markup=False)
            elif result.status != "present":
                out.print(one_line(f"{result.status:<11} {result.bag} ({result.files_sent} files, "
                                   f"{result.bytes_sent} bytes sent)"), markup=False)
        out.print(f"{summary['mirrored']} mirrored, {summary['present']} already present, "
                  f"{summary['unverified']} copied unverified, {summary['failed']} failed; "
                  f"{summary['files_copied']} files ({summary['bytes_copied']} bytes) sent to "
                  f"{report.target}", markup=False)
    raise typer.Exit(code)


@app.command()
def repair(
    target: str = typer.Argument(..., help="The damaged copy: a collection root or bag, directory or s3://."),
    source: str = typer.Option(..., "--from", help="A good copy: collection root or bag, directory or s3://."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan; change nothing."),
    endpoint_url: Optional[str] = EndpointOption,
    checksum_when_required: bool = ChecksumOption,
    json_output: bool = JsonOption,
) -> None:
    """Restore damaged files of bags at TARGET from a copy that matches the manifest.

    Example: archiver repair s3://library-b/texts --from bags --dry-run
    """
    from archiver.replication.repair import repair as run_repair

    with errors_to_exit(json_output):
        with progress_bar("repair", enabled=not json_output) as on_progress:
            report = run_repair(target, source, dry_run=dry_run, endpoint_url=endpoint_url,
                                checksum_when_required=checksum_when_required, on_progress=on_progress)
    code = EXIT_OK if report.ok else EXIT_PROBLEMS
    if json_output:
        emit_json({**report.to_dict(), "exit_code": code})
    else:
        for result in report.bags:
            if result.status == "intact":
                continue
            line = f"{result.status:<13} {result.bag}"
            if result.replaced:
                line += f": {', '.join(result.replaced)}"
            if result.message:
                line += f" ({result.message})"
            (out if result.status in ("repaired", "would-repair") else err).print(one_line(line), markup=False)
        counts = report.to_dict()["counts"]
        out.print(", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "no bags",
                  markup=False)
    raise typer.Exit(code)

