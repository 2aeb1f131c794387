"""export: hand captures to other systems (WACZ for replay, OCFL for versioned storage)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from archiver.cli.common import (EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE, JsonOption, RootOption, app, emit_json,
                                 err, errors_to_exit, fail, one_line, out, progress_bar)

FORMATS = ("wacz", "ocfl")


@app.command()
def export(bags: list[str] = typer.Argument(None, metavar="[BAG]...", help="Bag names in the root."),
           all_bags: bool = typer.Option(False, "--all", help="Every bag of the collection."),
           url: Optional[list[str]] = typer.Option(None, "--url", help="Every capture of this source URL "
                                                                       "(repeatable)."),
           root: Path = RootOption,
           out_path: Optional[Path] = typer.Option(None, "--out", help="FILE.wacz, or the OCFL storage root."),
           format_: str = typer.Option(..., "--format", help="wacz or ocfl."),
           json_output: bool = JsonOption) -> None:
    """Export captures for other systems: --format wacz (one WACZ 1.1.1 file for replay
    tools) or --format ocfl (an OCFL 1.1 storage root: one object per URL, one version
    per capture; re-export adds only new versions).

    Exit 0 all exported, 1 some bags could not be exported (the rest were),
    2 usage error, 3 could not write.

    Example: archiver export --all --format wacz --out collection.wacz --root bags
    """
    if format_ not in FORMATS:
        raise fail(f"--format must be one of {', '.join(FORMATS)} (got {format_!r})", EXIT_USAGE)
    if all_bags and (bags or url):
        raise fail("--all takes every bag; give it without BAG names or --url", EXIT_USAGE)
    if not (all_bags or bags or url):
        raise fail("give BAG names, --url URL or --all", EXIT_USAGE)
    if out_path is None:
        raise fail("give --out (a FILE.wacz, or an OCFL storage root folder)", EXIT_USAGE)
    with errors_to_exit(json_output), progress_bar("export", enabled=not json_output) as on_progress:
        if format_ == "wacz":
            from archiver.exchange.wacz import export_wacz
            report = export_wacz(root, list(bags) if bags else None, list(url) if url else None, out_path,
                                 on_progress=on_progress)
        else:
            from archiver.exchange.ocfl import export_ocfl
            report = export_ocfl(root, list(bags) if bags else None, list(url) if url else None, out_path,
                                 on_progress=on_progress)
    code = EXIT_OK if report.ok else EXIT_PROBLEMS
    if json_output:
        emit_json({**report.to_dict(), "exit_code": code})
    else:
        for problem in report.problems:
            err.print(one_line(f"not exported  {problem.path}: {problem.message}"), markup=False)
        if format_ == "wacz":
            out.print(one_line(f"wrote {out_path}: {len(report.pages)} captures, {report.bytes:,} bytes"),
                      markup=False)
        else:
            changed = sum(1 for o in report.objects if o.added)
            out.print(one_line(f"{out_path}: {report.versions_added} versions added to {changed} objects, "
                               f"{len(report.objects) - changed} objects already up to date; "
                               f"{report.files_stored} files "
                               f"stored ({report.bytes_stored:,} bytes), {report.files_deduplicated} "
                               "already held"), markup=False)
    raise typer.Exit(code)
