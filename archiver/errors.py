"""The exceptions archiver raises.

One root, ``ArchiverError``; every error carries the CLI exit code it maps to.
Validation problems in bags are *data* (``archiver.bagit.verify.Problem``), not
exceptions.

    ArchiverError                  exit 3 unless a subclass says otherwise
    ├── UsageError                 exit 2: the caller asked for something malformed
    │   └── ManifestError          a collection manifest is unreadable or invalid
    ├── SourceError                exit 1: one source could not be captured
    │   ├── FetchError             HTTP or network failure (status, timeout, refused)
    │   │   └── HTTPStatusError    the server answered a status other than 200 (``status``)
    │   ├── RobotsDisallowed       robots.txt forbids the URL
    │   ├── TooLarge               body (raw or decoded) over the size cap
    │   ├── UnsupportedContent     not a text/HTML document
    │   └── ExtractionError        no text could be extracted
    └── StorageError               exit 3: a root, bag or target cannot be read or written
        └── TargetUnreachable      a mirror target (directory, S3) cannot be reached
"""

from __future__ import annotations

import re


class ArchiverError(Exception):
    """Root of archiver's exceptions. ``exit_code`` is what the CLI exits with."""

    exit_code = 3


class UsageError(ArchiverError):
    exit_code = 2


class ManifestError(UsageError):
    """A manifest is malformed. The message names the file and, where known, the line."""


class SourceError(ArchiverError):
    exit_code = 1


class FetchError(SourceError):
    pass


class HTTPStatusError(FetchError):
    """The final answer was an HTTP status other than 200 (or 304 to a conditional request)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class RobotsDisallowed(SourceError):
    pass


class TooLarge(SourceError):
    pass


class UnsupportedContent(SourceError):
    pass


class ExtractionError(SourceError):
    pass


class StorageError(ArchiverError):
    exit_code = 3


class TargetUnreachable(StorageError):
    pass


_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/?#\s@'\"]*@")


def redact_credentials(text: str) -> str:
    """``https://user:secret@host/x`` → ``https://***@host/x`` wherever a URL
    with credentials appears in ``text``: error lines never carry a secret."""
    return _USERINFO.sub(r"\1***@", text)
