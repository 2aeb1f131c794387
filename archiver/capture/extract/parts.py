"""What a profile finds on a page, before it becomes a CanonicalText."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class PageParts:
    """A profile's findings: header values as on the page, body paragraphs in order,
    and the download links the page offers ({"url", "kind"})."""

    title: str | None = None
    subtitle: str | None = None
    author: str | None = None
    date: str | None = None
    source: str | None = None
    paragraphs: list[str] = field(default_factory=list)
    links: list[dict[str, str]] = field(default_factory=list)
    date_iso: str | None = None  # the date as an ISO 8601 day, when known apart from ``date``

    @classmethod
    def from_header(cls, header: dict[str, str | None]) -> "PageParts":
        """Parts holding only header values (title, subtitle, author, date, source, date_iso)."""
        return cls(title=header.get("title"), subtitle=header.get("subtitle"), author=header.get("author"),
                   date=header.get("date"), source=header.get("source"), date_iso=header.get("date_iso"))

    def fill_missing(self, other: dict[str, str | None]) -> None:
        """Take header values from ``other`` where this page gave none."""
        for key in ("title", "subtitle", "author", "date", "source"):
            if not getattr(self, key) and other.get(key):
                setattr(self, key, other[key])
