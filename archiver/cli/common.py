"""Shared parts of the CLI: the typer app, consoles, options, JSON output, errors to exit codes, progress.

One error path: every failure ends in ``fail`` (one line on stderr, secrets
redacted) and an exit code. ``errors_to_exit`` turns archiver's exceptions
into it inside a command; ``ArchiverGroup.main`` catches everything else,
including click's usage errors (which happen before a command runs), and,
when ``--json`` was given and the command printed no JSON document, prints
one: ``{"error": "...", "exit_code": N}``.
"""

from __future__ import annotations

import json
import os
import re
import sys
from contextlib import contextmanager
from pathlib import Path, PurePath
from typing import Any, Callable, Iterator, Optional, Sequence

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from typer.core import TyperGroup

from archiver import __version__
from archiver.errors import ArchiverError, redact_credentials

EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE, EXIT_CANNOT_RUN = 0, 1, 2, 3

# What this run has said so far: ArchiverGroup.main prints a JSON error
# document only when the command printed none.
_said: dict[str, Any] = {"documents": 0, "error": None}
# A URL given where a path is expected, as pathlib left it ("s3://a" → "s3:/a").
_URL_AS_PATH = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):/")


def _check_local_path(value: PurePath, param: Any, ctx: Any) -> None:
    """A path option or argument is never a URL (``--root s3://lib/col`` must
    not become a local folder named ``s3:``) and never holds a NUL byte."""
    text = str(value)
    name = "/".join(getattr(param, "opts", None) or []) or getattr(param, "name", None) or "a path"
    match = _URL_AS_PATH.match(text)
    if match:
        scheme = match.group(1).lower()
        if scheme == "s3" and getattr(param, "name", None) == "root":
            raise typer.BadParameter("S3 roots are not supported yet by this verb: --root takes a local "
                                     "directory here (snapshot and sync write s3:// collections; list, show, "
                                     "search, history, audit, catalog rebuild, verify, mirror and repair read them)", ctx=ctx, param=param)
        raise typer.BadParameter(f"{scheme}:// locations are not supported here: {name} takes a "
                                 "local path", ctx=ctx, param=param)
    if "\0" in text:
        raise typer.BadParameter(f"{name} contains a NUL byte", ctx=ctx, param=param)


def _guarded(callback: Optional[Callable[..., Any]]) -> Callable[..., Any]:
    def guard(ctx: Any, param: Any, value: Any) -> Any:
        for item in value if isinstance(value, (list, tuple)) else (value,):
            if isinstance(item, PurePath):
                _check_local_path(item, param, ctx)
        return callback(ctx, param, value) if callback is not None else value
    return guard


def _guard_paths(command: Any) -> None:
    """Check every path parameter of every command (verbs added later are
    covered without a line of their own): the check runs on the converted
    value, so it applies to whatever a parameter's type says is a path."""
    for param in command.params:
        if not getattr(param, "_archiver_guarded", False):
            param.callback = _guarded(param.callback)
            param._archiver_guarded = True
    for sub in getattr(command, "commands", {}).values():
        _guard_paths(sub)


def _usage_message(exc: Exception) -> str:
    message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
    ctx = getattr(exc, "ctx", None)
    if ctx is not None:
        message += f" (see '{ctx.command_path} --help')"
    return message


