"""Shared parts of the CLI: the typer app, consoles, options, JSON output, errors to exit codes, progress."""

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


def one_line(text: str) -> str:
    """Escape line breaks and other control characters, so a hostile file name
    can never print a line of its own (a forged "OK" verdict, say)."""
    return "".join(ch if ch.isprintable() or ch == " " else ascii(ch)[1:-1] for ch in str(text))

