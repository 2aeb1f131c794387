"""Keep a collection in sync with the sites of its manifest (``archiver sync``).

    >>> report = sync(load_manifest("manifests/library.toml"), SyncOptions(root=Path("bags")))
    >>> report.counts()
    {'new': 2, 'changed': 1, 'unchanged-not-fetched': 997, 'unchanged-same-text': 0, 'gone': 1, ...}

For each ``[[sites]]`` entry the site is discovered (one polite fetcher for
the whole run), then each text it lists is

- **new** (no bag of its URL yet): snapshotted;
- **listed as changed** (its listed change time differs from the one the last
  sync saw, or, for a text never synced, is later than its last capture):
  re-fetched conditionally by ``snapshot``, which makes a bag only if the
  canonical text changed (``changed``), else logs it unchanged
  (``unchanged-same-text``); a text listed without a time is always re-checked;
- **listed as unchanged**: not fetched (``unchanged-not-fetched``).

Every text listed and not failed gets a ``seen`` event recording the change
time listed, so the next sync knows what it saw. A text the site listed at
its last sync and lists no longer is checked once: 404/410 logs ``gone``,
anything still served logs ``unlisted``; bags are never deleted. Only a
*complete* listing can say a text vanished: a feed, a listing cut short or a
site that failed says nothing about the texts it lacks.

Killed at any moment, a re-run finishes the job: a bag written without its
``seen`` event is found by its capture (so it is not new), and its
conditional re-check finds the same text, so nothing is bagged twice.
``[[sources]]`` entries are snapshotted as ``snapshot --manifest`` does.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from archiver.capture.discover import DiscoverOptions, DiscoveryReport, Listed, discover
from archiver.capture.fetch import Fetcher, FetchSettings
from archiver.capture.snapshot import (SnapshotOptions, SourceResult, last_captures, record_unlogged_bags,
                                       snapshot)
from archiver.capture.sources import Manifest, SiteSpec
from archiver.collection.events import Event, append_event, append_events, read_events
from archiver.collection.root import open_collection
from archiver.errors import HTTPStatusError, SourceError

OUTCOMES = ("new", "changed", "unchanged-not-fetched", "unchanged-same-text", "gone", "unlisted", "failed")
GONE_STATUSES = (404, 410)
AMUSEWIKI_DEFAULT_ATTACHMENTS = ("muse",)


@dataclass
class SyncOptions:
    root: Path
    organization: str | None = None
    collection_id: str | None = None
    fetch: FetchSettings = field(default_factory=FetchSettings)
    allow_other_hosts: bool = False
    workers: int = 4
    timestamp_url: str | None = None  # default: the manifest's [collection] timestamp_url


@dataclass
class TextOutcome:
    url: str
    outcome: str                     # one of OUTCOMES
    site: str | None = None          # None for a [[sources]] entry
    bag: str | None = None
    lastmod: str | None = None
    reason: str | None = None
    exit_code: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class SiteOutcome:
    site: str
    via: str | None
    listed: int
    complete: bool
    problems: list[str]

    @property
    def exit_code(self) -> int:
        return 1 if self.problems else 0

    def to_dict(self) -> dict:
        return {**asdict(self), "exit_code": self.exit_code}


@dataclass
class SyncReport:
    sites: list[SiteOutcome] = field(default_factory=list)
    texts: list[TextOutcome] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {k: sum(t.outcome == k for t in self.texts) for k in OUTCOMES}

    @property
    def exit_code(self) -> int:
        return max([t.exit_code for t in self.texts] + [s.exit_code for s in self.sites], default=0)

    def to_dict(self) -> dict:
        return {"sites": [s.to_dict() for s in self.sites], "counts": self.counts(),
                "texts": [t.to_dict() for t in self.texts], "exit_code": self.exit_code}


@dataclass
class _Seen:
    type: str                        # seen | gone | unlisted: the URL's last sync event
    site: str | None
    lastmod: str | None


class _State:
    """What the event log says about each URL: its last capture or re-check, and its last sync event."""

    def __init__(self, root: Path) -> None:
        self.checked_at: dict[str, str] = {}
        self.sync: dict[str, _Seen] = {}
        for event in read_events(root).events:
            url = event.detail.get("url")
            if not isinstance(url, str):
                continue
            if event.type == "capture" and event.outcome in ("success", "unchanged"):
                when = event.detail.get("retrieved") if event.detail.get("recovered") else event.time
                if when and when > self.checked_at.get(url, ""):
                    self.checked_at[url] = when
            elif event.type in ("seen", "gone", "unlisted"):
                self.sync[url] = _Seen(event.type, event.detail.get("site"), event.detail.get("lastmod"))
        self.previous = last_captures(root)

    def listed_unchanged(self, text: Listed) -> bool:
        """True when the listing says ``text`` has not changed since we last had it."""
        if text.lastmod is None:
            return False                   # no time listed: only a re-check can tell
        seen = self.sync.get(text.url)
        if seen is not None and seen.type == "seen" and seen.lastmod is not None:
            return text.lastmod == seen.lastmod
        checked = self.checked_at.get(text.url)
        return checked is not None and text.lastmod <= checked

    def vanished(self, site: str, listed: set[str], keep: Callable[[str], bool]) -> list[str]:
        """URLs this site listed at its last sync that it lists no longer."""
        return [url for url, seen in self.sync.items()
                if seen.type == "seen" and seen.site == site and url not in listed and keep(url)]


def sync(manifest: Manifest, options: SyncOptions,
         on_progress: Callable[..., None] | None = None) -> SyncReport:
    """Bring the collection at ``options.root`` up to date with ``manifest``'s sites and sources."""
    root = open_collection(options.root)          # StorageError (exit 3) before any request
    record_unlogged_bags(root)                    # a bag a kill left unlogged is not new
    state = _State(root)
    fetcher = Fetcher(options.fetch)
    report = SyncReport()
    snap = SnapshotOptions(root=root, organization=options.organization or manifest.organization or "archiver",
                           collection_id=options.collection_id or manifest.collection_id, fetch=options.fetch,
                           workers=options.workers, fetcher=fetcher,
                           timestamp_url=options.timestamp_url or manifest.timestamp_url)
    progress = _Progress(on_progress)
    for site in manifest.sites:
        progress.say(f"discovering {site.url}")
        found = discover(site.url, DiscoverOptions(via=site.via, match=site.match, exclude=site.exclude,
                                                   allow_other_hosts=options.allow_other_hosts), fetcher)
        report.sites.append(SiteOutcome(site.url, found.via, len(found.texts), found.complete, found.problems))
        report.texts += _sync_site(root, site, found, state, snap, fetcher, progress)
    if manifest.sources:
        progress.total += len(manifest.sources)
        results = snapshot(manifest.sources, snap, on_progress=progress.step)
        report.texts += [_outcome(r, None, None, r.url in state.previous) for r in results]
    return report


