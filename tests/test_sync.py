"""archiver sync: a collection kept in step with the sites that publish it, on loopback sites
(tests/sites.py) whose own request logs show what was fetched."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from archiver.cli import app
from archiver.collection.events import read_events
from archiver.collection.root import list_bag_dirs
from sites import NOT_FOUND, AmusewikiSite, DrupalSite, SiteServer, WordPressSite, urlset

runner = CliRunner()
FAST = ["--delay", "0", "--retries", "0", "--timeout", "5"]


def manifest(tmp_path: Path, *sites: str, extra: str = "") -> Path:
    path = tmp_path / "collection.toml"
    path.write_text('[collection]\nid = "kept-in-sync"\n' + "".join(f"\n[[sites]]\n{s}\n" for s in sites) + extra)
    return path


def site_entry(url: str, **keys: object) -> str:
    return f'url = "{url}"\n' + "".join(f"{k} = {json.dumps(v)}\n" for k, v in keys.items())


def run_sync(path: Path, root: Path, *args: str) -> tuple[int, dict, str]:
    result = runner.invoke(app, ["sync", str(path), "--root", str(root), *FAST, *args, "--json"])
    return result.exit_code, json.loads(result.stdout), result.stderr


def outcomes(document: dict) -> dict[str, str]:
    return {t["url"]: t["outcome"] for t in document["texts"]}


def bags_by_url(root: Path) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for bag in list_bag_dirs(root):
        url = json.loads((bag / "data" / "metadata.json").read_text())["url"]
        found.setdefault(url, []).append(bag.name)
    return found


def pages_fetched(site: SiteServer, prefix: str) -> list[str]:
    return [p for p in site.paths_requested() if p.startswith(prefix) and "." not in p.rsplit("/", 1)[-1]]


@pytest.fixture
def amusewiki(shared_dir: Path):
    site = AmusewikiSite.from_renderings(shared_dir / "realpages" / "amusewiki")
    yield site
    site.close()


# -- the real amusewiki renderings ------------------------------------------------------------------

def test_amusewiki_collection_kept_in_sync(amusewiki: AmusewikiSite, tmp_path: Path) -> None:
    root = tmp_path / "bags"
    path = manifest(tmp_path, site_entry(amusewiki.base))
    code, first, _ = run_sync(path, root)
    assert code == 0, first
    assert first["counts"]["new"] == 179 and first["sites"][0]["via"] == "amusewiki"
    by_url = bags_by_url(root)
    assert len(by_url) == 179 and all(len(names) == 1 for names in by_url.values())
    # Each bag holds the text's .muse source, fetched from the mirror, and metadata.json says so.
    slug = sorted(amusewiki.texts)[0]
    bag = root / by_url[amusewiki.url(f"/library/{slug}")][0]
    metadata = json.loads((bag / "data" / "metadata.json").read_text())
    [muse] = metadata["attachments"]
    assert muse["kind"] == "muse" and muse["url"] == amusewiki.url(f"/mirror/{amusewiki.texts[slug].path}")
    assert (bag / muse["path"]).read_text() == amusewiki.texts[slug].muse

    amusewiki.clear_log()
    code, second, _ = run_sync(path, root)
    assert code == 0 and second["counts"]["unchanged-not-fetched"] == 179
    assert amusewiki.paths_requested() == ["/robots.txt", "/mirror.ts.txt"]

    edited, removed = sorted(amusewiki.texts)[10], sorted(amusewiki.texts)[20]
    amusewiki.edit(edited, "A paragraph the editors added after the first capture.")
    amusewiki.add_synthetic("new-arrival-essay")
    amusewiki.remove(removed)
    amusewiki.clear_log()
    code, third, _ = run_sync(path, root)
    assert code == 0, third
    assert third["counts"] == {"new": 1, "changed": 1, "unchanged-not-fetched": 177, "unchanged-same-text": 0,
                               "gone": 1, "unlisted": 0, "failed": 0}
    result = outcomes(third)
    assert result[amusewiki.url(f"/library/{edited}")] == "changed"
    assert result[amusewiki.url("/library/new-arrival-essay")] == "new"
    assert result[amusewiki.url(f"/library/{removed}")] == "gone"
    # The server's own log: the changed, the new and the vanished text, nothing else.
    assert sorted(pages_fetched(amusewiki, "/library/")) == sorted(
        f"/library/{s}" for s in (edited, "new-arrival-essay", removed))
    after = bags_by_url(root)
    assert len(after[amusewiki.url(f"/library/{edited}")]) == 2
    assert sum(len(v) for v in after.values()) == 179 + 2  # nothing deleted, nothing doubled
    gone = [e for e in read_events(root).events if e.type == "gone"]
    assert [e.detail["url"] for e in gone] == [amusewiki.url(f"/library/{removed}")]
    history = runner.invoke(app, ["history", amusewiki.url(f"/library/{removed}"), "--root", str(root), "--json"])
    assert [h["kind"] for h in json.loads(history.stdout)["history"]] == ["capture", "gone"]

    code, fourth, _ = run_sync(path, root)  # checked once: the gone text is not asked for again
    assert code == 0 and fourth["counts"]["gone"] == 0 and fourth["counts"]["unchanged-not-fetched"] == 179


def test_amusewiki_attachments_setting(amusewiki: AmusewikiSite, tmp_path: Path) -> None:
    root = tmp_path / "bags"
    slugs = sorted(amusewiki.texts)[:3]
    match = "/library/(" + "|".join(slugs) + ")$"
    code, _, _ = run_sync(manifest(tmp_path, site_entry(amusewiki.base, match=match, attachments=[])), root)
    assert code == 0 and len(list_bag_dirs(root)) == 3
    assert not any(p.name == "attachments" for bag in list_bag_dirs(root) for p in (bag / "data").iterdir())
    assert not [p for p in amusewiki.paths_requested() if p.startswith("/mirror/")]
    other = tmp_path / "more"
    code, _, _ = run_sync(manifest(tmp_path, site_entry(amusewiki.base, match=match,
                                                         attachments=["muse", "epub"])), other)
    assert code == 0
    for bag in list_bag_dirs(other):
        kinds = sorted(a["kind"] for a in json.loads((bag / "data" / "metadata.json").read_text())["attachments"])
        assert kinds == ["epub", "muse"]


# -- WordPress and Drupal (no ../shared needed) -------------------------------------------------

def test_wordpress_sync_records_new_changed_gone_and_unlisted(tmp_path: Path) -> None:
    site = WordPressSite(posts=6)
    try:
        root = tmp_path / "bags"
        path = manifest(tmp_path, site_entry(site.base))
        code, first, _ = run_sync(path, root)
        assert code == 0 and first["counts"]["new"] == 6 and first["sites"][0]["via"] == "sitemap"
        site.edit("post-1", "An update from the distro.")
        site.add_post("post-new", "/2025/12/01/post-new/")
        site.remove("post-2")
        hidden = site.texts["post-3"]
        site.routes[hidden.path] = site.page(hidden)   # no longer listed, still served
        site.remove("post-3")
        site.clear_log()
        code, second, _ = run_sync(path, root)
        assert code == 0, second
        assert second["counts"] == {"new": 1, "changed": 1, "unchanged-not-fetched": 3, "unchanged-same-text": 0,
                                    "gone": 1, "unlisted": 1, "failed": 0}
        assert sorted(p for p in site.paths_requested() if p.startswith("/2025/")) == sorted(
            ["/2025/02/11/post-1/", "/2025/12/01/post-new/", "/2025/03/12/post-2/", hidden.path])
        kinds = {e.type: e.detail["url"] for e in read_events(root).events if e.type in ("gone", "unlisted")}
        assert kinds == {"gone": site.url("/2025/03/12/post-2/"), "unlisted": site.url(hidden.path)}
        history = runner.invoke(app, ["history", site.url(hidden.path), "--root", str(root)])
        assert history.exit_code == 0 and "unlisted" in history.stdout and "still served" in history.stdout
    finally:
        site.close()


def test_a_text_listed_without_a_time_is_rechecked_conditionally(tmp_path: Path) -> None:
    site = DrupalSite(nodes=3)
    try:
        site.routes["/sitemap.xml"] = (200, {"Content-Type": "application/xml"}, urlset(site.base, []).replace(
            "</urlset>", "".join(f"<url><loc>{site.base}/node/{i}</loc></url>" for i in (1, 2, 3)) + "</urlset>"
        ).encode())
        root = tmp_path / "bags"
        path = manifest(tmp_path, site_entry(site.base))
        assert run_sync(path, root)[1]["counts"]["new"] == 3
        site.clear_log()
        code, second, _ = run_sync(path, root)
        assert code == 0 and second["counts"]["unchanged-same-text"] == 3
        assert all("304" in t["reason"] for t in second["texts"])  # If-None-Match answered 304
        assert len(list_bag_dirs(root)) == 3
    finally:
        site.close()


def test_a_feed_never_says_a_text_vanished(tmp_path: Path) -> None:
    site = DrupalSite(nodes=4)
    try:
        root = tmp_path / "bags"
        path = manifest(tmp_path, site_entry(site.base, via="feed"))
        code, first, _ = run_sync(path, root)
        assert code == 0 and first["counts"]["new"] == 4 and first["sites"][0]["complete"] is False
        site.remove("node-2")
        site.clear_log()
        code, second, _ = run_sync(path, root)
        assert code == 0 and second["counts"]["gone"] == 0 and second["counts"]["unlisted"] == 0
        assert "/node/2" not in site.paths_requested()
    finally:
        site.close()


def test_sources_beside_sites_are_snapshotted(tmp_path: Path) -> None:
    site = DrupalSite(nodes=2)
    try:
        path = manifest(tmp_path, site_entry(site.base, match="/node/1$"),
                        extra=f'\n[[sources]]\nurl = "{site.url("/node/2")}"\n')
        code, document, _ = run_sync(path, tmp_path / "bags")
        assert code == 0
        assert outcomes(document) == {site.url("/node/1"): "new", site.url("/node/2"): "new"}
        assert [t["site"] for t in document["texts"]] == [site.base, None]
    finally:
        site.close()


# -- bad input ------------------------------------------------------------------------------------

@pytest.mark.parametrize("entry,message", [
    ('via = "sitemap"', "site #1 is missing 'url'"),
    ('url = "ftp://example.org"', "site url must be an http(s) URL"),
    ('url = "{base}"\nvia = "rss"', "via = 'rss' is not one of auto, amusewiki, sitemap, feed, oai-pmh"),
    ('url = "{base}"\nmatch = "(unclosed"', "match = '(unclosed' is not a valid regular expression"),
    ('url = "{base}"\nattachments = "muse"', "attachments must be a list of strings"),
    ('url = "{base}"\nattachments = ["mobi"]', "unknown attachment kind 'mobi'"),
    ('url = "{base}"\ndepth = 3', "unknown key 'depth' in site #1"),
])
def test_a_malformed_sites_entry_is_exit_2_naming_file_and_line_before_any_request(
        tmp_path: Path, entry: str, message: str) -> None:
    site = DrupalSite(nodes=1)
    try:
        path = tmp_path / "bad.toml"
        path.write_text('[collection]\nid = "bad"\n\n[[sites]]\nurl = "' + site.base + '"\n\n'
                        "# the second site is the broken one\n[[sites]]\n" + entry.format(base=site.base) + "\n")
        result = runner.invoke(app, ["sync", str(path), "--root", str(tmp_path / "bags")])
        assert result.exit_code == 2, result.output
        assert f"{path}:8: " in result.stderr and message.replace("#1", "#2") in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
        assert site.paths_requested() == [] and not (tmp_path / "bags").exists()
    finally:
        site.close()


def _stall(handler) -> None:
    time.sleep(4)


def test_hostile_listings_each_get_one_line_and_the_other_sites_go_on(tmp_path: Path) -> None:
    good = WordPressSite(posts=2)
    html_sitemap, garbage, truncated, looping, stalling, failing, elsewhere, cut_ts = (DrupalSite(nodes=2)
                                                                                      for _ in range(8))
    html_sitemap.routes["/sitemap.xml"] = (200, {"Content-Type": "text/html"}, b"<html><body>Welcome</body></html>")
    garbage.routes["/sitemap.xml"] = (200, {"Content-Type": "application/xml"}, b"\x00\x01 not a listing at all")
    body = urlset(truncated.base, [("/node/1", 1_700_000_000), ("/node/2", 1_700_000_100)]).encode()
    truncated.routes["/sitemap.xml"] = (200, {"Content-Type": "application/xml"}, body[: body.index(b"/node/2")])
    looping.routes["/sitemap.xml"] = (200, {"Content-Type": "application/xml"}, (
        '<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
        f"<sitemap><loc>{looping.base}/sitemap.xml</loc></sitemap></sitemapindex>").encode())
    stalling.routes["/sitemap.xml"] = _stall
    failing.routes["/mirror.ts.txt"] = (503, {"Content-Type": "text/plain"}, b"busy")
    elsewhere.routes["/sitemap.xml"] = (200, {"Content-Type": "application/xml"}, urlset(
        "http://other.invalid", [("/node/1", 1_700_000_000)]).replace(
        "</urlset>", f"<url><loc>{elsewhere.base}/node/2</loc></url></urlset>").encode())
    cut_ts.routes["/mirror.ts.txt"] = (200, {"Content-Type": "text/plain"}, b"n/no/node-1.muse#1700000000\nn/no/no")
    not_a_feed, not_oai = DrupalSite(nodes=1), DrupalSite(nodes=1)
    not_a_feed.routes["/rss.xml"] = (200, {"Content-Type": "text/html"}, b"<html><body><p>News</p></body></html>")
    not_oai.routes["/oai-pmh"] = (200, {"Content-Type": "text/xml"}, b'<?xml version="1.0"?><rss version="2.0"/>')
    sites = [html_sitemap, garbage, truncated, looping, stalling, failing, elsewhere, cut_ts, not_a_feed, not_oai]
    try:
        path = manifest(tmp_path, site_entry(html_sitemap.base, via="sitemap"), site_entry(garbage.base, via="sitemap"),
                        site_entry(truncated.base), site_entry(looping.base), site_entry(stalling.base, via="sitemap"),
                        site_entry(failing.base, via="amusewiki"), site_entry(elsewhere.base),
                        site_entry(cut_ts.base, via="amusewiki", attachments=[]), site_entry(good.base),
                        site_entry(not_a_feed.base, via="feed"), site_entry(not_oai.base, via="oai-pmh"))
        result = runner.invoke(app, ["sync", str(path), "--root", str(tmp_path / "bags"), "--delay", "0",
                                     "--retries", "0", "--timeout", "1", "--json"])
        assert result.exit_code == 1, result.output
        document = json.loads(result.stdout)
        lines = result.stderr.strip().splitlines()
        expected = {
            html_sitemap: "is an HTML page, not a sitemap",
            garbage: "is not a sitemap (line 1",
            truncated: "is truncated or malformed (line 1",
            looping: "sitemap loop: " + looping.url("/sitemap.xml") + " is listed again",
            stalling: "no answer within the read timeout (1 s)",
            failing: "HTTP 503",
            elsewhere: "1 URL(s) on other hosts left out (first: http://other.invalid/node/1)",
            cut_ts: "mirror.ts.txt: truncated at line 2",
            not_a_feed: not_a_feed.url("/rss.xml") + " is not an RSS or Atom feed",
            not_oai: "is XML but not OAI-PMH (root <rss>)",
        }
        for site, reason in expected.items():
            mine = [line for line in lines if line.startswith(f"archiver: {site.base}: ")]
            assert len(mine) == 1 and reason in mine[0], (reason, lines)
        assert len(lines) == len(expected)
        report = {s["site"]: s for s in document["sites"]}
        assert report[good.base]["problems"] == [] and report[good.base]["listed"] == 2
        urls = outcomes(document)
        assert urls[good.url("/2025/01/10/post-0/")] == "new"
        assert urls[truncated.url("/node/1")] == "new"            # what could be read is kept...
        assert urls[elsewhere.url("/node/2")] == "new"
        assert urls[cut_ts.url("/library/node-1")] == "failed"    # (no such page on a Drupal site)
        assert not any("other.invalid" in u for u in urls)
        assert not report[truncated.base]["complete"]              # ...and says nothing about the rest
        assert document["counts"]["failed"] == 1
    finally:
        for site in [good, *sites]:
            site.close()


def test_a_damaged_listing_never_marks_texts_gone(tmp_path: Path) -> None:
    site = DrupalSite(nodes=3)
    try:
        root = tmp_path / "bags"
        path = manifest(tmp_path, site_entry(site.base))
        assert run_sync(path, root)[1]["counts"]["new"] == 3
        body = urlset(site.base, [("/node/1", site.texts["node-1"].mtime)]).encode()
        site.routes["/sitemap.xml"] = (200, {"Content-Type": "application/xml"}, body[:-5])
        code, document, stderr = run_sync(path, root)
        assert code == 1 and "truncated" in stderr
        assert document["counts"]["gone"] == document["counts"]["unlisted"] == 0
        assert not [e for e in read_events(root).events if e.type in ("gone", "unlisted")]
    finally:
        site.close()


def test_a_site_not_found_at_all_is_one_line(tmp_path: Path) -> None:
    nothing = SiteServer()
    nothing.respond = lambda path, query: NOT_FOUND  # type: ignore[method-assign]
    try:
        code, document, stderr = run_sync(manifest(tmp_path, site_entry(nothing.base)), tmp_path / "bags")
        assert code == 1 and document["sites"][0]["via"] is None
        assert stderr.count("\n") == 1 and "no listing found" in stderr and "/mirror.ts.txt: HTTP 404" in stderr
    finally:
        nothing.close()


# -- crash safety ---------------------------------------------------------------------------------

KILLS_PER_PHASE = 6


@pytest.mark.slow
def test_sync_survives_sigkill_at_random_moments(tmp_path: Path) -> None:
    """SIGKILL ``archiver sync`` at seeded random moments, first while it builds a collection,
    then while it takes in edits, additions and removals; each time the next run finishes the
    job: every text has its bags, none twice, each vanished text one ``gone`` event."""
    import random

    from test_crash_safety import SEED, LogWatch, Zygote, catalogue_ok, check_bag, count_new, kill_moment, \
        run_and_kill

    site = AmusewikiSite.synthetic(16)
    zygote = Zygote()
    rng = random.Random(SEED)
    root = tmp_path / "bags"
    path = manifest(tmp_path, site_entry(site.base))
    # A per-host delay spaces the page fetches (and so the bags) even across sync's worker
    # threads, so that kills drawn between two bags land there on a loaded machine too.
    args = ["sync", str(path), "--root", str(root), "--delay", "0.05", "--retries", "0", "--timeout", "5"]
    watch = LogWatch(root)
    checked: set[str] = set()

    def kill_loop(phase: str, to_write: int) -> int:
        """Kill runs until KILLS_PER_PHASE were killed running; return how many landed mid-way
        (some but not all of the phase's bags written)."""
        kills = attempts = mid_way = 0
        start = len(checked)
        while kills < KILLS_PER_PHASE:
            attempts += 1
            assert attempts < KILLS_PER_PHASE * 4, f"{phase}: runs keep finishing before the kill"
            remaining = to_write - (len(checked) - start)  # aim inside the work still to do
            # After at least one new bag and before the last (fetches are 0.05 s apart), so the
            # kills cut a half-done sync; kill_moment's start-up kills only when one bag is left.
            # Within the first half of what is left, so that several kills in a row land mid-way.
            wait_for, then = ((rng.randrange(1, remaining // 2 + 1), rng.uniform(0.0, 0.02)) if remaining >= 2
                              else kill_moment(rng, remaining))
            context = f"{phase}, kill {kills + 1}: after {wait_for} new bags + {then:.3f}s (CRASH_SEED={SEED})"
            before = set(root.iterdir()) if root.exists() else set()
            new_bags = count_new(root, {p.name for p in before})
            killed = run_and_kill(zygote, args, lambda: new_bags() >= wait_for, then)
            kills += killed
            bags = {b.name for b in list_bag_dirs(root)} if root.exists() else set()
            mid_way += bool(killed and len(bags - checked) and len(bags) - start < to_write)
            visible = {p.name for p in root.iterdir() if not p.name.startswith(".")} if root.exists() else set()
            assert visible == bags, f"{context}: folders that are not bags: {sorted(visible - bags)}"
            assert checked <= bags, f"{context}: bags disappeared: {sorted(checked - bags)}"
            for name in sorted(bags - checked):
                check_bag(root / name, context)
            checked.update(bags)
            for event in watch.check(context):
                if event.type == "capture" and event.outcome == "success":
                    assert event.bag in bags, f"{context}: event for a bag that is not there: {event.bag}"
            catalogue_ok(root, context)
            if not killed and len(bags) - start >= to_write:
                break  # a run finished the phase's work before its kill: later runs have nothing to cut
        return mid_way

    def finish(phase: str) -> dict:
        code, document, stderr = run_sync(path, root)
        assert code == 0, (phase, stderr, document["counts"])
        assert document["counts"]["failed"] == 0
        watch.check(f"{phase}: final run")
        return document

    try:
        mid_way = kill_loop("building", 16)
        assert mid_way >= 1, "no kill landed between the first and the last bag"
        finish("building")
        by_url = bags_by_url(root)
        assert sorted(by_url) == sorted(site.url(f"/library/{s}") for s in site.texts)
        assert all(len(names) == 1 for names in by_url.values()), "a text was bagged twice"

        slugs = sorted(site.texts)
        edited, removed = slugs[:4], slugs[4:6]
        for slug in edited:
            site.edit(slug, f"An edit to {slug}.")
        for slug in removed:
            site.remove(slug)
        site.add_synthetic("late-arrival-1")
        site.add_synthetic("late-arrival-2")
        # Six bags written in bursts by the build workers: a kill between two of them is likely, not
        # certain, on a loaded machine, so the two phases together must have cut at least two runs mid-way.
        mid_way += kill_loop("taking in changes", 6)
        assert mid_way >= 2, "too few kills landed between the first and the last bag"
        finish("taking in changes")
        by_url = bags_by_url(root)
        for slug in slugs + ["late-arrival-1", "late-arrival-2"]:
            expected = 2 if slug in edited else 1
            assert len(by_url[site.url(f"/library/{slug}")]) == expected, (slug, by_url[site.url(f"/library/{slug}")])
        gone = sorted(e.detail["url"] for e in read_events(root).events if e.type == "gone")
        assert gone == sorted(site.url(f"/library/{s}") for s in removed), "each vanished text: one gone event"

        site.clear_log()
        document = finish("at rest")
        assert document["counts"]["unchanged-not-fetched"] == 16
        assert site.paths_requested() == ["/robots.txt", "/mirror.ts.txt"]
    finally:
        zygote.close()
        site.close()


def _drop_events(root: Path, keep) -> None:
    """Rewrite the event log without the events ``keep`` refuses (a state a kill leaves)."""
    path = root / ".archiver" / "events.jsonl"
    lines = [line for line in path.read_text().splitlines() if keep(json.loads(line))]
    path.write_text("".join(line + "\n" for line in lines))


def test_an_edit_bagged_by_a_run_killed_before_its_event_is_not_bagged_again(tmp_path: Path) -> None:
    """The state a SIGKILL leaves between the rename of an edited text's new bag and its
    ``capture`` event (so no ``seen`` either): the next sync records that bag and finds the
    same text in it, so it logs ``unchanged-same-text`` and writes no second bag."""
    site = AmusewikiSite.synthetic(2)
    root = tmp_path / "bags"
    path = manifest(tmp_path, site_entry(site.base))
    try:
        assert run_sync(path, root)[0] == 0
        slug = sorted(site.texts)[0]
        url = site.url(f"/library/{slug}")
        site.edit(slug, f"An edit to {slug}.")
        code, document, _ = run_sync(path, root)
        assert code == 0 and outcomes(document)[url] == "changed"
        [old, new] = sorted(bags_by_url(root)[url])
        _drop_events(root, lambda e: not (e["bag"] == new and e["type"] in ("capture", "seen")))

        code, document, stderr = run_sync(path, root)
        assert code == 0, stderr
        assert outcomes(document)[url] == "unchanged-same-text", document
        assert sorted(bags_by_url(root)[url]) == [old, new], "the edit was bagged twice"
        events = [e for e in read_events(root).events if e.type == "capture" and e.detail.get("url") == url]
        assert [(e.outcome, e.bag, "recovered" in e.detail) for e in events[-2:]] == [
            ("success", new, True), ("unchanged", new, False)]
    finally:
        site.close()
