"""The canonical text: the plain-text form in which archiver keeps a work.

The format is the one The Anarchist Library publishes plain texts in::

    Title: Always Against The Tanks
    Subtitle: Three Essays on Red Nationalism
    Date: November 22, 2019
    Source: Retrieved on 30th October 2020 from www.sproutdistro.com

    First paragraph…

    Second paragraph…

Header lines appear only for values that exist, always in the order Title,
Subtitle, Author, Date, Source; then one blank line, the body, and one final
newline. UTF-8, NFC, LF line ends, no trailing spaces. Words are never changed.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, fields
from datetime import datetime, timezone

HEADER_LABELS = ("Title", "Subtitle", "Author", "Date", "Source")

_FIELD_FOR_LABEL = {label: label.lower() for label in HEADER_LABELS}
_HEADER_LINE = re.compile(r"^(Title|Subtitle|Author|Date|Source): (.*)$")
_WHITESPACE_RUN = re.compile(r"\s+")


def collapse_whitespace(value: str) -> str:
    """One line, single spaces, no outer spaces: what a header value may hold."""
    return _WHITESPACE_RUN.sub(" ", unicodedata.normalize("NFC", value)).strip()


def normalise_body(text: str) -> str:
    """Bring a body to canonical form without altering a single word.

    NFC, LF line ends, no trailing white space on any line, no blank lines at
    either end, and paragraphs separated by exactly one blank line (a line of
    only white space counts as blank). Single line breaks inside a paragraph
    (verse, ``<br>``) and leading indentation are kept. Idempotent.

    >>> normalise_body("One \\r\\n\\n\\n\\nTwo\\nlines  ")
    'One\\n\\nTwo\\nlines'
    """
    text = unicodedata.normalize("NFC", text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    paragraphs: list[list[str]] = [[]]
    for line in text.split("\n"):
        line = line.rstrip()
        if line:
            paragraphs[-1].append(line)
        elif paragraphs[-1]:
            paragraphs.append([])
    return "\n\n".join("\n".join(lines) for lines in paragraphs if lines)


@dataclass(frozen=True)
class CanonicalText:
    """A work as archiver keeps it. Empty strings count as absent values."""

    title: str | None
    subtitle: str | None
    author: str | None
    date: str | None
    source: str | None
    body: str

    def header(self) -> list[tuple[str, str]]:
        """The (label, value) pairs that exist, in canonical order, values on one line."""
        pairs = []
        for label in HEADER_LABELS:
            value = getattr(self, _FIELD_FOR_LABEL[label])
            if value is not None and collapse_whitespace(value):
                pairs.append((label, collapse_whitespace(value)))
        return pairs

    def render(self) -> str:
        """The whole canonical text, ready to be written as UTF-8.

        The blank line after the header is always written, even with no
        header, so that ``parse`` can tell a body line from a header line.
        """
        head = "".join(f"{label}: {value}\n" for label, value in self.header())
        body = normalise_body(self.body)
        return head + "\n" + (body + "\n" if body else "")

    @classmethod
    def parse(cls, text: str) -> "CanonicalText":
        """Read a canonical text back (the inverse of ``render``).

        Header lines are read up to the first blank line; the rest, without
        its final newline, is the body. Raises ValueError on a line in the
        header block that is not a known ``Label: value`` line.
        """
        text = text.replace("\r\n", "\n")
        values: dict[str, str | None] = {f.name: None for f in fields(cls)}
        head, separator, body = text.partition("\n\n")
        if not separator:
            # A header with no body at all: "Title: x\n\n" was cut to "Title: x\n".
            head, body = text.rstrip("\n"), ""
        if text.startswith("\n"):
            head, body = "", text[1:]
        for line in head.split("\n") if head else []:
            match = _HEADER_LINE.match(line)
            if match is None:
                raise ValueError(f"not a canonical header line: {line!r}")
            values[_FIELD_FOR_LABEL[match.group(1)]] = match.group(2)
        if body.endswith("\n"):
            body = body[:-1]
        values["body"] = body
        return cls(**values)  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, str | None]:
        """The header fields and body as ``extract --json`` shows them: ``body`` is
        the rendered text after the header's blank line, final newline included."""
        values = dict((label.lower(), value) for label, value in self.header())
        return {
            "title": values.get("title"),
            "subtitle": values.get("subtitle"),
            "author": values.get("author"),
            "date": values.get("date"),
            "source": values.get("source"),
            "body": (normalise_body(self.body) + "\n") if normalise_body(self.body) else "",
        }


def ordinal(day: int) -> str:
    """1st 2nd 3rd 4th … 11th 12th 13th … 21st 22nd 23rd … 31st."""
    if 11 <= day % 100 <= 13:
        suffix = "th"
    else:
        suffix = {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{day}{suffix}"


def retrieval_source_note(url: str, when: datetime) -> str:
    """The Source note archiver writes when a page has none of its own.

    >>> retrieval_source_note("https://example.org/a", datetime(2026, 11, 25))
    'Retrieved on 25th November 2026 from https://example.org/a'
    """
    if when.tzinfo is not None:
        # Retrieval dates are UTC everywhere else in a bag; keep the note consistent.
        when = when.astimezone(timezone.utc)
    month = ("January", "February", "March", "April", "May", "June", "July", "August",
             "September", "October", "November", "December")[when.month - 1]
    return f"Retrieved on {ordinal(when.day)} {month} {when.year} from {url}"