class ArchiverGroup(TyperGroup):
    """The ``archiver`` group: runs a command and translates every way it can
    end into one error line and an exit code 0/1/2/3."""

    def main(self, args: Optional[Sequence[str]] = None, prog_name: Optional[str] = None,
             complete_var: Optional[str] = None, standalone_mode: bool = True,
             windows_expand_args: bool = True, **extra: Any) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        wants_json = "--json" in argv
        _said.update(documents=0, error=None)
        _guard_paths(self)
        try:
            result = super().main(argv, prog_name, complete_var, standalone_mode=False,
                                  windows_expand_args=windows_expand_args, **extra)
            code = result if isinstance(result, int) else EXIT_OK
        except typer.TyperException as exc:  # click's usage errors, raised before a command runs
            if type(exc).__name__ == "NoArgsIsHelpError" and hasattr(exc, "show"):
                exc.show()  # `archiver` alone, `archiver catalog`: the help text
                code = EXIT_USAGE
            else:
                code = _said_fail(_usage_message(exc), EXIT_USAGE)
        except typer.Abort:
            code = _said_fail("aborted", EXIT_USAGE)
        except ArchiverError as exc:  # a command that did not use errors_to_exit
            code = _said_fail(str(exc), exc.exit_code)
        except OSError as exc:
            code = _said_fail(f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": "), EXIT_CANNOT_RUN)
        except Exception as exc:
            if os.environ.get("ARCHIVER_DEBUG"):
                raise
            code = _said_fail(f"internal error (a bug in archiver; please report it, "
                              f"ARCHIVER_DEBUG=1 shows the traceback): {type(exc).__name__}: {exc}",
                              EXIT_CANNOT_RUN)
        if wants_json and _said["documents"] == 0 and code != EXIT_OK:
            emit_json({"error": _said["error"] or f"exit code {code}", "exit_code": code})
        if standalone_mode:
            sys.exit(code)
        return code


def _said_fail(message: str, code: int) -> int:
    fail(message, code)
    return code


app = typer.Typer(
    cls=ArchiverGroup,
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

RootOption = typer.Option(
    Path("bags"), "--root", envvar="ARCHIVER_ROOT", help="Collection root (env ARCHIVER_ROOT).",
    file_okay=True, dir_okay=True,
)
JsonOption = typer.Option(False, "--json", help="Print one JSON document on stdout.")
# A collection root that may also be on S3 (the verbs that read an S3 collection take it as text:
# a Path would turn "s3://b/p" into "s3:/b/p"); ``collection_root`` checks and sorts it.
CollectionRootOption = typer.Option(
    "bags", "--root", envvar="ARCHIVER_ROOT",
    help="Collection root: a directory, or s3://bucket/prefix (env ARCHIVER_ROOT).")
# The one way every verb is told where S3 is; credentials come the usual boto3 ways
# (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, ~/.aws, an instance role).
endpoint_option = typer.Option(
    None, "--endpoint-url", envvar=["ARCHIVER_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"],
    help="S3 endpoint for s3:// locations on non-AWS stores (SeaweedFS, Ceph RGW, MinIO); "
         "env AWS_ENDPOINT_URL. Credentials: the usual AWS environment variables and files.")


def collection_root(value: str) -> "Path | str":
    """``--root`` as given: an ``s3://bucket/prefix`` location (str), or a local
    folder (Path). UsageError for any other scheme or a NUL byte."""
    from archiver.errors import UsageError

    match = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*):/", value)
    if match and match.group(1).lower() == "s3":
        return value
    if match:
        raise UsageError(f"{match.group(1).lower()}:// locations are not supported for --root "
                         "(a directory, or s3://bucket/prefix)")
    if "\0" in value:
        raise UsageError("--root contains a NUL byte")
    return Path(value)

# The S3 endpoint, the same for every verb that reaches S3; without it boto3 reads
# AWS_ENDPOINT_URL and its config files. Credentials always come the AWS way.
endpoint_option = typer.Option(
    None, "--endpoint-url", envvar="ARCHIVER_S3_ENDPOINT_URL",
    help="S3 endpoint for s3:// locations (SeaweedFS, Ceph RGW, MinIO); default: AWS_ENDPOINT_URL or AWS.")


def _root_or_s3(ctx: Any, param: Any, value: Any) -> Any:
    """A root that is a local folder or ``s3://bucket/prefix``; any other scheme is a usage error."""
    if value is None:
        return value
    text = str(value)
    if text.startswith("s3://"):
        from archiver.errors import UsageError
        from archiver.replication.s3 import parse_s3_url

        try:
            parse_s3_url(text)
        except UsageError as exc:
            raise typer.BadParameter(str(exc), ctx=ctx, param=param) from None
        return text
    _check_local_path(PurePath(text), param, ctx)
    return text


