"""snapshot, extract and rebuild: the capture verbs."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Optional

import typer

from archiver.cli.common import (EXIT_CANNOT_RUN, EXIT_OK, EXIT_USAGE, JsonOption, RootOption, RootOrS3Option, app,
                                 bag_location, emit_json, endpoint_option, err, error_line, errors_to_exit, fail,
                                 one_line, out, progress_bar, writable_root)
from archiver.cli.trust import TimestampUrlOption
from archiver.errors import ArchiverError




@app.command()
def snapshot(
    sources: list[str] = typer.Argument(None, help="http(s) URLs, local HTML files, or file:// URLs."),
    manifest: Optional[Path] = typer.Option(None, "--manifest", "-m", help="A collection manifest (TOML)."),
    root: str = RootOrS3Option,
    endpoint_url: Optional[str] = endpoint_option,
    organization: Optional[str] = typer.Option(None, "--organization", help="Source-Organization for bag-info.txt."),
    collection: Optional[str] = typer.Option(None, "--collection", help="Collection id (Bag-Group-Identifier)."),
    delay: float = typer.Option(1.0, "--delay", min=0.0, help="Minimum seconds between requests to one host."),
    ignore_robots: bool = typer.Option(False, "--ignore-robots", help="Do not obey robots.txt."),
    user_agent: Optional[str] = typer.Option(None, "--user-agent", help="User-Agent header to send."),
    max_bytes: int = typer.Option(50 * 1024 * 1024, "--max-bytes", min=1, help="Body size cap (bytes)."),
    timeout: float = typer.Option(30.0, "--timeout", min=0.1, help="Read timeout in seconds."),
    retries: int = typer.Option(3, "--retries", min=0, help="Retries on 429/5xx and connection errors."),
    force: bool = typer.Option(False, "--force", help="Make a new bag even if the text is unchanged."),
    with_attachments: bool = typer.Option(False, "--with-attachments",
                                          help="Also capture the download formats a page offers (PDF, EPUB, .muse)."),
    attachment_max_bytes: int = typer.Option(100 * 1024 * 1024, "--attachment-max-bytes", min=1,
                                              help="Size cap for each attachment (bytes)."),
    from_warc: Optional[Path] = typer.Option(None, "--from-warc",
                                             help="Make bags from the HTML responses of an existing WARC; "
                                                  "SOURCE arguments are then URL filters (regular expressions)."),
    timestamp_url: Optional[str] = TimestampUrlOption,
    json_output: bool = JsonOption,
) -> None:
    """Fetch sources, record them as WARC, extract canonical text, and bag each capture.

    Example: archiver snapshot --manifest manifests/example.toml --root bags
    (or --root s3://bucket/prefix, a collection on object storage)
    """
    from archiver.capture.fetch import FetchSettings
    from archiver.capture.sources import check_source_url, load_manifest
    from archiver.capture.snapshot import SnapshotOptions, snapshot as run_snapshot

    with errors_to_exit(json_output):
        all_sources = list(sources or [])
        collection_id, org = collection, organization
        if from_warc is not None and manifest is not None:
            raise fail("--from-warc and --manifest cannot be combined", EXIT_USAGE)
        if from_warc is None:
            for source in all_sources:  # a malformed URL or one with a password: nothing runs
                check_source_url(source)
        if manifest is not None:
            loaded = load_manifest(manifest)
            all_sources += loaded.sources
            collection_id = collection_id or loaded.collection_id
            org = org or loaded.organization
            timestamp_url = timestamp_url or loaded.timestamp_url
        if not all_sources and from_warc is None:
            raise fail("give at least one SOURCE, --manifest FILE or --from-warc FILE", EXIT_USAGE)
        settings = FetchSettings(delay=delay, obey_robots=not ignore_robots, max_bytes=max_bytes,
                                 read_timeout=timeout, retries=retries)
        if user_agent:
            settings.user_agent = user_agent
        with writable_root(root, endpoint_url) as local_root, \
                progress_bar("snapshot", enabled=not json_output) as on_progress:
            options = SnapshotOptions(root=local_root, organization=org or "archiver", collection_id=collection_id,
                                      fetch=settings, force=force, with_attachments=with_attachments,
                                      attachment_max_bytes=attachment_max_bytes, timestamp_url=timestamp_url)
            if from_warc is not None:
                from archiver.capture.warc_import import snapshot_from_warc
                results = snapshot_from_warc(from_warc, all_sources, options, on_progress=on_progress)
            else:
                results = run_snapshot(all_sources, options, on_progress=on_progress)
    worst = max((r.exit_code for r in results), default=EXIT_OK)
    counts = {k: sum(r.outcome == k for r in results) for k in ("captured", "unchanged", "failed")}
    if json_output:
        emit_json({"root": str(root), "sources": [r.to_dict() for r in results], **counts,
                   "exit_code": worst})
    else:
        for r in results:
            if r.outcome == "captured":
                out.print(one_line(f"captured   {r.source} -> {bag_location(root, str(r.bag))}"), markup=False)
                if r.timestamp and not r.timestamp["stamped"]:
                    err.print(one_line(f"unstamped  {r.bag}: {r.timestamp['reason']}"), markup=False)
            elif r.outcome == "unchanged":
                out.print(one_line(f"unchanged  {r.source} ({r.reason}; last bag {r.bag})"), markup=False)
            else:
                err.print(one_line(f"failed     {r.source}: {r.reason}"), markup=False)
        out.print(f"{counts['captured']} captured, {counts['unchanged']} unchanged, "
                  f"{counts['failed']} failed", markup=False)
    raise typer.Exit(worst)




def _extract_one(page: Path, url: Optional[str]) -> tuple[dict[str, Any], int]:
    """One saved page → (JSON object, exit code). Never raises ArchiverError."""
    from archiver.capture.charset import decode_document
    from archiver.capture.extract import extract_html

    try:
        body = page.read_bytes()
    except OSError as exc:
        return {"path": str(page), "error": f"cannot read {page}: {exc.strerror or exc}",
                "exit_code": EXIT_CANNOT_RUN}, EXIT_CANNOT_RUN
    text, charset, how = decode_document(body, None)
    try:
        extraction = extract_html(text, url=url)
    except ArchiverError as exc:
        return {"path": str(page), "error": f"{page}: {exc}", "exit_code": exc.exit_code}, exc.exit_code
    return {"path": str(page), **extraction.text.to_dict(), "text": extraction.text.render(),
            "extractor": extraction.extractor, "extractor_version": extraction.extractor_version,
            "links": extraction.links, "charset": charset, "charset_source": how, "date_iso": extraction.date_iso}, EXIT_OK


@app.command("extract")
def extract_command(
    pages: list[Path] = typer.Argument(..., help="Saved HTML pages.", show_default=False),
    url: Optional[str] = typer.Option(
        None, "--url", help="The page's URL: makes links absolute and gives the retrieval Source line."),
    json_output: bool = JsonOption,
) -> None:
    """Extract the canonical text of saved HTML pages (snapshot's extraction step alone).

    Prints the canonical text; several pages are each introduced by a
    "==> PAGE <==" line. With --json: one object per page (a list for several)
    with path, title, subtitle, author, date, source, body, text, extractor.
    Exit 1 when a page yields no text, 3 when a page cannot be read,
    2 when --url is given with several pages.

    Example: archiver extract saved/essay.html --url https://example.org/essay --json
    """
    if url is not None and len(pages) > 1:
        raise fail("--url names one page's address; give it with a single PAGE", EXIT_USAGE)
    if url is not None:
        from archiver.capture.sources import check_source_url

        with errors_to_exit(json_output):
            check_source_url(url)  # the Source line of the text must never carry a password
    results = [_extract_one(page, url) for page in pages]
    for document, code in results:
        if code != EXIT_OK:
            error_line(document["error"])
    if json_output:
        documents = [document for document, _ in results]
        emit_json(documents[0] if len(documents) == 1 else documents)
    else:
        for document, code in results:
            if code != EXIT_OK:
                continue
            if len(results) > 1:
                sys.stdout.write(f"==> {document['path']} <==\n")
            sys.stdout.write(document["text"])
            if len(results) > 1 and document is not results[-1][0]:
                sys.stdout.write("\n")
        sys.stdout.flush()
    worst = max(code for _, code in results)
    if worst != EXIT_OK:
        raise typer.Exit(worst)


@app.command()
def rebuild(bags: list[str] = typer.Argument(None, metavar="[BAG]...", help="Bag names (or paths) in the root."),
            all_bags: bool = typer.Option(False, "--all", help="Every bag of the collection."),
            root: Path = RootOption, json_output: bool = JsonOption) -> None:
    """Re-derive bags' text offline from their own capture.warc.gz with the current extractors.

    A changed text makes a NEW bag that records which bag and extractor version
    it was derived from; an unchanged text makes nothing.

    Example: archiver rebuild --all --root bags
    """
    from archiver.capture.rebuild import rebuild_bags

    if bool(bags) == all_bags:
        raise fail("give one or more BAG names, or --all (not both)", EXIT_USAGE)
    with errors_to_exit(json_output), progress_bar("rebuild", enabled=not json_output) as on_progress:
        if not root.is_dir():
            raise fail(f"collection root {root} does not exist", EXIT_CANNOT_RUN)
        results = rebuild_bags(root, None if all_bags else list(bags), on_progress=on_progress)
    worst = max((r.exit_code for r in results), default=EXIT_OK)
    counts = {k: sum(r.outcome == k for r in results) for k in ("rebuilt", "unchanged", "failed")}
    if json_output:
        emit_json({"root": str(root), "results": [r.to_dict() for r in results], **counts, "exit_code": worst})
    else:
        for r in results:
            if r.outcome == "failed":
                err.print(one_line(f"failed     {r.bag}: {r.reason}"), markup=False)
            else:
                detail = f" -> {r.new_bag}" if r.outcome == "rebuilt" else f" ({r.reason})"
                out.print(f"{r.outcome:<10} {r.bag}{detail}", markup=False)
        out.print(f"{counts['rebuilt']} rebuilt, {counts['unchanged']} unchanged, {counts['failed']} failed",
                  markup=False)
    raise typer.Exit(worst)
