"""archiver discover: the texts a site publishes, from each kind of listing, on loopback sites
that behave like the real ones (tests/sites.py), with the requests each one costs."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from archiver.capture.discover import DiscoverOptions, discover
from archiver.capture.fetch import Fetcher, FetchSettings
from archiver.cli import app
from sites import OAI_PAGE, AmusewikiSite, DrupalSite, SiteServer, WordPressSite, urlset

REPO = Path(__file__).resolve().parent.parent
runner = CliRunner()


def fetcher(**settings: object) -> Fetcher:
    return Fetcher(FetchSettings(delay=0, retries=0, **settings))  # type: ignore[arg-type]


@pytest.fixture
def amusewiki(shared_dir: Path):
    site = AmusewikiSite.from_renderings(shared_dir / "realpages" / "amusewiki")
    yield site
    site.close()


@pytest.fixture
def wordpress():
    site = WordPressSite()
    yield site
    site.close()


@pytest.fixture
def drupal():
    site = DrupalSite()
    yield site
    site.close()


# -- amusewiki -------------------------------------------------------------------------------------

def test_amusewiki_mirror_ts_lists_every_text_with_its_time_in_one_request(amusewiki: AmusewikiSite) -> None:
    report = discover(amusewiki.base, DiscoverOptions(), fetcher())
    assert report.via == "amusewiki" and report.ok and report.complete
    assert len(amusewiki.texts) == 179
    assert {t.url for t in report.texts} == {amusewiki.url(f"/library/{slug}") for slug in amusewiki.texts}
    for listed in report.texts:
        text = amusewiki.texts[listed.url.rsplit("/", 1)[1]]
        assert listed.lastmod == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(text.mtime))
        assert listed.muse == amusewiki.url(f"/mirror/{text.path}")
    assert amusewiki.paths_requested() == ["/robots.txt", "/mirror.ts.txt"]  # specials left out too


def test_amusewiki_without_mirror_ts_reads_mirror_txt(amusewiki: AmusewikiSite) -> None:
    amusewiki.routes["/mirror.ts.txt"] = (404, {"Content-Type": "text/plain"}, b"no")
    report = discover(amusewiki.base, DiscoverOptions(via="amusewiki"), fetcher())
    assert report.ok and len(report.texts) == 179 and all(t.lastmod is None for t in report.texts)


def test_amusewiki_sitemap_feed_and_oai_pmh(amusewiki: AmusewikiSite) -> None:
    pages = {amusewiki.url(f"/library/{slug}") for slug in amusewiki.texts}
    by_sitemap = discover(amusewiki.base, DiscoverOptions(via="sitemap"), fetcher())
    assert by_sitemap.via == "sitemap" and {t.url for t in by_sitemap.texts} == pages
    by_feed = discover(amusewiki.base, DiscoverOptions(via="feed"), fetcher())
    assert len(by_feed.texts) == 20 and {t.url for t in by_feed.texts} < pages
    assert not by_feed.complete  # a feed lists recent items only
    assert all(t.lastmod for t in by_feed.texts)
    amusewiki.clear_log()
    by_oai = discover(amusewiki.base, DiscoverOptions(via="oai-pmh"), fetcher())
    assert by_oai.ok and by_oai.complete and {t.url for t in by_oai.texts} == pages
    oai_requests = [p for p in amusewiki.paths_requested() if p.startswith("/oai-pmh")]
    assert len(oai_requests) == -(-179 // OAI_PAGE)  # every resumption token followed, once
    assert "resumptionToken=50" in oai_requests[1]


def test_oai_pmh_since_asks_from_and_list_identifiers_works(amusewiki: AmusewikiSite) -> None:
    from archiver.capture.discover import oaipmh
    from archiver.capture.discover.listing import Findings

    for slug in list(amusewiki.texts)[:5]:
        amusewiki.texts[slug].mtime += 10 * 86400
    since = time.strftime("%Y-%m-%d", time.gmtime(max(t.mtime for t in amusewiki.texts.values())))
    result = subprocess.run([sys.executable, "-m", "archiver.cli", "discover", amusewiki.base, "--via", "oai-pmh",
                             "--since", since, "--delay", "0", "--json"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["count"] == 5
    assert any(f"from={since}" in p for p in amusewiki.paths_requested())
    found = Findings(amusewiki.base, DiscoverOptions())
    oaipmh.find(amusewiki.base, fetcher(), found, DiscoverOptions(), verb="ListIdentifiers")
    assert len(found.texts) == 179


# -- WordPress and Drupal (no ../shared needed) -------------------------------------------------

def test_wordpress_sitemap_index_from_robots_txt(wordpress: WordPressSite) -> None:
    wordpress.add_post("page-about", "/about/")
    report = discover(wordpress.base, DiscoverOptions(), fetcher())
    assert report.via == "sitemap" and report.ok and report.complete
    assert {t.url for t in report.texts} == {wordpress.url(t.path) for t in wordpress.texts.values()}
    assert all(t.lastmod for t in report.texts)
    assert wordpress.paths_requested() == ["/robots.txt", "/mirror.ts.txt", "/wp-sitemap.xml",
                                           "/wp-sitemap-posts-post-1.xml", "/wp-sitemap-posts-page-1.xml"]


def test_wordpress_feed_is_found_from_the_home_page(wordpress: WordPressSite) -> None:
    report = discover(wordpress.base, DiscoverOptions(via="feed"), fetcher())
    assert report.via == "feed" and len(report.texts) == 6 and not report.complete
    assert wordpress.paths_requested()[-2:] == ["/", "/feed/"]


def test_drupal_sitemap_and_rss(drupal: DrupalSite) -> None:
    report = discover(drupal.base, DiscoverOptions(), fetcher())
    assert report.via == "sitemap" and [t.url for t in report.texts] == [drupal.url(f"/node/{i}") for i in range(1, 6)]
    drupal.routes["/"] = (200, {"Content-Type": "text/html"}, b"<html><body>no feed announced</body></html>")
    by_feed = discover(drupal.base, DiscoverOptions(via="feed"), fetcher())
    assert len(by_feed.texts) == 5 and by_feed.texts[0].found_in == drupal.url("/rss.xml")


def test_match_exclude_limit_and_since(wordpress: WordPressSite) -> None:
    options = DiscoverOptions(match=r"post-[0-4]", exclude=r"post-3")
    assert sorted(t.url.split("/")[-2] for t in discover(wordpress.base, options, fetcher()).texts) == [
        "post-0", "post-1", "post-2", "post-4"]
    limited = discover(wordpress.base, DiscoverOptions(limit=2), fetcher())
    assert len(limited.texts) == 2 and not limited.complete
    latest = max(t.mtime for t in wordpress.texts.values())
    from datetime import datetime, timezone
    since = discover(wordpress.base, DiscoverOptions(since=datetime.fromtimestamp(latest, timezone.utc)), fetcher())
    assert len(since.texts) == 1


def test_a_sitemap_robots_txt_names_wrongly_is_not_taken_for_a_loop(drupal: DrupalSite) -> None:
    drupal.robots = f"User-agent: *\nSitemap: {drupal.base}/sitemap.xml\n"
    drupal.routes["/sitemap.xml"] = (200, {"Content-Type": "text/html"}, b"<html><body>Home</body></html>")
    report = discover(drupal.base, DiscoverOptions(via="sitemap"), fetcher())
    assert len(report.problems) == 1 and "loop" not in report.problems[0]
    assert report.problems[0].startswith("no listing found: ") and "is an HTML page" in report.problems[0]
    assert drupal.paths_requested().count("/sitemap.xml") == 1


def test_gzipped_sitemap_is_read(drupal: DrupalSite) -> None:
    drupal.routes["/sitemap.xml"] = (200, {"Content-Type": "application/gzip"},
                                     gzip.compress(urlset(drupal.base, [("/node/9", 1_700_000_000)]).encode()))
    report = discover(drupal.base, DiscoverOptions(via="sitemap"), fetcher())
    assert [t.url for t in report.texts] == [drupal.url("/node/9")]
    assert report.texts[0].lastmod == "2023-11-14T22:13:20Z"


def test_crawl_delay_is_honoured(drupal: DrupalSite) -> None:
    drupal.robots = "User-agent: *\nCrawl-delay: 0.4\n"
    polite = fetcher()
    started = time.monotonic()
    for path in ("/node/1", "/node/2", "/node/3"):
        polite.fetch(drupal.url(path))
    # robots.txt, then three pages each at least 0.4 s after the request before (--delay is 0)
    assert time.monotonic() - started >= 1.2
    assert drupal.paths_requested() == ["/robots.txt", "/node/1", "/node/2", "/node/3"]


def test_the_discover_cli_prints_texts_and_merges_them_into_a_manifest(wordpress: WordPressSite,
                                                                        tmp_path: Path) -> None:
    manifest = tmp_path / "zines.toml"
    manifest.write_text('[collection]\nid = "zines"  # kept as written\n\n[[sources]]\n'
                        f'url = "{wordpress.url("/2025/01/10/post-0/")}"\n')
    before = manifest.read_text()
    result = runner.invoke(app, ["discover", wordpress.base, "--delay", "0", "--manifest", str(manifest), "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["via"] == "sitemap" and document["count"] == 6
    assert document["merged"] == {"manifest": str(manifest), "added": 5, "already_there": 1}
    text = manifest.read_text()
    assert text.startswith(before) and text.count("[[sources]]") == 6
    again = runner.invoke(app, ["discover", wordpress.base, "--delay", "0", "--manifest", str(manifest)])
    assert again.exit_code == 0 and "0 added, 6 already there" in again.stdout
    assert manifest.read_text() == text
    plain = runner.invoke(app, ["discover", wordpress.base, "--delay", "0", "--limit", "2"])
    assert plain.exit_code == 0 and "2 texts via sitemap (listing incomplete)" in plain.stdout


@pytest.mark.parametrize("args,message", [
    (["--via", "gopher"], "--via 'gopher' is not one of"),
    (["--match", "("], "--match '(' is not a valid regular expression"),
    (["--since", "last tuesday"], "--since 'last tuesday' is not a date"),
])
def test_discover_bad_options_are_exit_2(wordpress: WordPressSite, args: list[str], message: str) -> None:
    result = runner.invoke(app, ["discover", wordpress.base, *args])
    assert result.exit_code == 2 and message in result.stderr
    assert wordpress.paths_requested() == []


# -- a 50,000-URL sitemap in bounded memory ---------------------------------------------------------

PEAK = """
import resource, sys
from archiver.capture.discover import DiscoverOptions, discover
from archiver.capture.fetch import Fetcher, FetchSettings
report = discover(sys.argv[1], DiscoverOptions(via="sitemap", limit=10), Fetcher(FetchSettings(delay=0)))
assert report.texts, report.problems
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def test_a_50000_url_sitemap_is_read_in_bounded_memory() -> None:
    sites = {}
    for count in (500, 50_000):
        site = SiteServer()
        body = urlset(site.base, [(f"/library/text-with-a-long-enough-name-{i:06d}", 1_700_000_000 + i)
                                  for i in range(count)]).encode()
        site.routes["/sitemap.xml"] = (200, {"Content-Type": "application/xml"}, body)
        sites[count] = (site, len(body))
    try:
        peaks = {}
        for count, (site, size) in sites.items():
            out = subprocess.run([sys.executable, "-c", PEAK, site.base], cwd=REPO, capture_output=True, text=True,
                                 timeout=120)
            assert out.returncode == 0, out.stderr
            peaks[count] = int(out.stdout) * 1024
        big_body = sites[50_000][1]
        # The body is held (as read in chunks, then joined) and iterparse keeps one <url> at a time:
        # measured ~4x the body. A whole lxml tree of the sitemap measured ~11.6x.
        assert peaks[50_000] - peaks[500] < 6 * big_body, (peaks, big_body)
    finally:
        for site, _ in sites.values():
            site.close()