# --root for the verbs that also write to a collection on S3 (snapshot, sync).
RootOrS3Option = typer.Option(
    "bags", "--root", envvar="ARCHIVER_ROOT", callback=_root_or_s3,
    help="Collection root: a folder, or s3://bucket/prefix (env ARCHIVER_ROOT).")


@contextmanager
def writable_root(root: str, endpoint_url: Optional[str]) -> Iterator[Path]:
    """The folder to hand the capture pipeline: ``root`` itself, or for
    ``s3://…`` a private working folder bound to the S3 collection."""
    if root.startswith("s3://"):
        from archiver.collection.s3store import open_s3_collection

        with open_s3_collection(root, endpoint_url) as working:
            yield working
    else:
        yield Path(root)


def bag_location(root: str, bag: str) -> str:
    """Where a bag of ``root`` is, as the user named the root."""
    return f"{root.rstrip('/')}/{bag}" if root.startswith("s3://") else str(Path(root) / bag)


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
    """Print one JSON document on stdout (a command prints exactly one); a URL
    with credentials anywhere in it is redacted, as on every line archiver prints."""
    sys.stdout.write(redact_credentials(json.dumps(document, ensure_ascii=False, indent=2, default=str)) + "\n")
    sys.stdout.flush()
    _said["documents"] += 1


def fail(message: str, code: int) -> "typer.Exit":
    """Print a one-line error on stderr and return the Exit to raise. With
    ``--json``, ``ArchiverGroup.main`` then prints the message as the JSON
    document (unless the command printed one already)."""
    _said["error"] = error_line(message)
    return typer.Exit(code)


def error_line(message: str) -> str:
    """Print one error line on stderr (credentials redacted, control characters
    escaped) without exiting, for a batch that goes on; return the line's message."""
    message = one_line(message)
    err.print(f"archiver: error: {message}", markup=False)
    return message


def warn(message: str) -> None:
    """One warning line on stderr."""
    err.print(f"archiver: warning: {one_line(message)}", markup=False)


@contextmanager
def errors_to_exit(json_output: bool = False) -> Iterator[None]:
    """Turn ArchiverError (and a path the OS refuses) into a one-line message
    and its exit code; the JSON error document is printed by ``ArchiverGroup``."""
    try:
        yield
    except ArchiverError as exc:
        raise fail(str(exc), exc.exit_code) from None
    except (OSError, ValueError) as exc:
        # A path the OS will not take (a NUL byte, a name too long) or cannot
        # read: "could not run", with the reason, never a traceback.
        if isinstance(exc, ValueError) and "null" not in str(exc).lower():
            raise
        raise fail(f"{getattr(exc, 'filename', None) or ''} {getattr(exc, 'strerror', None) or exc}".strip(),
                   EXIT_CANNOT_RUN) from None


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
    can never print a line of its own (a forged "OK" verdict, say), and redact a
    URL's credentials: every value the CLI prints goes through here."""
    return "".join(ch if ch.isprintable() or ch == " " else ascii(ch)[1:-1]
                   for ch in redact_credentials(str(text)))



def event_log_warnings(root: Path) -> list[dict[str, Any]]:
    """Warnings about the collection's event log (torn lines a crash left),
    each also printed as one line on stderr: never fatal, never silent."""
    from archiver.collection.events import events_path, read_events

    try:
        torn = read_events(root).torn
    except (ArchiverError, OSError):
        return []  # an unreadable log is the command's own error to report
    if not torn:
        return []
    shown = ", ".join(str(n) for n in torn[:10]) + (", …" if len(torn) > 10 else "")
    message = (f"{events_path(root)}: {len(torn)} line(s) are not whole events (line {shown}); "
               "a crash cut them short, the other events are intact")
    warn(message)
    return [{"code": "event-log-torn-line", "path": str(events_path(root)), "lines": torn,
             "message": message}]
