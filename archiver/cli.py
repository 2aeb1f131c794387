"""The ``archiver`` command line. The only module that imports typer and rich.

Every command opens its inputs, makes one library call, and turns archiver's
exceptions into a one-line message on stderr and an exit code:
0 all good · 1 ran and found problems · 2 usage error · 3 could not run.
With ``--json`` a command prints exactly one JSON document on stdout.
"""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from archiver import __version__
from archiver.errors import ArchiverError

app = typer.Typer(
    name="archiver",
    help="Snapshot texts from the web into verified BagIt bags; verify, audit, mirror and repair collections.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Help texts are plain: "s3://bucket/prefix[/bag]" must not be read as rich markup.
    rich_markup_mode=None,
)

err = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)

EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE, EXIT_CANNOT_RUN = 0, 1, 2, 3

RootOption = typer.Option(
    Path("bags"), "--root", envvar="ARCHIVER_ROOT", help="Collection root (env ARCHIVER_ROOT).",
    file_okay=True, dir_okay=True,
)
JsonOption = typer.Option(False, "--json", help="Print one JSON document on stdout.")


def version_callback(value: bool) -> None:
    if value:
        typer.echo(f"archiver {__version__}")
        raise typer.Exit(EXIT_OK)


@app.callback()
def main(
    version: bool = typer.Option(False, "--version", callback=version_callback, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """archiver: capture, verify, audit, mirror and repair collections of texts."""


def emit_json(document: Any) -> None:
    """Print one JSON document on stdout."""
    sys.stdout.write(json.dumps(document, ensure_ascii=False, indent=2, default=str) + "\n")
    sys.stdout.flush()


def fail(message: str, code: int) -> "typer.Exit":
    """Print a one-line error on stderr and return the Exit to raise."""
    err.print(f"archiver: error: {message}", markup=False)
    return typer.Exit(code)


@contextmanager
def errors_to_exit(json_output: bool = False) -> Iterator[None]:
    """Turn ArchiverError into a one-line message and its exit code."""
    try:
        yield
    except ArchiverError as exc:
        if json_output:
            emit_json({"error": str(exc), "exit_code": exc.exit_code})
        raise fail(str(exc), exc.exit_code) from None


@contextmanager
def progress_bar(label: str, enabled: bool = True) -> Iterator[Callable[..., None]]:
    """Yield an ``on_progress(done, total, detail="")`` callback; a rich bar on
    stderr only when stderr is a terminal."""
    if not (enabled and sys.stderr.isatty()):
        yield lambda *args, **kwargs: None
        return
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn(), console=err, transient=True) as progress:
        task = progress.add_task(label, total=None)

        def on_progress(done: int, total: Optional[int] = None, detail: str = "") -> None:
            progress.update(task, completed=done, total=total,
                            description=f"{label} {detail}".strip())

        yield on_progress


# ---------------------------------------------------------------------------
# snapshot (lead)
# ---------------------------------------------------------------------------


@app.command()
def snapshot(
    sources: list[str] = typer.Argument(None, help="http(s) URLs, local HTML files, or file:// URLs."),
    manifest: Optional[Path] = typer.Option(None, "--manifest", "-m", help="A collection manifest (TOML)."),
    root: Path = RootOption,
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
    json_output: bool = JsonOption,
) -> None:
    """Fetch sources, record them as WARC, extract canonical text, and bag each capture.

    Example: archiver snapshot --manifest manifests/example.toml --root bags
    """
    from archiver.capture.fetch import FetchSettings
    from archiver.capture.sources import load_manifest
    from archiver.capture.snapshot import SnapshotOptions, snapshot as run_snapshot

    with errors_to_exit(json_output):
        all_sources = list(sources or [])
        collection_id, org = collection, organization
        if from_warc is not None and manifest is not None:
            raise fail("--from-warc and --manifest cannot be combined", EXIT_USAGE)
        if manifest is not None:
            loaded = load_manifest(manifest)
            all_sources += loaded.sources
            collection_id = collection_id or loaded.collection_id
            org = org or loaded.organization
        if not all_sources and from_warc is None:
            raise fail("give at least one SOURCE, --manifest FILE or --from-warc FILE", EXIT_USAGE)
        settings = FetchSettings(delay=delay, obey_robots=not ignore_robots, max_bytes=max_bytes,
                                 read_timeout=timeout, retries=retries)
        if user_agent:
            settings.user_agent = user_agent
        options = SnapshotOptions(root=root, organization=org or "archiver", collection_id=collection_id,
                                  fetch=settings, force=force, with_attachments=with_attachments,
                                  attachment_max_bytes=attachment_max_bytes)
        with progress_bar("snapshot", enabled=not json_output) as on_progress:
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
                out.print(f"captured   {r.source} -> {root / r.bag}", markup=False)
            elif r.outcome == "unchanged":
                out.print(f"unchanged  {r.source} ({r.reason}; last bag {r.bag})", markup=False)
            else:
                err.print(f"failed     {r.source}: {r.reason}", markup=False)
        out.print(f"{counts['captured']} captured, {counts['unchanged']} unchanged, "
                  f"{counts['failed']} failed", markup=False)
    raise typer.Exit(worst)

# ---------------------------------------------------------------------------
# extract (extraction helper)
# ---------------------------------------------------------------------------


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
            "links": extraction.links, "charset": charset, "charset_source": how}, EXIT_OK


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
    results = [_extract_one(page, url) for page in pages]
    for document, code in results:
        if code != EXIT_OK:
            err.print(f"archiver: error: {document['error']}", markup=False)
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

