"""export and ingest: bags out to other libraries' systems, and theirs in."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Optional

import typer

from archiver.cli.common import (EXIT_CANNOT_RUN, EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE, JsonOption, RootOption, app,
                                 emit_json, err, errors_to_exit, fail, one_line, out, progress_bar)

_ARCHIVE_FORMATS = ("tar", "tar.gz", "zip")
_OTHER_FORMATS = {"wacz": "export_wacz", "ocfl": "export_ocfl"}


def _parse_tags(tags: list[str]) -> dict[str, str]:
    parsed = {}
    for tag in tags:
        label, eq, value = tag.partition("=")
        if not eq or not label.strip():
            raise fail(f"--tag {tag!r} is not LABEL=VALUE", EXIT_USAGE)
        parsed[label.strip()] = value.strip()
    return parsed


def _bag_dirs(root: Path, bags: list[str], all_bags: bool) -> list[Path]:
    from archiver.collection.root import list_bag_dirs

    if all_bags:
        if not root.is_dir():
            raise fail(f"collection root {root} does not exist", EXIT_CANNOT_RUN)
        return list_bag_dirs(root)
    found = []
    for bag in bags:
        path = Path(bag)
        if not path.exists() and (root / bag).exists():
            path = root / bag
        if not (path / "bagit.txt").is_file():
            raise fail(f"{bag} is not a bag folder", EXIT_USAGE)
        found.append(path)
    return found


@app.command()
def export(
    bags: Optional[list[str]] = typer.Argument(None, metavar="BAG...", help="Bag folders (or names under --root)."),
    all_bags: bool = typer.Option(False, "--all", help="Every bag of the collection."),
    urls: Optional[list[str]] = typer.Option(None, "--url", help="(wacz, ocfl) the captures of this URL. Repeatable."),
    root: Path = RootOption,
    out_dir: Path = typer.Option(..., "--out", help="Output folder (tar, tar.gz, zip, ocfl) or .wacz file."),
    fmt: str = typer.Option(..., "--format", help="tar, tar.gz, zip, wacz or ocfl."),
    profile: Optional[list[str]] = typer.Option(None, "--profile", metavar="NAME|FILE",
                                                help="Make a derived bag meeting this BagIt profile "
                                                     "(aptrust, btr, rfc8493 or a JSON file)."),
    tags: Optional[list[str]] = typer.Option(None, "--tag", metavar="LABEL=VALUE",
                                             help="A tag value a profile requires (e.g. Access=Institution)."),
    json_output: bool = JsonOption,
) -> None:
    """Serialise bags (one archive per bag), or export them as WACZ or OCFL.

    Example: archiver export --all --root bags --format tar --out outgoing/
    or: archiver export essay-20261125T093000Z --format tar --profile aptrust --tag Access=Institution
        --tag Storage-Option=Standard --out outgoing/
    Exit 0 all exported, 1 a bag failed, 2 usage (missing profile values), 3 could not run.
    """
    bags = bags or []
    if fmt in _OTHER_FORMATS:
        _export_other(fmt, root, bags, all_bags, urls or [], out_dir, json_output)
        return
    if fmt not in _ARCHIVE_FORMATS:
        raise fail(f"--format {fmt!r}: use tar, tar.gz, zip, wacz or ocfl", EXIT_USAGE)
    if urls:
        raise fail("--url is for --format wacz or ocfl", EXIT_USAGE)
    if bool(bags) == all_bags:
        raise fail("give BAG... or --all (not both)", EXIT_USAGE)
    from archiver.exchange.exporting import export_bags
    from archiver.exchange.profiles import load_profile

    with errors_to_exit(json_output):
        profiles = [load_profile(p) for p in profile or []]
        folders = _bag_dirs(root, bags, all_bags)
        with progress_bar("exporting", enabled=not json_output) as on_progress:
            report = export_bags(folders, out_dir, fmt, profiles, _parse_tags(tags or []), on_progress)
    if json_output:
        emit_json(report.to_dict())
    else:
        for result in report.results:
            line = f"{result.status:9} {one_line(result.bag)} -> {one_line(str(result.archive))}"
            if result.derived_from:
                line += f" (derived from {one_line(result.derived_from)})"
            out.print(line, markup=False)
            for problem in result.problems[:20]:
                out.print(f"          {problem['code']}  {one_line(problem['path'])}: {one_line(problem['message'])}",
                          markup=False)
    raise typer.Exit(EXIT_OK if report.ok else EXIT_PROBLEMS)


def _export_other(fmt: str, root: Path, bags: list[str], all_bags: bool, urls: list[str], out_dir: Path,
                  json_output: bool) -> None:
    try:
        module = importlib.import_module(f"archiver.exchange.{fmt}")
        run = getattr(module, _OTHER_FORMATS[fmt])
    except (ImportError, AttributeError):
        raise fail(f"--format {fmt}: format not available in this build of archiver", EXIT_USAGE) from None
    if not (bags or all_bags or urls):
        raise fail("give BAG..., --url URL or --all", EXIT_USAGE)
    with errors_to_exit(json_output):
        with progress_bar(f"exporting {fmt}", enabled=not json_output) as on_progress:
            if all_bags:  # every bag of the collection, as absolute paths (root / path == path)
                from archiver.collection.root import list_bag_dirs
                bags = [str(p.resolve()) for p in list_bag_dirs(root)] if root.is_dir() else []
            report = run(root, bags, urls, out_dir, on_progress)
    document = report.to_dict()
    if json_output:
        emit_json(document)
    else:
        out.print(f"{fmt} export to {out_dir}: {'ok' if report.ok else 'FAILED'}", markup=False)
    raise typer.Exit(EXIT_OK if report.ok else EXIT_PROBLEMS)


@app.command()
def ingest(
    sources: list[str] = typer.Argument(..., metavar="PATH...",
                                        help="Bag folders, .tar/.tar.gz/.zip bags, folders of them, or s3://."),
    root: Path = RootOption,
    profile: Optional[list[str]] = typer.Option(None, "--profile", metavar="NAME|FILE",
                                                help="Also require this BagIt profile."),
    endpoint_url: Optional[str] = typer.Option(None, "--endpoint-url", envvar="ARCHIVER_S3_ENDPOINT_URL",
                                               help="S3 endpoint for s3:// sources."),
    json_output: bool = JsonOption,
) -> None:
    """Take in bags made elsewhere: verified in full first; invalid bags are refused, nothing added.

    Example: archiver ingest incoming/partner-0001.tar --root bags --profile btr
    Exit 0 all ingested or present, 1 a bag refused or failed, 2 usage, 3 could not run.
    """
    from archiver.exchange.ingest import ingest as run_ingest
    from archiver.exchange.profiles import load_profile

    with errors_to_exit(json_output):
        profiles = [load_profile(p) for p in profile or []]
        with progress_bar("ingesting", enabled=not json_output) as on_progress:
            report = run_ingest(root, sources, profiles, endpoint_url, on_progress)
    if json_output:
        emit_json(report.to_dict())
    else:
        for result in report.results:
            out.print(f"{result.status:9} {one_line(result.source)}"
                      + (f" -> {one_line(result.bag)}" if result.bag else ""), markup=False)
            if result.error:
                err.print(f"          {one_line(result.error)}", markup=False)
            for problem in result.problems[:50]:
                out.print(f"          {problem['code']}  {one_line(problem['path'])}: {one_line(problem['message'])}",
                          markup=False)
    raise typer.Exit(EXIT_OK if report.ok else EXIT_PROBLEMS)

