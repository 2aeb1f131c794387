"""catalog rebuild, list, show, search, history: the catalogue verbs."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from archiver.cli.common import (EXIT_CANNOT_RUN, CollectionRootOption, JsonOption, app, collection_root,
                                 emit_json, endpoint_option, errors_to_exit, event_log_warnings, fail, one_line,
                                 out, warn, progress_bar)


def open_collection_catalog(root: str, endpoint_url: Optional[str], on_progress: Any = None) -> Any:
    """The catalogue of ``--root``: a local folder's, or an S3 collection's local cache
    (brought up to date from S3 first; exit 3 when S3 cannot be read)."""
    from archiver.collection.catalog import open_catalog

    location = collection_root(root)
    if isinstance(location, Path):
        return open_catalog(location, on_progress)
    from archiver.collection.s3root import S3Collection, open_s3_catalog

    return open_s3_catalog(S3Collection(location, endpoint_url), on_progress)


def bag_location(root: str, name: str) -> str:
    location = collection_root(root)
    return str(location / name) if isinstance(location, Path) else f"{location.rstrip('/')}/{name}"


def local_warnings(root: str) -> list[dict[str, Any]]:
    """``event_log_warnings`` of a local root (an S3 log's objects are whole by construction)."""
    location = collection_root(root)
    return event_log_warnings(location) if isinstance(location, Path) else []



catalog_app = typer.Typer(help="The collection's catalogue (.archiver/catalog.sqlite).", no_args_is_help=True)
app.add_typer(catalog_app, name="catalog")


@catalog_app.command("rebuild")
def catalog_rebuild(root: str = CollectionRootOption, endpoint_url: Optional[str] = endpoint_option,
                    json_output: bool = JsonOption) -> None:
    """Rebuild the catalogue from the bags and the event log (of an S3 root: its local cache).

    Example: archiver catalog rebuild --root bags
    """
    from archiver.collection.catalog import rebuild_catalog

    with errors_to_exit(json_output), progress_bar("indexing") as on_progress:
        location = collection_root(root)
        if isinstance(location, Path):
            if not location.is_dir():
                raise fail(f"collection root {location} does not exist", EXIT_CANNOT_RUN)
            report = rebuild_catalog(location, on_progress=on_progress)
        else:
            from archiver.collection.s3root import S3CatalogSource, S3Collection

            collection = S3Collection(location, endpoint_url)
            collection.check_readable()
            report = rebuild_catalog(S3CatalogSource(collection), on_progress=on_progress)
    if json_output:
        emit_json(report.to_dict())
    else:
        out.print(f"catalogue rebuilt: {report.bags} bags, {report.checks} re-checks", markup=False)
    for name, reason in report.damaged:
        warn(one_line(f"damaged bag {name} listed, not indexed: {reason}"))


@app.command("list")
def list_bags(root: str = CollectionRootOption, endpoint_url: Optional[str] = endpoint_option,
              json_output: bool = JsonOption) -> None:
    """List every bag of the collection, oldest capture first.

    Example: archiver list --root bags --json
    """
    with errors_to_exit(json_output), open_collection_catalog(root, endpoint_url) as catalog:
        records = catalog.list_bags()
    warnings = local_warnings(root)
    if json_output:
        emit_json({"root": str(root), "bags": [r.to_dict() for r in records], "warnings": warnings})
        return
    for r in records:
        if r.damaged:
            out.print(one_line(f"{r.name}  DAMAGED: {r.damaged}"), markup=False)
            continue
        out.print(one_line(f"{r.name}  {r.retrieved or '-'}  {r.title or '(untitled)'}  {r.url or ''}"), markup=False)


@app.command()
def show(bag_or_url: str = typer.Argument(..., metavar="BAG-or-URL"), root: str = CollectionRootOption,
         endpoint_url: Optional[str] = endpoint_option, json_output: bool = JsonOption) -> None:
    """Show one bag's catalogue record: by bag name, or the latest capture of a URL.

    Example: archiver show https://theanarchistlibrary.org/library/... --root bags
    """
    with errors_to_exit(json_output), open_collection_catalog(root, endpoint_url) as catalog:
        record = catalog.show(bag_or_url)
    document = {**record.to_dict(), "path": bag_location(root, record.name)}
    if json_output:
        emit_json(document)
        return
    for key, value in document.items():
        if value is not None:
            out.print(one_line(f"{key}: {value}"), markup=False)


@app.command()
def search(query: str, limit: int = typer.Option(20, "--limit", min=1, help="At most N results."),
           root: str = CollectionRootOption, endpoint_url: Optional[str] = endpoint_option,
           json_output: bool = JsonOption) -> None:
    """Full-text search of titles, authors and texts, best match first.

    Words are searched as written (all must match); "a phrase" in double quotes;
    word* for a prefix; OR, NOT and parentheses combine.

    Example: archiver search 'mutual aid' --limit 5 --root bags
    """
    with errors_to_exit(json_output), open_collection_catalog(root, endpoint_url) as catalog:
        hits = catalog.search(query, limit)
    if json_output:
        emit_json({"query": query, "count": len(hits), "results": [h.to_dict() for h in hits]})
        return
    if not hits:
        out.print(one_line(f"no match for {query!r} in {root}"), markup=False)
    for hit in hits:
        out.print(one_line(f"{hit.name}  {hit.title or '(untitled)'}  {hit.url or ''}"), markup=False)
        out.print(f"    {' '.join(hit.snippet.split())}", markup=False)


@app.command()
def history(url: str, root: str = CollectionRootOption, endpoint_url: Optional[str] = endpoint_option,
            json_output: bool = JsonOption) -> None:
    """Every capture and unchanged re-check of a source (and sync's gone/unlisted findings), oldest first.

    Example: archiver history https://theanarchistlibrary.org/library/... --root bags
    """
    from archiver.collection.catalog import NotInCatalog

    with errors_to_exit(json_output), open_collection_catalog(root, endpoint_url) as catalog:
        entries = catalog.history(url)
        if not entries:
            raise NotInCatalog(f"{url!r} was never captured in {root}")
    if json_output:
        emit_json({"url": url, "history": [e.to_dict() for e in entries]})
        return
    for e in entries:
        note = f" ({e.reason})" if e.reason else ""
        out.print(one_line(f"{e.time}  {e.kind:<9}  {e.bag or '-'}{note}"), markup=False)


