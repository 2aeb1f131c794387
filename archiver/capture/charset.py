"""Decode an HTML document's bytes to text, saying which charset was used and why.

Order (the snapshot issue): the HTTP ``Content-Type`` charset, then a byte
order mark, then a ``<meta>`` declaration, then detection with
charset-normalizer. A declared charset that Python does not know, or that
fails a strict decode, is wrong: it is recorded in ``rejected`` and the next
method is tried. Decoding never raises; when nothing decodes strictly the body
is decoded as UTF-8 with U+FFFD replacement characters and ``how`` says so.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass, field

import charset_normalizer

HOW_VALUES = ("http-header", "bom", "meta", "detected", "replacement")

# WHATWG Encoding: these labels mean windows-1252 in every browser, and pages
# labelled latin-1 routinely contain curly quotes in 0x80-0x9F.
_WINDOWS_1252_ALIASES = {"iso8859-1", "ascii", "latin-1", "iso-8859-1", "us-ascii"}

_WIDE_ENCODINGS = ["utf_16", "utf_16_be", "utf_16_le", "utf_32", "utf_32_be", "utf_32_le", "utf_7"]

_NEAR_CHAOS = 0.1
_WEB_COMMON = ("cp1252", "cp1251", "cp1250", "shift_jis", "euc_jp", "gb18030", "gbk", "big5",
               "euc_kr", "koi8_r", "iso8859_2", "cp1253", "cp1254", "cp1255", "cp1256", "cp874")

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),  # before UTF-16 LE: it starts with the same two bytes
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)

# How far into the document to look for <meta>; the HTML standard says 1024
# bytes, real pages put long scripts first, so look further.
_META_WINDOW = 16384
_META_CHARSET = re.compile(
    rb"""<meta[^>]+?charset\s*=\s*["']?\s*([A-Za-z0-9_.:\-]+)""", re.IGNORECASE)
_XML_ENCODING = re.compile(rb"""^<\?xml[^>]+encoding\s*=\s*["']([A-Za-z0-9_.:\-]+)""")

_PREFERRED_NAMES = {
    "utf-8": "utf-8", "cp1252": "windows-1252", "iso8859-1": "iso-8859-1",
    "iso8859-15": "iso-8859-15", "cp1251": "windows-1251", "cp1250": "windows-1250",
    "utf-16-le": "utf-16le", "utf-16-be": "utf-16be", "utf-32-le": "utf-32le",
    "utf-32-be": "utf-32be", "shift_jis": "shift_jis", "euc_jp": "euc-jp", "gb2312": "gb2312",
    "gbk": "gbk", "gb18030": "gb18030", "big5": "big5", "koi8-r": "koi8-r", "euc_kr": "euc-kr",
}


@dataclass
class DecodedDocument:
    text: str
    charset: str          # a preferred (IANA-style) name, e.g. "utf-8", "windows-1252"
    how: str              # one of HOW_VALUES
    rejected: list[str] = field(default_factory=list)  # e.g. "http-header: 'latin-9x' is unknown"


def charset_name(label: str) -> str | None:
    """The preferred name of a charset label, or None when Python does not know it."""
    try:
        info = codecs.lookup(label.strip().strip("\"'"))
    except (LookupError, ValueError):
        return None
    # Python also registers codecs that are not charsets ("undefined" always
    # fails; "base64", "rot13", "zlib" are bytes-to-bytes transforms).
    if not getattr(info, "_is_text_encoding", True) or info.name == "undefined":
        return None
    return _PREFERRED_NAMES.get(info.name, info.name)


def _strict_decode(body: bytes, label: str) -> tuple[str, str] | str:
    """(text, charset) on success, else the reason for rejecting the label."""
    name = charset_name(label)
    if name is None:
        return f"{label!r} is unknown"
    candidates = [name]
    if codecs.lookup(name).name in _WINDOWS_1252_ALIASES:
        candidates.insert(0, "windows-1252")
    for candidate in candidates:
        try:
            text = body.decode(candidate, errors="strict")
        except (UnicodeError, LookupError):
            continue
        return text.removeprefix("\ufeff"), candidate
    return f"{label!r} does not decode the body"


def _bom_charset(body: bytes) -> str | None:
    for bom, name in _BOMS:
        if body.startswith(bom):
            return name
    return None


def _meta_charset(body: bytes) -> str | None:
    head = body[:_META_WINDOW]
    match = _XML_ENCODING.match(head.lstrip()) or _META_CHARSET.search(head)
    if match is None:
        return None
    label = match.group(1).decode("ascii", "replace")
    # HTML: a <meta> naming UTF-16 in a document readable as ASCII means UTF-8.
    if label.lower().replace("_", "-").startswith("utf-16"):
        return "utf-8"
    return label


def _detect(body: bytes) -> str | None:
    """The most plausible charset for undeclared bytes, or None."""
    try:
        body.decode("utf-8", errors="strict")
        # Valid UTF-8 with any non-ASCII byte is almost never an accident.
        return "utf-8"
    except UnicodeDecodeError:
        pass
    # Without a BOM an HTML document is never UTF-16/32 (WHATWG never sniffs
    # them), and short latin-1 bodies otherwise "detect" as UTF-16.
    matches = list(charset_normalizer.from_bytes(body, cp_exclusion=_WIDE_ENCODINGS))
    if not matches:
        return None
    best = matches[0]
    # charset-normalizer's chaos scores separate close single-byte Latin
    # encodings poorly (French cp1252 scores as cp1257); among the near-best
    # candidates prefer the encodings the web actually uses.
    near = [m for m in matches if m.chaos <= best.chaos + _NEAR_CHAOS]
    for preferred in _WEB_COMMON:
        for match in near:
            if preferred in match.could_be_from_charset:
                return preferred
    return best.encoding


def decode_document_report(body: bytes, header_charset: str | None) -> DecodedDocument:
    """Decode ``body``; see the module docstring for the order of methods."""
    rejected: list[str] = []
    attempts = (
        ("http-header", lambda: header_charset),
        ("bom", lambda: _bom_charset(body)),
        ("meta", lambda: _meta_charset(body)),
    )
    for how, find_label in attempts:
        label = find_label()
        if not label:
            continue
        result = _strict_decode(body, label)
        bom = _bom_charset(body)
        if how == "http-header" and bom and not isinstance(result, str) and result[1] != charset_name(bom):
            # A byte order mark is unambiguous; a header that contradicts it is wrong.
            result = f"{label!r} contradicts the {bom} byte order mark"
        if isinstance(result, str):
            rejected.append(f"{how}: {result}")
            continue
        text, charset = result
        return DecodedDocument(text, charset, how, rejected)

    detected = _detect(body)
    if detected is not None:
        result = _strict_decode(body, detected)
        if not isinstance(result, str):
            return DecodedDocument(result[0], result[1], "detected", rejected)
        rejected.append(f"detected: {result}")
    text = body.decode("utf-8", errors="replace").removeprefix("\ufeff")
    return DecodedDocument(text, "utf-8", "replacement", rejected)


def decode_document(body: bytes, header_charset: str | None) -> tuple[str, str, str]:
    """(text, charset, how); ``how`` is "http-header", "bom", "meta", "detected",
    or "replacement" when nothing decoded strictly and U+FFFD stands in for bad bytes."""
    decoded = decode_document_report(body, header_charset)
    return decoded.text, decoded.charset, decoded.how
