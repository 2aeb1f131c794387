"""The extraction's tree walks select exactly what their XPath definitions select.

Text mass, post containers, date places, ``<meta>`` lookups and ``has_class``
were XPath scans; they are now single walks of the tree (several times
faster). The XPath each one replaced is kept here as its specification and
compared with the walk on tricky markup (comments, tails, nested furniture,
a second ``<body>``), on every extraction fixture and, when ../shared is
present, on a sample of the real pages.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from lxml.etree import _Element

from archiver.capture.extract import generic, metadata
from archiver.capture.extract.htmltext import has_class, parse_html

FIXTURES = Path(__file__).parent / "fixtures" / "extract"

MASS_XPATH = ("//body//text()[not(ancestor::script or ancestor::style or ancestor::noscript or ancestor::a"
              " or ancestor::nav or ancestor::header or ancestor::footer or ancestor::aside"
              " or ancestor::form or ancestor::select or ancestor::button)]")
POST_CANDIDATES_XPATH = (
    '//body//*[starts-with(@id, "p") or starts-with(@id, "msg") or starts-with(@id, "message")'
    ' or starts-with(@id, "reply") or starts-with(@id, "P") or starts-with(@id, "M") or starts-with(@id, "R")'
    ' or contains(@class, "post") or contains(@class, "Post") or contains(@class, "message")'
    ' or contains(@class, "Message")]')
DATE_PLACES_XPATH = "//body//*[" + " or ".join(
    f'contains(@{attribute}, "{word}")' for attribute in ("class", "itemprop", "data-testid")
    for word in ("date", "Date", "publish", "posted", "byline")) + "]"
META_KEYS = ("og:title", "twitter:title", "DC.title", "author", "article:author", "parsely-author",
             "article:published_time", "datePublished", "date", "og:type", "missing")
CLASS_NAMES = ("entry-content", "node", "hentry", "field--name-body", "fn", "comment")

TRICKY = """<html><head><title>t</title>
<meta property="og:title" content=""><meta name="og:title" content="  Second  title "><meta property="og:type">
<meta itemprop="author" content="Jane"><meta name="author" content="John"></head>
<body>Body text <!-- a comment --> after the comment <?pi x?> and after a PI
<p>One <a href="#">link <b>bold</b></a> tail of link <span>span</span> tail</p>
<nav>nav <p>in nav</p></nav> after nav
<div class="post-body Post message"><p id="post-12">first</p><p id="P3">x</p><p id="msg_4">y</p>
<p id="reply7" class="forum-post">z</p><p id="mSG-5">not a candidate id</p><p id="post">no number</p></div>
<form><p>in form <a>link</a></p><select><option>opt</option></select></form> after form
<header><time class="date">1 May 2020</time></header>
<div class="update-info" itemprop="datePublished" data-testid="publishDate">5 May 2020</div>
<span class="x-byline">By Jane</span><span class="Dateline">Dated</span><i class="posted">posted</i>
<script>var date = 1;</script><style>.p{}</style><noscript>no script</noscript>
<aside>aside <footer>footer</footer></aside>  <button>press</button>   trailing
<div class="a  entry-content&#9;b"><p class="entry-contentx">x</p><p class="x-entry-content">y</p>
<p class=" entry-content ">z</p><p class="node hentry">n</p><p class="field--name-body comment fn">f</p></div>
</body></html>"""


def mass_by_xpath(tree: _Element) -> int:
    return sum(len(text.strip()) for text in tree.xpath(MASS_XPATH))


def post_count_by_xpath(tree: _Element) -> int:
    return sum(1 for element in tree.xpath(POST_CANDIDATES_XPATH)
               if generic._POST_ID.match(element.get("id") or "")
               or any(generic._POST_CLASS.match(name) for name in (element.get("class") or "").split()))


def meta_by_xpath(tree: _Element, key: str) -> str | None:
    for attribute in ("property", "name", "itemprop"):
        for element in tree.xpath(f'//meta[@{attribute}="{key}"][@content]'):
            value = " ".join(element.get("content").split())
            if value:
                return value
    return None


def old_has_class(name: str) -> str:
    return f'contains(concat(" ", normalize-space(@class), " "), " {name} ")'


def assert_walks_match_xpath(tree: _Element) -> None:
    assert generic.text_mass(tree) == mass_by_xpath(tree)
    assert metadata._date_places(tree) == tree.xpath(DATE_PLACES_XPATH)
    for key in META_KEYS:
        assert metadata._meta(tree, key) == meta_by_xpath(tree, key), key
    for name in CLASS_NAMES:
        assert tree.xpath(f"//*[{has_class(name)}]") == tree.xpath(f"//*[{old_has_class(name)}]"), name


def test_walks_match_their_xpath_on_tricky_markup():
    tree = parse_html(TRICKY)
    assert_walks_match_xpath(tree)
    assert generic.post_containers(tree) == post_count_by_xpath(tree) == 5  # "message" is a post class too (Vanilla forums)
    assert generic.is_discussion(tree)
    # the fixture exercises each case: text around comments and PIs, excluded subtrees with tails
    assert mass_by_xpath(tree) > 0 and len(tree.xpath(DATE_PLACES_XPATH)) == 5
    assert metadata._meta(tree, "og:title") == "Second title" and metadata._meta(tree, "author") == "John"
    assert len(tree.xpath(f"//*[{has_class('entry-content')}]")) == 2


def test_walks_match_their_xpath_with_two_bodies_and_furniture_above_the_body():
    # lxml keeps a body that a fragment parser or a caller put inside another element
    tree = parse_html("<html><body><p>outer</p></body></html>")
    inner = parse_html("<html><body><p class='date'>1 May 2020</p><div id='post-1'>x</div></body></html>")
    tree.find("body").append(inner.find("body"))
    nav = tree.makeelement("nav", {})
    nav.append(parse_html("<html><body><p>in nav</p></body></html>").find("body"))
    tree.append(nav)
    assert len(tree.xpath("//body")) == 3
    assert_walks_match_xpath(tree)
    assert generic.post_containers(tree) == post_count_by_xpath(tree) == 1


@pytest.mark.parametrize("name", sorted(path.name for path in FIXTURES.iterdir() if (path / "page.html").is_file()))
def test_walks_match_their_xpath_on_fixtures(name):
    tree = parse_html((FIXTURES / name / "page.html").read_text(encoding="utf-8"))
    assert_walks_match_xpath(tree)
    assert generic.post_containers(tree) == post_count_by_xpath(tree)


def test_walks_match_their_xpath_on_real_pages(shared_dir):
    pages = sorted((shared_dir / "realpages").glob("*/*/page.html.gz"))[::15]
    if not pages:
        pytest.skip("no realpages under ../shared")
    for page in pages:
        tree = parse_html(gzip.decompress(page.read_bytes()).decode("utf-8", errors="replace"))
        assert_walks_match_xpath(tree)
        assert sum(generic._is_post_candidate(element) for element in tree.xpath("//body//*")) == len(
            tree.xpath(POST_CANDIDATES_XPATH)), page