# ---------------------------------------------------------------------------
# verify, audit (verify helper)
# ---------------------------------------------------------------------------

_MODE_LABELS = {
    "full": ("valid: every checksum verified", "INVALID"),
    "fast": ("Payload-Oxum matches (--fast: counts and sizes only, checksums NOT checked)",
             "Payload-Oxum check FAILED (--fast: checksums NOT checked)"),
    "completeness": ("complete (--completeness-only: every file present and listed, checksums NOT checked)",
                     "INCOMPLETE or malformed (--completeness-only: checksums NOT checked)"),
}


def one_line(text: str) -> str:
    """Escape line breaks and other control characters, so a hostile file name
    can never print a line of its own (a forged "OK" verdict, say)."""
    return "".join(ch if ch.isprintable() or ch == " " else ascii(ch)[1:-1] for ch in str(text))


def _print_bag_report(report: Any) -> None:
    good, bad = _MODE_LABELS[report.mode]
    version = f", BagIt {report.version}" if report.version else ""
    location = one_line(report.location)
    if report.valid:
        out.print(f"OK   {location}: {good} ({report.files} files, {report.bytes} bytes{version})",
                  markup=False)
    else:
        out.print(f"BAD  {location}: {bad}: {len(report.problems)} problem(s){version}", markup=False)
    for problem in report.problems:
        out.print(f"     error    {problem.code}  {one_line(problem.path)}: {one_line(problem.message)}",
                  markup=False)
    for warning in report.warnings:
        out.print(f"     warning  {warning.code}  {one_line(warning.path)}: {one_line(warning.message)}",
                  markup=False)


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
    endpoint_url: Optional[str] = typer.Option(None, "--endpoint-url", envvar="ARCHIVER_S3_ENDPOINT_URL",
                                               help="S3 endpoint for s3:// paths (SeaweedFS, Ceph RGW, MinIO)."),
    json_output: bool = JsonOption,
) -> None:
    """Verify bags strictly by RFC 8493 (BagIt 0.93 - 1.0); report every problem, by file.

    Example: ``archiver verify bags/`` or ``archiver verify --fast bags/essay-20261125T093000Z``.
    Exit 0 all valid (warnings allowed), 1 any invalid, 3 a path could not be read.
    """
    from archiver.errors import ArchiverError
    from archiver.bagit.verify import find_bags, verify_bag

    if fast and completeness_only:
        raise fail("--fast and --completeness-only exclude each other", EXIT_USAGE)
    mode = "fast" if fast else "completeness" if completeness_only else "full"
    reports: list[Any] = []
    errors: list[dict[str, str]] = []

    def could_not_read(path: Any, message: str) -> None:
        errors.append({"path": str(path), "error": message})
        err.print(f"archiver: error: {message}", markup=False)

    for given in paths:
        try:
            if given.startswith("s3://"):
                from archiver.replication import open_bag_readers
                bags: list[Any] = list(open_bag_readers(given, endpoint_url))
            elif not Path(given).exists():
                could_not_read(Path(given), f"{given} does not exist")
                continue
            else:
                bags = find_bags(Path(given))
        except ArchiverError as exc:
            could_not_read(Path(given), str(exc))
            continue
        if not bags:
            could_not_read(Path(given), f"no bag at or under {given}")
            continue
        for bag in bags:
            label = getattr(bag, "name", None) or str(getattr(bag, "location", bag)).rsplit("/", 1)[-1]
            try:
                with progress_bar(f"verifying {label}", enabled=not json_output) as on_progress:
                    report = verify_bag(bag, mode, processes, on_progress)
            except ArchiverError as exc:
                could_not_read(bag, str(exc))
                continue
            reports.append(report)
            if not json_output:
                _print_bag_report(report)
    invalid = sum(1 for r in reports if not r.valid)
    if json_output:
        emit_json({"mode": mode, "bags": [r.to_dict() for r in reports], "errors": errors})
    elif len(reports) > 1:
        word = {"full": "valid", "fast": "Payload-Oxum OK (--fast)",
                "completeness": "complete (--completeness-only)"}[mode]
        out.print(f"{len(reports)} bags: {len(reports) - invalid} {word}, {invalid} with problems", markup=False)
    raise typer.Exit(EXIT_CANNOT_RUN if errors else EXIT_PROBLEMS if invalid else EXIT_OK)


