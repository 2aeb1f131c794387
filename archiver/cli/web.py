"""serve, site, diff: looking at a collection (web UI, static site, diffs)."""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Callable, Optional

import typer

from archiver.cli.common import (EXIT_USAGE, JsonOption, RootOption, app, emit_json, err,
                                 errors_to_exit, fail, out, progress_bar)

AuditWindowOption = typer.Option("90d", "--audit-window",
                                 help="A bag whose last good check is older than this is due a check (90d, 12w).")


@app.command()
def serve(root: Path = RootOption,
          host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (default: this machine only)."),
          port: int = typer.Option(8000, "--port", help="Port to listen on (0: any free port)."),
          audit_window: str = AuditWindowOption) -> None:
    """Browse the collection in a web browser (read-only).

    Example: archiver serve --root bags   # then open http://127.0.0.1:8000/
    """
    import uvicorn

    from archiver.collection.audit import parse_max_age
    from archiver.collection.catalog import open_catalog
    from archiver.web import views
    from archiver.web.app import create_app, is_loopback

    with errors_to_exit():
        window = parse_max_age(audit_window)
        if not root.is_dir():
            raise fail(f"collection root {root} does not exist", 3)
        open_catalog(root).close()  # bring the catalogue up to date once; requests only read it
        hosts = None if is_loopback(host) else ["*"]
        application = create_app(root, window, allowed_hosts=hosts)
        # Read the event log and the home page's figures now, not on the first request.
        threading.Thread(target=_warm_up, args=(views.home, application.state.reader), daemon=True).start()
    if not is_loopback(host):
        err.print(f"archiver: warning: listening on {host}: the collection becomes readable by anyone "
                  "who can reach this machine on the network", markup=False)
    shown = f"[{host}]" if ":" in host else host
    err.print(f"archiver: serving {root} read-only at http://{shown}:{port}/ (Ctrl-C stops)", markup=False)
    uvicorn.run(application, host=host, port=port, log_level="warning", server_header=False)


def _warm_up(home: Callable[..., object], reader: object) -> None:
    from archiver.errors import ArchiverError

    try:
        home(reader)
    except ArchiverError:
        pass  # the first request reports it


@app.command()
def site(out_dir: Path = typer.Argument(..., metavar="OUT", help="Folder to write the site into."),
         root: Path = RootOption, audit_window: str = AuditWindowOption, json_output: bool = JsonOption) -> None:
    """Write the collection's pages as a static site that works from file://.

    Re-running rewrites only the files whose content changed.

    Example: archiver site site-out --root bags   # then open site-out/index.html
    """
    from archiver.collection.audit import parse_max_age
    from archiver.collection.catalog import open_catalog
    from archiver.web.static_site import build_site

    with errors_to_exit(json_output), progress_bar("writing pages") as on_progress:
        window = parse_max_age(audit_window)
        if not root.is_dir():
            raise fail(f"collection root {root} does not exist", 3)
        open_catalog(root).close()
        report = build_site(root, out_dir, window, on_progress=on_progress)
    if json_output:
        emit_json(report.to_dict())
    else:
        out.print(f"site written to {out_dir}: {report.pages} pages, {report.written} written, "
                  f"{report.unchanged} unchanged, {report.removed} removed", markup=False)
    for problem in report.problems:
        err.print(f"archiver: warning: {problem}", markup=False)


@app.command()
def diff(first: str = typer.Argument(..., metavar="URL-or-BAG_A"),
         second: Optional[str] = typer.Argument(None, metavar="[BAG_B]"),
         root: Path = RootOption, json_output: bool = JsonOption) -> None:
    """Compare two captures' canonical texts: the last two of URL, or BAG_A with BAG_B.

    Prints a unified diff (nothing but a note when the texts are the same); exit 0
    either way (a change between captures is not a problem), 1 when a bag or URL
    is not in the collection.

    Example: archiver diff https://example.org/essay --root bags
    """
    from archiver.collection.catalog import open_catalog
    from archiver.web import views
    from archiver.web.collection import CollectionReader

    with errors_to_exit(json_output):
        if not root.is_dir():
            raise fail(f"collection root {root} does not exist", 3)
        open_catalog(root).close()
        reader = CollectionReader(root)
        try:
            if second is None:
                if "://" not in first:
                    raise fail("give a URL, or two bags to compare", EXIT_USAGE)
                old, new = views.last_two(reader, first)
            else:
                old, new = (Path(first.rstrip("/")).name, Path(second.rstrip("/")).name)
            document = views.diff(reader, old, new)
        finally:
            reader.close()
    if json_output:
        emit_json(document)
    else:

        sys.stdout.write(document["unified"] or f"{old} and {new} have the same text\n")
