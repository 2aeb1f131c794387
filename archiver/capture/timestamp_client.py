"""Asking a Time-Stamp Authority (RFC 3161 over HTTP, RFC 3161 §3.4) to stamp
a bag's tag manifest.

    >>> token = stamp(manifest_bytes, "https://tsa.example.org/tsr")   # TimestampError if not
    >>> stamp_bag(Path("tmp-bag"), "https://tsa.example.org/tsr")      # writes the .tsr file

A TSA request is not a capture: robots.txt and the per-host delay do not
apply, but it has a timeout, a size cap on the reply and no redirects (a
TSA that redirects is reported, not followed). Every failure is a
TimestampError whose message says why; the caller keeps the bag unstamped.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import requests

from archiver import __version__
from archiver.bagit.timestamp import (MAX_TOKEN, STAMPED_MANIFEST, TIMESTAMP_FILE, TimestampError,
                                      accept_reply, make_request)

CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 30.0


def stamp(manifest: bytes, url: str, timeout: tuple[float, float] | None = None) -> bytes:
    """A checked token (DER TimeStampResp) for the SHA-512 of ``manifest``.
    ``timeout``: (connect, read) seconds; default CONNECT_TIMEOUT, READ_TIMEOUT."""
    timeout = timeout or (CONNECT_TIMEOUT, READ_TIMEOUT)
    request, nonce = make_request(manifest)
    try:
        with requests.post(url, data=request, timeout=timeout, stream=True, allow_redirects=False,
                           headers={"Content-Type": "application/timestamp-query",
                                    "Accept": "application/timestamp-reply",
                                    "User-Agent": f"archiver/{__version__} (RFC 3161 client)"}) as answer:
            if answer.status_code != 200:
                raise TimestampError(f"the TSA at {url} answered HTTP {answer.status_code}")
            reply = b""
            deadline = time.monotonic() + sum(timeout)
            for chunk in answer.iter_content(65536):
                reply += chunk
                if len(reply) > MAX_TOKEN:
                    raise TimestampError(f"the TSA at {url} sent more than {MAX_TOKEN} bytes")
                if time.monotonic() > deadline:  # a reply trickled out byte by byte
                    raise TimestampError(f"the TSA at {url} did not answer in time (reply too slow)")
    except requests.Timeout as exc:
        raise TimestampError(f"the TSA at {url} did not answer in time ({exc.__class__.__name__})") from exc
    except requests.RequestException as exc:
        raise TimestampError(f"the TSA at {url} cannot be reached ({exc.__class__.__name__})") from exc
    try:
        return accept_reply(reply, manifest, nonce)
    except TimestampError as exc:
        raise TimestampError(f"the TSA at {url}: {exc}") from exc


def stamp_bag(bag_dir: Path, url: str, timeout: tuple[float, float] | None = None) -> dict:
    """Stamp ``bag_dir``'s tagmanifest-sha512.txt and write the token beside
    it (fsynced). Returns what the capture event records:
    ``{"stamped": True, "tsa_url", "time"}`` or ``{"stamped": False, "tsa_url", "reason"}``.
    Never raises for a TSA's failure."""
    from archiver.bagit.timestamp import check_token

    try:
        manifest = (bag_dir / STAMPED_MANIFEST).read_bytes()
    except OSError as exc:
        return {"stamped": False, "tsa_url": url, "reason": f"cannot read {STAMPED_MANIFEST}: {exc.strerror}"}
    try:
        token = stamp(manifest, url, timeout)
    except TimestampError as exc:
        return {"stamped": False, "tsa_url": url, "reason": str(exc)}
    path = bag_dir / TIMESTAMP_FILE
    with open(path, "xb") as f:
        f.write(token)
        f.flush()
        os.fsync(f.fileno())
    return {"stamped": True, "tsa_url": url, "time": check_token(token, manifest, None).time}
