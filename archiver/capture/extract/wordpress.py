"""WordPress blogs and distro sites.

Title from ``.entry-title``, author from the byline (``.author.vcard``),
date from ``time.entry-date`` (the published one), body from
``.entry-content``. Jetpack share buttons (``sharedaddy``), related posts
(``jp-relatedposts``), comments, post navigation and "like" widgets are
dropped even where themes and plugins put them inside ``.entry-content``.
Documents linked from the post (PDF, EPUB …) are recorded as links.
"""

from __future__ import annotations

import re

from lxml.etree import _Element

from archiver.capture.extract.htmltext import class_list, has_class, element_paragraphs, element_text, linked_documents
from archiver.capture.extract.parts import PageParts

NAME = "wordpress"
VERSION = "archiver-wordpress/1"

_NOT_BODY_CLASSES = re.compile(
    r"^(?:sharedaddy|sd-sharing-enabled|sd-block|sd-like|sharing|share-buttons|jp-relatedposts"
    r"|jp-relatedposts-headline|wp-block-jetpack-related-posts|comments-area|comment-respond"
    r"|comment-list|post-navigation|navigation|nav-links|posts-navigation|wpcnt|addtoany_share_save_container"
    r"|a2a_kit|heateor_sss_sharing_container|crp_related|yarpp-related|jetpack-likes-widget-wrapper"
    r"|entry-footer|entry-meta|post-tags|tags-links|cat-links|page-links|wp-block-post-navigation-link"
    r"|wp-block-comments|wp-block-post-comments-form)$")
_NOT_BODY_IDS = frozenset({"comments", "respond", "jp-relatedposts", "jp-post-flair", "nav-below",
                           "nav-above", "related-posts"})


# Readers' comments are never the post, even where a theme marks them up like one.
_IN_COMMENTS = ("ancestor-or-self::*[@id='comments' or @id='respond' or "
                + " or ".join(has_class(name) for name in ("comments-area", "comment", "comment-list",
                                                             "commentlist", "comment-body", "comments"))
                + "]")


def _post_contents(tree: _Element) -> list[_Element]:
    """The ``.entry-content`` elements outside the comments section."""
    return [element for element in tree.xpath(f"//*[{has_class('entry-content')}]")
            if not element.xpath(_IN_COMMENTS)]


def matches(tree: _Element) -> bool:
    if not _post_contents(tree):
        return False
    generator = " ".join(tree.xpath('//meta[@name="generator"]/@content'))
    return ("WordPress" in generator or bool(tree.xpath('//link[contains(@href, "wp-content")]'
                                                        ' | //script[contains(@src, "wp-content")]'
                                                        ' | //link[contains(@href, "wp-includes")]'
                                                        ' | //*[contains(@class, "wp-block")]'))
            or bool(tree.xpath(f"//*[{has_class('hentry')}]")))


def _is_not_body(element: _Element) -> bool:
    if element.get("id") in _NOT_BODY_IDS:
        return True
    return any(_NOT_BODY_CLASSES.match(name) for name in class_list(element))


def _post(tree: _Element) -> _Element:
    """The post shown on a single-post page: the article holding the longest content."""
    content = max(_post_contents(tree), key=lambda element: len(element.text_content()))
    for ancestor in content.iterancestors():
        if ancestor.tag == "article" or "hentry" in class_list(ancestor) or "post" in class_list(ancestor):
            return ancestor
    return tree


def extract(tree: _Element, url: str | None) -> PageParts:
    post = _post(tree)
    contents = [element for element in _post_contents(tree) if post in element.iterancestors()] or _post_contents(tree)
    content = max(contents, key=lambda element: len(element.text_content()))
    title = (post.xpath(f".//*[{has_class('entry-title')}]") or tree.xpath(f"//*[{has_class('entry-title')}]")
             or tree.xpath("//h1"))
    author = post.xpath(f".//*[{has_class('author')}][{has_class('vcard')}]") or post.xpath(
        './/*[@rel="author"]')
    author_name = None
    if author:
        named = author[0].xpath(f".//*[{has_class('fn')}]")
        author_name = element_text(named[0] if named else author[0])
    dates = (post.xpath(f".//time[{has_class('entry-date')}][{has_class('published')}]")
             or post.xpath(f".//time[{has_class('entry-date')}]") or post.xpath(".//time"))
    links = linked_documents(content, url)
    return PageParts(
        title=element_text(title[0]) if title else None,
        author=author_name,
        date=element_text(dates[0]) if dates else None,
        paragraphs=element_paragraphs(content, drop=_is_not_body),
        links=links,
    )
