"""discover and sync: collections from the sites that publish them."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Optional
from urllib.parse import urlsplit

import typer

from archiver.cli.common import (EXIT_OK, EXIT_USAGE, JsonOption, RootOrS3Option, app, bag_location, emit_json,
                                 endpoint_option, err, errors_to_exit, fail, one_line, out, progress_bar,
                                 writable_root)
from archiver.cli.trust import TimestampUrlOption

if TYPE_CHECKING:
    from archiver.capture.fetch import FetchSettings

VIA_HELP = "Where to look: auto, amusewiki, sitemap, feed or oai-pmh."


def _settings(delay: float, ignore_robots: bool, user_agent: Optional[str], max_bytes: int, timeout: float,
              retries: int) -> "FetchSettings":
    from archiver.capture.fetch import FetchSettings

    settings = FetchSettings(delay=delay, obey_robots=not ignore_robots, max_bytes=max_bytes,
                             read_timeout=timeout, retries=retries)
    if user_agent:
        settings.user_agent = user_agent
    return settings


def _since(value: Optional[str]) -> Optional[datetime]:
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise fail(f"--since {value!r} is not a date (use YYYY-MM-DD or an ISO 8601 time)", EXIT_USAGE) from None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def _regex(option: str, value: Optional[str]) -> Optional[str]:
    if value is not None:
        try:
            re.compile(value)
        except re.error as exc:
            raise fail(f"{option} {value!r} is not a valid regular expression: {exc}", EXIT_USAGE) from None
    return value


_delay = typer.Option(1.0, "--delay", min=0.0, help="Minimum seconds between requests to one host.")
_ignore_robots = typer.Option(False, "--ignore-robots", help="Do not obey robots.txt.")
_user_agent = typer.Option(None, "--user-agent", help="User-Agent header to send.")
_max_bytes = typer.Option(50 * 1024 * 1024, "--max-bytes", min=1, help="Body size cap (bytes), listings too.")
_timeout = typer.Option(30.0, "--timeout", min=0.1, help="Read timeout in seconds.")
_retries = typer.Option(3, "--retries", min=0, help="Retries on 429/5xx and connection errors.")
_other_hosts = typer.Option(False, "--allow-other-hosts", help="Keep listed URLs on other hosts (left out by default).")


@app.command("discover")
def discover_command(
    site: str = typer.Argument(..., help="The site's URL (its home page).", show_default=False),
    via: str = typer.Option("auto", "--via", help=VIA_HELP),
    match: Optional[str] = typer.Option(None, "--match", help="Keep only URLs matching this regular expression."),
    exclude: Optional[str] = typer.Option(None, "--exclude", help="Leave out URLs matching this regular expression."),
    since: Optional[str] = typer.Option(None, "--since", help="Only texts changed since DATE (undated ones kept)."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="At most N texts."),
    manifest: Optional[Path] = typer.Option(None, "--manifest", "-m",
                                            help="Merge the texts into this manifest as [[sources]] (created if missing)."),
    allow_other_hosts: bool = _other_hosts,
    delay: float = _delay, ignore_robots: bool = _ignore_robots, user_agent: Optional[str] = _user_agent,
    max_bytes: int = _max_bytes, timeout: float = _timeout, retries: int = _retries,
    json_output: bool = JsonOption,
) -> None:
    """List the texts a site publishes (amusewiki mirror.ts.txt, sitemaps, feeds, OAI-PMH).

    Prints one line per text: URL, change time when known, the listing it came
    from. With --json: {"site", "via", "complete", "problems", "count",
    "texts": [{"url", "lastmod", "found_in"}]}. Exit 1 when a listing was
    faulty (the reason on stderr), 2 on bad options.

    Example: archiver discover https://theanarchistlibrary.org --match /library/ --manifest tal.toml
    """
    from archiver.capture.discover import KINDS, DiscoverOptions, discover
    from archiver.capture.fetch import Fetcher
    from archiver.capture.sources import check_source_url, merge_sources

    if via != "auto" and via not in KINDS:
        raise fail(f"--via {via!r} is not one of auto, {', '.join(KINDS)}", EXIT_USAGE)
    with errors_to_exit(json_output):
        check_source_url(site)  # malformed URLs and credentials: a usage error, never a traceback
    if urlsplit(site).scheme not in ("http", "https") or not urlsplit(site).netloc:
        raise fail(f"SITE must be an http(s) URL (got {site!r})", EXIT_USAGE)
    options = DiscoverOptions(via=via, match=_regex("--match", match), exclude=_regex("--exclude", exclude),
                              since=_since(since), limit=limit, allow_other_hosts=allow_other_hosts)
    settings = _settings(delay, ignore_robots, user_agent, max_bytes, timeout, retries)
    with errors_to_exit(json_output):
        report = discover(site, options, Fetcher(settings))
        merged = None
        if manifest is not None:
            default_id = re.sub(r"[^A-Za-z0-9._-]+", "-", urlsplit(site).netloc).strip("-.") or "collection"
            added, kept = merge_sources(manifest, [t.url for t in report.texts], default_id)
            merged = {"manifest": str(manifest), "added": len(added), "already_there": kept}
    code = 1 if report.problems else EXIT_OK
    for problem in report.problems:
        err.print(f"archiver: {one_line(site)}: {one_line(problem)}", markup=False)
    if json_output:
        emit_json({**report.to_dict(), **({"merged": merged} if merged else {}), "exit_code": code})
    else:
        for text in report.texts:
            out.print(f"{one_line(text.url)}  {text.lastmod or '-'}  ({one_line(text.found_in)})", markup=False)
        tail = f" via {report.via}" if report.via else ""
        out.print(f"{len(report.texts)} texts{tail}" + ("" if report.complete else " (listing incomplete)"),
                  markup=False)
        if merged:
            out.print(f"{manifest}: {merged['added']} added, {merged['already_there']} already there",
                      markup=False)
    raise typer.Exit(code)


@app.command("sync")
def sync_command(
    manifest: Path = typer.Argument(..., help="A collection manifest with [[sites]] (and [[sources]]).",
                                    show_default=False),
    root: str = RootOrS3Option,
    endpoint_url: Optional[str] = endpoint_option,
    organization: Optional[str] = typer.Option(None, "--organization", help="Source-Organization for bag-info.txt."),
    allow_other_hosts: bool = _other_hosts,
    delay: float = _delay, ignore_robots: bool = _ignore_robots, user_agent: Optional[str] = _user_agent,
    max_bytes: int = _max_bytes, timeout: float = _timeout, retries: int = _retries,
    timestamp_url: Optional[str] = TimestampUrlOption,
    json_output: bool = JsonOption,
) -> None:
    """Discover every site of a manifest and bring the collection up to date.

    New texts are captured; texts listed as changed are re-fetched
    conditionally (a new bag only if the text changed); texts listed as
    unchanged are not fetched; texts no longer listed are checked once
    (404/410: a `gone` event, else `unlisted`). Bags are never deleted.
    With --json: {"sites": [...], "counts": {...}, "texts": [{"url", "outcome",
    "bag", "lastmod", "reason"}], "exit_code"}. Exit 1 if a site or text failed.

    Example: archiver sync manifests/library.toml --root bags
    (or --root s3://bucket/prefix, a collection on object storage)
    """
    from archiver.capture.sources import load_manifest
    from archiver.collection.sync import SyncOptions, sync

    settings = _settings(delay, ignore_robots, user_agent, max_bytes, timeout, retries)
    with errors_to_exit(json_output):
        loaded = load_manifest(manifest)          # exit 2, naming file and line, before any request
        with writable_root(root, endpoint_url) as local_root, \
                progress_bar("sync", enabled=not json_output) as on_progress:
            options = SyncOptions(root=local_root, organization=organization, fetch=settings,
                                  allow_other_hosts=allow_other_hosts, timestamp_url=timestamp_url)
            report = sync(loaded, options, on_progress=on_progress)
    for site in report.sites:
        for problem in site.problems:
            err.print(f"archiver: {one_line(site.site)}: {one_line(problem)}", markup=False)
    counts = report.counts()
    if json_output:
        emit_json({"root": str(root), "manifest": str(manifest), **report.to_dict()})
    else:
        for text in report.texts:
            if text.outcome == "failed":
                err.print(f"failed     {one_line(text.url)}: {one_line(text.reason or '')}", markup=False)
            elif text.outcome != "unchanged-not-fetched":
                detail = f" -> {bag_location(root, text.bag)}" if text.outcome in ("new", "changed") and text.bag else (
                    f" ({one_line(text.reason)})" if text.reason else "")
                out.print(f"{text.outcome:<10} {one_line(text.url)}{detail}", markup=False)
        out.print(", ".join(f"{n} {k}" for k, n in counts.items()), markup=False)
    raise typer.Exit(report.exit_code)
