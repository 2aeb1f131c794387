"""`archiver serve` and `archiver site` in real Chromium (Debian's `chromium`
package, driven by Playwright through ``executable_path``; no browser is
downloaded). Skipped when /usr/bin/chromium (or $ARCHIVER_CHROMIUM) is absent,
unless ARCHIVER_REQUIRE_BROWSER=1 (CI sets it): then its absence fails.

The tour takes the screenshots shown in the README; they are saved into
docs/screenshots/ only with ARCHIVER_SCREENSHOTS=1, so a test run leaves the
repository as it was."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from webcollection import collection  # noqa: F401 (fixture)

from archiver.web.app import create_app
from archiver.web.static_site import build_site

CHROMIUM = Path(os.environ.get("ARCHIVER_CHROMIUM", "/usr/bin/chromium"))
SHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"

REQUIRED = os.environ.get("ARCHIVER_REQUIRE_BROWSER") == "1"
if REQUIRED:
    assert CHROMIUM.exists(), f"ARCHIVER_REQUIRE_BROWSER=1 but {CHROMIUM} is absent (apt-get install chromium)"
    import playwright.sync_api as playwright_api
else:
    pytestmark_skip = pytest.mark.skipif(not CHROMIUM.exists(),
                                         reason=f"{CHROMIUM} is absent (apt-get install chromium)")
    playwright_api = pytest.importorskip("playwright.sync_api")
pytestmark = [pytest.mark.browser] + ([] if REQUIRED else [pytestmark_skip])


@pytest.fixture(scope="module")
def live(collection):
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(create_app(collection.root), host="127.0.0.1", port=0,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield chromium
        chromium.close()


class Watched:
    """A page whose console errors, page errors and requests are recorded."""

    def __init__(self, browser, **options) -> None:
        self.context = browser.new_context(viewport={"width": 1200, "height": 820}, **options)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.responses: list[str] = []
        self.failed: dict[str, str] = {}
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("response", lambda r: self.responses.append(r.url))
        self.page.on("requestfailed", lambda r: self.failed.__setitem__(r.url, r.failure or ""))

    def shot(self, name: str) -> None:
        png = self.page.screenshot()
        assert png.startswith(b"\x89PNG")
        if os.environ.get("ARCHIVER_SCREENSHOTS") == "1":
            SHOTS.mkdir(parents=True, exist_ok=True)
            (SHOTS / f"{name}.png").write_bytes(png)

    def close(self) -> None:
        self.context.close()


def test_tour_home_search_bag_timeline_diff_captured_by_keyboard_and_mouse(live, browser, collection) -> None:
    w = Watched(browser)
    page = w.page
    page.goto(live + "/")
    assert page.locator("h1").inner_text() == "The collection"
    w.shot("home")

    # Keyboard: the first Tab reaches the skip link, Enter moves to the content;
    # the main navigation is reachable by Tab and followed with Enter.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    page.goto(live + "/")
    for _ in range(6):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent") == "Browse":
            break
    assert page.evaluate("document.activeElement.textContent") == "Browse"
    page.keyboard.press("Enter")
    page.wait_for_url("**/browse")
    assert "3 sources" in page.locator("p.summary").inner_text()
    w.shot("browse")

    page.goto(live + "/search")
    page.locator("#q").fill("archive keeps")
    page.keyboard.press("Enter")
    page.wait_for_url("**/search?q=*")
    assert page.locator("ol.hits li").count() == 2  # both captures of the essay
    assert page.locator("ol.hits mark").first.inner_text().lower() in ("archive", "keeps")
    w.shot("search")

    page.locator(f'ol.hits a.title[href="/bag/{collection.essay_new}"]').click()
    page.wait_for_url(f"**/bag/{collection.essay_new}")
    assert page.locator("article.text").get_attribute("lang") == "en"
    assert "typos, errors and all" in page.locator("article.text").inner_text()
    w.shot("bag")
    page.emulate_media(media="print")  # the print style sheet keeps only the text
    assert not page.locator("aside.about").is_visible() and not page.locator("header.site").is_visible()
    assert page.locator("article.text").is_visible()
    page.emulate_media(media="screen")

    page.get_by_role("link", name="All captures of this source (2)").click()
    page.wait_for_url("**/source?url=*")
    assert page.locator("ol.timeline li").count() == 3
    w.shot("timeline")

    page.get_by_role("link", name="changes since the capture before").click()
    page.wait_for_url(f"**/diff/{collection.essay_old}/{collection.essay_new}")
    assert page.locator("table.diff ins").first.inner_text().strip() == "typos, errors"
    w.shot("diff")

    page.goto(f"{live}/bag/{collection.essay_new}")
    page.get_by_role("link", name="See the page as captured").click()
    page.wait_for_url("**/captured")
    frame = page.frame_locator("iframe.captured")
    assert frame.locator("h1").inner_text() == "On Keeping Things"
    w.shot("captured")
    assert w.errors == []
    w.close()


def test_script_in_an_archived_page_does_not_run_nor_reach_the_network(live, browser, collection) -> None:
    sentinel = collection.sentinel
    before = len(sentinel.requests)
    w = Watched(browser)
    w.page.goto(f"{live}/bag/{collection.hostile}/captured")
    w.page.wait_for_load_state("networkidle")
    time.sleep(1.0)  # time for any timer or late fetch the page might try
    frame = next(f for f in w.page.frames if f.url.endswith("/captured/page"))
    assert frame.title() != "SCRIPT RAN"
    assert "alert(3)" in w.page.frame_locator("iframe.captured").locator("article").inner_text()
    assert len(sentinel.requests) == before, sentinel.requests[before:]
    # Chromium reports the attempts it blocked as failed requests; none got a response.
    attempted = [url for url in w.requests if sentinel.base in url]
    assert not [url for url in w.responses if sentinel.base in url]
    assert all(w.failed.get(url) in ("csp", "net::ERR_BLOCKED_BY_CSP") for url in attempted), (attempted, w.failed)
    assert not [url for url in attempted if "fetch" in url or "script-image" in url]  # the script never ran
    # Opened directly (not in the iframe), the response's own CSP still forbids both.
    w.page.goto(f"{live}/bag/{collection.hostile}/captured/page")
    time.sleep(1.0)
    assert w.page.title() != "SCRIPT RAN" and len(sentinel.requests) == before
    w.close()

    # Control: the same page from its live origin does run its script and
    # reach the sentinel, so the checks above can fail.
    control = Watched(browser)
    control.page.goto(collection.hostile_url)
    deadline = time.monotonic() + 10
    while len(sentinel.requests) == before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(sentinel.requests) > before and control.page.title() == "SCRIPT RAN"
    control.close()


def test_static_site_from_file_url_with_and_without_scripts(browser, collection, tmp_path) -> None:
    out = tmp_path / "site"
    build_site(collection.root, out)
    w = Watched(browser)
    w.page.goto((out / "index.html").as_uri())
    assert w.page.locator("h1").inner_text() == "The collection"
    w.page.get_by_role("link", name="Search", exact=True).first.click()
    w.page.locator("#q").fill("entraide")
    w.page.keyboard.press("Enter")
    results = w.page.locator("#results ol.hits a.title")
    assert results.count() == 1 and results.first.inner_text() == "L'entraide"
    w.shot("static-search")
    results.first.click()
    assert "L'entraide est un facteur" in w.page.locator("article.text").inner_text()
    w.page.goto((out / "search.html").as_uri() + "?q=onerror")
    assert "<img" in w.page.locator("#results").inner_text()  # the hostile author, as text
    assert w.errors == []
    assert all(url.startswith("file://") for url in w.requests)
    w.close()

    quiet = Watched(browser, java_script_enabled=False)
    quiet.page.goto((out / "search.html").as_uri())
    assert "every text is listed under Browse" in quiet.page.locator("main").inner_text()
    quiet.page.get_by_role("link", name="Browse").last.click()
    assert quiet.page.locator("table.sources tbody tr").count() == 3
    quiet.close()