def _sync_site(root: Path, site: SiteSpec, found: DiscoveryReport, state: _State, snap: SnapshotOptions,
               fetcher: Fetcher, progress: "_Progress") -> list[TextOutcome]:
    outcomes: list[TextOutcome] = []
    to_fetch: list[Listed] = []
    for text in found.texts:
        if text.url in state.previous and state.listed_unchanged(text):
            outcomes.append(TextOutcome(text.url, "unchanged-not-fetched", site.url, state.previous[text.url].bag,
                                        text.lastmod, "listed as unchanged since the last capture"))
        else:
            to_fetch.append(text)
    if to_fetch:
        kinds = site.attachments if site.attachments is not None else (
            AMUSEWIKI_DEFAULT_ATTACHMENTS if found.via == "amusewiki" else ())
        options = SnapshotOptions(**{**snap.__dict__, "with_attachments": bool(kinds),
                                     "choose_attachments": _chooser(kinds, found) if kinds else None})
        progress.total += len(to_fetch)
        results = snapshot([t.url for t in to_fetch], options, on_progress=progress.step)
        for text, result in zip(to_fetch, results):
            outcomes.append(_outcome(result, site.url, text.lastmod, text.url in state.previous))
    by_url = {t.url: t for t in found.texts}
    append_events(root, [Event(type="seen", outcome="success", bag=o.bag, detail={
        "url": o.url, "site": site.url, "via": found.via, "lastmod": o.lastmod, "result": o.outcome,
    }) for o in outcomes if o.outcome != "failed" and o.url in by_url])
    if found.complete and not found.problems:
        keep = _filter(site)
        for url in state.vanished(site.url, set(by_url), keep):
            progress.say(f"checking {url}")
            outcomes.append(_check_vanished(root, site, url, state, fetcher))
    return outcomes