@app.command()
def audit(
    root: Path = RootOption,
    max_age: str = typer.Option("90d", "--max-age", help="Re-verify bags not checked for this long (90d, 12h, 2w)."),
    limit: Optional[int] = typer.Option(None, "--limit", min=0, help="Verify at most N bags this run."),
    processes: Optional[int] = typer.Option(None, "--processes", min=1, help="Hashing processes per bag."),
    json_output: bool = JsonOption,
) -> None:
    """Fully verify the bags least recently checked, log a fixity event for each, print one summary.

    Example: ``archiver audit --root bags --max-age 90d --limit 500``.
    Exit 0 all checked bags valid and none missing, 1 a bag failed or vanished, 3 could not run.
    """
    from archiver.collection.audit import audit_collection, parse_max_age

    with errors_to_exit(json_output):
        age = parse_max_age(max_age)
        with progress_bar("auditing", enabled=not json_output) as on_progress:
            report = audit_collection(root, age, limit, processes, on_progress=on_progress)
    if json_output:
        emit_json(report.to_dict())
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
            out.print(f"MISSING  {bag}: the event log knows this bag but its folder is gone", markup=False)
    raise typer.Exit(EXIT_OK if report.clean else EXIT_PROBLEMS)

# ---------------------------------------------------------------------------
# mirror, repair (mirror helper)
# ---------------------------------------------------------------------------

EndpointOption = typer.Option(None, "--endpoint-url", envvar="ARCHIVER_S3_ENDPOINT_URL",
                              help="S3 endpoint for non-AWS stores (SeaweedFS, Ceph RGW, MinIO).")
ChecksumOption = typer.Option(
    True, "--s3-checksum-when-required/--s3-checksum-default",
    help="boto3 request_checksum_calculation: 'when_required' (default; works with stores that "
         "reject CRC headers) or boto3's default. Uploads always carry SHA256.")


@app.command()
def mirror(
    root: Path = typer.Argument(..., help="The collection root to mirror."),
    target: str = typer.Argument(..., help="A directory, or s3://bucket/prefix."),
    verify: bool = typer.Option(True, "--verify/--no-verify",
                                help="Read every file back and hash it against the manifest (default)."),
    endpoint_url: Optional[str] = EndpointOption,
    checksum_when_required: bool = ChecksumOption,
    workers: int = typer.Option(4, "--workers", min=1, help="Bags mirrored at once."),
    json_output: bool = JsonOption,
) -> None:
    """Mirror every bag of ROOT to TARGET: incremental, verified, resumable.

    Example: archiver mirror bags s3://library-b/texts --endpoint-url http://127.0.0.1:8333
    """
    from archiver.replication import mirror_collection, open_target

    with errors_to_exit(json_output):
        where = open_target(target, endpoint_url, checksum_when_required)
        with progress_bar("mirror", enabled=not json_output) as on_progress:
            report = mirror_collection(root, where, verify=verify, workers=workers,
                                       on_progress=on_progress)
    summary = report.to_dict()
    code = EXIT_OK if report.ok else EXIT_PROBLEMS
    if json_output:
        emit_json({**summary, "exit_code": code})
    else:
        for result in report.bags:
            if result.status == "failed":
                err.print(f"failed      {result.bag}: {result.error}", markup=False)
                for fault in result.faults[:5]:
                    err.print(f"            {fault.message}", markup=False)
            elif result.status != "present":
                out.print(f"{result.status:<11} {result.bag} ({result.files_sent} files, "
                          f"{result.bytes_sent} bytes sent)", markup=False)
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
    from archiver.replication import is_s3, make_client
    from archiver.replication.repair import repair as run_repair

    with errors_to_exit(json_output):
        client = (make_client(endpoint_url, checksum_when_required)
                  if is_s3(target) or is_s3(source) else None)
        with progress_bar("repair", enabled=not json_output) as on_progress:
            report = run_repair(target, source, dry_run=dry_run, client=client,
                                on_progress=on_progress)
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
            (out if result.status in ("repaired", "would-repair") else err).print(line, markup=False)
        counts = report.to_dict()["counts"]
        out.print(", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "no bags",
                  markup=False)
    raise typer.Exit(code)

