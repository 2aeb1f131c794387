"""Canonical text: normalisation, render/parse, and the retrieval Source note."""

from __future__ import annotations

import unicodedata
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archiver.capture.text import CanonicalText, normalise_body, ordinal, retrieval_source_note

# Text with the characters that make normalisation hard: CR/LF mixes, spaces
# and tabs, NBSP, combining accents (NFC), and ordinary words.
_pieces = st.sampled_from(["word", "Wörd", "e\u0301", "\u00e9", " ", "  ", "\t", "\n", "\r\n", "\r",
                           "\n\n\n", " \n ", "\u00a0", "“quoted”", "30", "th", "–", "\u2028"])
bodies = st.lists(_pieces, max_size=40).map("".join) | st.text(max_size=200)


@given(bodies)
@settings(max_examples=300, deadline=None)
def test_normalise_body_is_idempotent(text):
    once = normalise_body(text)
    assert normalise_body(once) == once


@given(bodies)
@settings(max_examples=300, deadline=None)
def test_normalise_body_never_alters_a_word(text):
    assert normalise_body(text).split() == unicodedata.normalize("NFC", text).split()


@given(bodies)
@settings(max_examples=200, deadline=None)
def test_normalise_body_shape(text):
    body = normalise_body(text)
    assert "\r" not in body
    assert "\n\n\n" not in body
    assert all(line == line.rstrip() for line in body.split("\n"))
    assert body == body.strip("\n")
    assert body == unicodedata.normalize("NFC", body)


def test_normalise_body_examples():
    assert normalise_body("One \r\n\n\n\nTwo\r\nlines  \n") == "One\n\nTwo\nlines"
    assert normalise_body("  indented verse\n   \nnext") == "  indented verse\n\nnext"
    assert normalise_body("cafe\u0301") == "caf\u00e9"


_values = st.none() | st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), min_size=1, max_size=30,
).map(lambda s: " ".join(unicodedata.normalize("NFC", s).split()) or None)


@given(_values, _values, _values, _values, _values, bodies.map(normalise_body))
@settings(max_examples=300, deadline=None)
def test_render_parse_round_trip(title, subtitle, author, date, source, body):
    text = CanonicalText(title, subtitle, author, date, source, body)
    rendered = text.render()
    assert CanonicalText.parse(rendered) == text
    header = "".join(f"{label}: {value}\n" for label, value in text.header())
    assert rendered == header + "\n" + text.to_dict()["body"]
    assert rendered.endswith("\n") and not rendered.endswith("\n\n\n")


def test_render_order_and_missing_values():
    text = CanonicalText(title="T", subtitle=None, author="A", date="", source="S", body="One\n\nTwo")
    assert text.render() == "Title: T\nAuthor: A\nSource: S\n\nOne\n\nTwo\n"
    assert text.to_dict() == {"title": "T", "subtitle": None, "author": "A", "date": None,
                              "source": "S", "body": "One\n\nTwo\n"}


def test_render_without_header_keeps_blank_line_so_parse_is_unambiguous():
    text = CanonicalText(None, None, None, None, None, "Title: not a header")
    assert text.render() == "\nTitle: not a header\n"
    assert CanonicalText.parse(text.render()) == text


def test_parse_rejects_unknown_header_line():
    with pytest.raises(ValueError, match="Publisher"):
        CanonicalText.parse("Title: x\nPublisher: y\n\nbody\n")


@pytest.mark.parametrize("day, expected", [
    (1, "1st"), (2, "2nd"), (3, "3rd"), (4, "4th"), (11, "11th"), (12, "12th"), (13, "13th"),
    (21, "21st"), (22, "22nd"), (23, "23rd"), (24, "24th"), (30, "30th"), (31, "31st"),
])
def test_ordinal(day, expected):
    assert ordinal(day) == expected


def test_retrieval_source_note():
    when = datetime(2026, 11, 25, 9, 30, tzinfo=timezone.utc)
    assert retrieval_source_note("https://example.org/a?b=1", when) == (
        "Retrieved on 25th November 2026 from https://example.org/a?b=1")


def test_retrieval_source_note_uses_utc_date():
    # 23:30 on 1 March in UTC-05:00 is already 2 March in UTC.
    when = datetime(2026, 3, 1, 23, 30, tzinfo=timezone(timedelta(hours=-5)))
    assert retrieval_source_note("u", when) == "Retrieved on 2nd March 2026 from u"


def test_to_dict_matches_the_rendered_header():
    text = CanonicalText(title="  Two\n lines  ", subtitle="cafe\u0301", author=None, date=None, source=None,
                         body="x")
    assert text.to_dict()["title"] == "Two lines" and text.to_dict()["subtitle"] == "caf\u00e9"
    assert text.render() == "Title: Two lines\nSubtitle: caf\u00e9\n\nx\n"