def _outcome(result: SourceResult, site: str | None, lastmod: str | None, had_bag: bool) -> TextOutcome:
    url = result.url or result.source
    if result.outcome == "failed":
        return TextOutcome(url, "failed", site, None, lastmod, result.reason, result.exit_code or 1)
    if result.outcome == "unchanged":
        return TextOutcome(url, "unchanged-same-text", site, result.bag, lastmod, result.reason)
    return TextOutcome(url, "changed" if had_bag else "new", site, result.bag, lastmod)


def _check_vanished(root: Path, site: SiteSpec, url: str, state: _State, fetcher: Fetcher) -> TextOutcome:
    """One request: 404/410 is ``gone``, an answer is ``unlisted``; anything else is tried again next sync."""
    prior = state.previous.get(url)
    bag = prior.bag if prior else None
    conditional = {k: v for k, v in (("If-None-Match", prior.etag if prior else None),
                                     ("If-Modified-Since", prior.last_modified if prior else None)) if v}
    try:
        capture = fetcher.fetch(url, conditional=conditional or None)
        kind, status = "unlisted", capture.status
        reason = f"no longer listed by {site.url}, still served (HTTP {status})"
    except HTTPStatusError as exc:
        if exc.status not in GONE_STATUSES:
            return TextOutcome(url, "failed", site.url, bag, None, f"no longer listed; checking it: {exc}", 1)
        kind, status = "gone", exc.status
        reason = f"no longer listed by {site.url}; HTTP {status}"
    except SourceError as exc:
        return TextOutcome(url, "failed", site.url, bag, None, f"no longer listed; checking it: {exc}", 1)
    append_event(root, Event(type=kind, outcome="success", bag=bag, detail={
        "url": url, "site": site.url, "status": status, "reason": reason}))
    return TextOutcome(url, kind, site.url, bag, None, reason)


def _filter(site: SiteSpec) -> Callable[[str], bool]:
    match = re.compile(site.match) if site.match else None
    exclude = re.compile(site.exclude) if site.exclude else None
    return lambda url: (match is None or bool(match.search(url))) and not (exclude and exclude.search(url))


def _chooser(kinds: tuple[str, ...], found: DiscoveryReport) -> Callable[[str, list[dict]], list[dict]]:
    """The attachments to capture for a text. amusewiki: one file per kind, the
    ``.muse`` from the mirror (else ``PAGE.muse``) and ``PAGE.KIND`` for the
    others, as amusewiki serves every text (links the page offers elsewhere,
    such as its git view, are left). Other sites: the page's links of those kinds."""
    muse = {t.url: t.muse for t in found.texts if t.muse}
    amusewiki = found.via == "amusewiki"

    def choose(url: str, links: list[dict]) -> list[dict]:
        if not amusewiki:
            return [link for link in links if link.get("kind") in kinds]
        return [{"url": muse.get(url, f"{url}.muse") if kind == "muse" else f"{url}.{kind}", "kind": kind}
                for kind in kinds]
    return choose


class _Progress:
    def __init__(self, on_progress: Callable[..., None] | None) -> None:
        self.on_progress = on_progress
        self.done = 0
        self.total = 0

    def say(self, detail: str) -> None:
        if self.on_progress:
            self.on_progress(self.done, self.total or None, detail)

    def step(self, done: int, total: int, detail: str = "") -> None:
        if self.on_progress:
            self.on_progress(self.done + done, self.total or None, detail)
        if done == total:
            self.done += total