# ---------------------------------------------------------------------------
# catalog, list, show, search, history, rebuild (catalogue helper)
# ---------------------------------------------------------------------------

catalog_app = typer.Typer(help="The collection's catalogue (.archiver/catalog.sqlite).", no_args_is_help=True)
app.add_typer(catalog_app, name="catalog")


@catalog_app.command("rebuild")
def catalog_rebuild(root: Path = RootOption, json_output: bool = JsonOption) -> None:
    """Rebuild the catalogue from the bags and the event log.

    Example: archiver catalog rebuild --root bags
    """
    from archiver.collection.catalog import rebuild_catalog

    with errors_to_exit(json_output), progress_bar("indexing") as on_progress:
        if not root.is_dir():
            raise fail(f"collection root {root} does not exist", EXIT_CANNOT_RUN)
        report = rebuild_catalog(root, on_progress=on_progress)
    if json_output:
        emit_json(report.to_dict())
    else:
        out.print(f"catalogue rebuilt: {report.bags} bags, {report.checks} re-checks", markup=False)
    for name, reason in report.skipped or []:
        err.print(f"archiver: warning: skipped {name}: {reason}", markup=False)


@app.command("list")
def list_bags(root: Path = RootOption, json_output: bool = JsonOption) -> None:
    """List every bag of the collection, oldest capture first.

    Example: archiver list --root bags --json
    """
    from archiver.collection.catalog import open_catalog

    with errors_to_exit(json_output), open_catalog(root) as catalog:
        records = catalog.list_bags()
    if json_output:
        emit_json({"root": str(root), "bags": [r.to_dict() for r in records]})
        return
    for r in records:
        out.print(f"{r.name}  {r.retrieved or '-'}  {r.title or '(untitled)'}  {r.url or ''}", markup=False)


@app.command()
def show(bag_or_url: str = typer.Argument(..., metavar="BAG-or-URL"), root: Path = RootOption,
         json_output: bool = JsonOption) -> None:
    """Show one bag's catalogue record: by bag name, or the latest capture of a URL.

    Example: archiver show https://theanarchistlibrary.org/library/... --root bags
    """
    from archiver.collection.catalog import open_catalog

    with errors_to_exit(json_output), open_catalog(root) as catalog:
        record = catalog.show(bag_or_url)
    document = {**record.to_dict(), "path": str(root / record.name)}
    if json_output:
        emit_json(document)
        return
    for key, value in document.items():
        if value is not None:
            out.print(f"{key}: {value}", markup=False)


@app.command()
def search(query: str, limit: int = typer.Option(20, "--limit", help="At most N results."),
           root: Path = RootOption, json_output: bool = JsonOption) -> None:
    """Full-text search of titles, authors and texts, best match first.

    Words are searched as written (all must match); "a phrase" in double quotes;
    word* for a prefix; OR, NOT and parentheses combine.

    Example: archiver search 'mutual aid' --limit 5 --root bags
    """
    from archiver.collection.catalog import open_catalog

    with errors_to_exit(json_output), open_catalog(root) as catalog:
        hits = catalog.search(query, limit)
    if json_output:
        emit_json({"query": query, "results": [h.to_dict() for h in hits]})
        return
    for hit in hits:
        out.print(f"{hit.name}  {hit.title or '(untitled)'}  {hit.url or ''}", markup=False)
        out.print(f"    {' '.join(hit.snippet.split())}", markup=False)


@app.command()
def history(url: str, root: Path = RootOption, json_output: bool = JsonOption) -> None:
    """Every capture and every unchanged re-check of a source, oldest first.

    Example: archiver history https://theanarchistlibrary.org/library/... --root bags
    """
    from archiver.collection.catalog import NotInCatalog, open_catalog

    with errors_to_exit(json_output), open_catalog(root) as catalog:
        entries = catalog.history(url)
        if not entries:
            raise NotInCatalog(f"{url!r} was never captured in {root}")
    if json_output:
        emit_json({"url": url, "history": [e.to_dict() for e in entries]})
        return
    for e in entries:
        note = f" ({e.reason})" if e.reason else ""
        out.print(f"{e.time}  {e.kind:<9}  {e.bag or '-'}{note}", markup=False)


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
                err.print(f"failed     {r.bag}: {r.reason}", markup=False)
            else:
                detail = f" -> {r.new_bag}" if r.outcome == "rebuilt" else f" ({r.reason})"
                out.print(f"{r.outcome:<10} {r.bag}{detail}", markup=False)
        out.print(f"{counts['rebuilt']} rebuilt, {counts['unchanged']} unchanged, {counts['failed']} failed",
                  markup=False)
    raise typer.Exit(worst)


if __name__ == "__main__":  # pragma: no cover
    app()
