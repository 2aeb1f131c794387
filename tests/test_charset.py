"""Charset decoding: header, BOM, <meta>, detection, and wrong declarations."""

from __future__ import annotations

import codecs

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archiver.capture.charset import HOW_VALUES, decode_document, decode_document_report

FRENCH = ("<html><head><title>Essai</title></head><body>"
          + "<p>Le café est très agréable à côté de la fenêtre, où l’on voit la mer. "
            "Les élèves étaient déjà partis quand la pluie a commencé.</p>" * 12
          + "</body></html>")
RUSSIAN = "<html><body>" + "<p>Сегодня в библиотеке тихо, читатели листают старые газеты.</p>" * 12 + "</body></html>"


def test_http_header_charset_wins_when_it_decodes():
    text, charset, how = decode_document(FRENCH.encode("utf-8"), "UTF-8")
    assert (text, charset, how) == (FRENCH, "utf-8", "http-header")


def test_latin1_label_reads_as_windows_1252_like_browsers():
    body = "<p>“Quoted” café</p>".encode("cp1252")
    assert decode_document(body, "ISO-8859-1") == ("<p>“Quoted” café</p>", "windows-1252", "http-header")


def test_bom_is_used_and_stripped():
    assert decode_document(codecs.BOM_UTF8 + "<p>été</p>".encode(), None) == ("<p>été</p>", "utf-8", "bom")
    body = codecs.BOM_UTF16_LE + "<p>été</p>".encode("utf-16-le")
    assert decode_document(body, None) == ("<p>été</p>", "utf-16le", "bom")


def test_header_contradicting_a_bom_is_rejected():
    body = codecs.BOM_UTF16_LE + "<p>plain ascii text</p>".encode("utf-16-le")
    # windows-1252 decodes any byte, so only the BOM shows the label is wrong
    report = decode_document_report(body, "iso-8859-1")
    assert (report.text, report.charset, report.how) == ("<p>plain ascii text</p>", "utf-16le", "bom")
    assert report.rejected == ["http-header: 'iso-8859-1' contradicts the utf-16-le byte order mark"]


@pytest.mark.parametrize("declaration", [
    '<meta charset="windows-1251">',
    "<meta http-equiv='Content-Type' content='text/html; charset=windows-1251'>",
])
def test_meta_declaration(declaration):
    page = f"<html><head>{declaration}</head>" + RUSSIAN[6:]
    assert decode_document(page.encode("cp1251"), None) == (page, "windows-1251", "meta")


def test_wrong_declared_charset_falls_through_and_is_recorded():
    page = '<html><head><meta charset="utf-8"></head>' + FRENCH[6:]
    report = decode_document_report(page.encode("cp1252"), "utf-8")
    assert (report.text, report.charset, report.how) == (page, "windows-1252", "detected")
    assert report.rejected == ["http-header: 'utf-8' does not decode the body",
                               "meta: 'utf-8' does not decode the body"]


def test_unknown_charset_name_is_rejected():
    report = decode_document_report(FRENCH.encode("utf-8"), "x-no-such-charset")
    assert (report.text, report.charset, report.how) == (FRENCH, "utf-8", "detected")
    assert report.rejected == ["http-header: 'x-no-such-charset' is unknown"]


@pytest.mark.parametrize("text, encoding, expected", [
    (FRENCH, "cp1252", "windows-1252"),
    (RUSSIAN, "cp1251", "windows-1251"),
    (RUSSIAN, "koi8-r", "koi8-r"),
    (FRENCH, "utf-8", "utf-8"),
])
def test_detection(text, encoding, expected):
    assert decode_document(text.encode(encoding), None) == (text, expected, "detected")


def test_undecodable_bytes_fall_back_to_replacement():
    text, charset, how = decode_document(b"\xff\xfe\xfd" + b"\x81" * 3, "utf-8")
    assert how in HOW_VALUES
    assert isinstance(text, str)


@given(st.binary(max_size=300), st.sampled_from([None, "utf-8", "latin-1", "bogus", "utf-16", ""]))
@settings(max_examples=150, deadline=None)
def test_never_raises_on_bytes(body, header):
    text, charset, how = decode_document(body, header)
    assert isinstance(text, str) and charset and how in HOW_VALUES
