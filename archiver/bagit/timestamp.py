"""RFC 3161 time-stamp tokens in a bag: proof that its tag manifest existed
at a time a Time-Stamp Authority attests.

The token stamps the SHA-512 digest of ``tagmanifest-sha512.txt``, which
lists bagit.txt, bag-info.txt and the payload manifests, so it covers every
byte of the bag. It is kept in the bag as ``tagmanifest-sha512.txt.tsr``, the
TSA's whole DER ``TimeStampResp`` (what ``openssl ts -reply`` writes and
``openssl ts -verify -in`` reads). Since it covers the tag manifests, no tag
manifest can list it: verify knows the file by name.

    >>> request, nonce = make_request(manifest_bytes)       # bytes to POST to the TSA
    >>> token = accept_reply(reply_bytes, manifest_bytes, nonce)   # TimestampError if not
    >>> check_token(token, manifest_bytes, ca_pem).to_dict()
    {'file': 'tagmanifest-sha512.txt.tsr', 'status': 'verified', 'time': '2026-...', ...}

Parsing and signature checks are rfc3161-client's (with cryptography).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Callable

from archiver.clock import iso
from archiver.errors import ArchiverError

STAMPED_MANIFEST = "tagmanifest-sha512.txt"
TIMESTAMP_FILE = STAMPED_MANIFEST + ".tsr"
SHA512_OID = "2.16.840.1.101.3.4.2.3"
MAX_TOKEN = 256 * 1024

PROBLEM_CODES = {
    "timestamp-malformed": "a time-stamp token cannot be parsed, or its TSA did not grant it",
    "timestamp-mismatch": "a time-stamp token's imprint is not the SHA-512 of tagmanifest-sha512.txt",
    "timestamp-signature-invalid": "a time-stamp token's signature does not verify against --tsa-ca",
}
WARNING_CODES = {
    "timestamp-signature-unchecked": "a time-stamp token was found but no --tsa-ca was given",
}


class TimestampError(ArchiverError):
    """A TSA's reply cannot be used as a token for these bytes."""


def make_request(manifest: bytes) -> tuple[bytes, int | None]:
    """A DER TimeStampReq for the SHA-512 of ``manifest`` (asking for the TSA's
    certificate, with a nonce), and that nonce."""
    from rfc3161_client import HashAlgorithm, TimestampRequestBuilder

    request = (TimestampRequestBuilder().data(manifest).hash_algorithm(HashAlgorithm.SHA512)
               .nonce(nonce=True).cert_request(cert_request=True).build())
    return request.as_bytes(), request.nonce


def _decode(token: bytes):
    from rfc3161_client import decode_timestamp_response

    if len(token) > MAX_TOKEN:
        raise TimestampError(f"the time-stamp reply is over {MAX_TOKEN} bytes")
    try:
        return decode_timestamp_response(token)
    except Exception as exc:  # the parser raises ValueError and its own errors
        raise TimestampError(f"not an RFC 3161 time-stamp reply ({exc})") from exc


def _granted(response) -> None:
    if response.status not in (0, 1):
        detail = "; ".join(response.status_string) or "no reason given"
        raise TimestampError(f"the TSA refused to stamp (PKIStatus {response.status}: {detail})")


def _imprint_matches(response, manifest_sha512: bytes) -> bool:
    imprint = response.tst_info.message_imprint
    return imprint.hash_algorithm.dotted_string == SHA512_OID and imprint.message == manifest_sha512


def accept_reply(reply: bytes, manifest: bytes, nonce: int | None) -> bytes:
    """``reply`` if it is a granted token for exactly ``manifest`` answering our
    nonce; TimestampError with the reason otherwise."""
    response = _decode(reply)
    _granted(response)
    if not _imprint_matches(response, hashlib.sha512(manifest).digest()):
        raise TimestampError("the TSA stamped another digest than the tag manifest's")
    if nonce is not None and response.tst_info.nonce != nonce:
        raise TimestampError("the TSA's reply does not answer our request (nonce differs)")
    return reply


@dataclass
class TimestampCheck:
    status: str                   # verified | unchecked | invalid
    time: str | None = None       # genTime the TSA attests (ISO 8601, UTC)
    tsa: str | None = None        # the TSA's name in the token, when it gives one
    code: str | None = None       # the problem or warning code
    message: str = ""

    @property
    def is_problem(self) -> bool:
        return self.status == "invalid"

    def to_dict(self) -> dict:
        return {"file": TIMESTAMP_FILE, "status": self.status, "time": self.time, "tsa": self.tsa,
                "message": self.message}


def check_token(token: bytes, manifest_sha512: bytes | None, ca_pem: bytes | None) -> TimestampCheck:
    """Check a stored token against the tag manifest's SHA-512 digest (None:
    the manifest is absent) and, given ``ca_pem`` (PEM roots), its signature.
    Never raises for a bad token."""
    try:
        response = _decode(token)
        _granted(response)
    except TimestampError as exc:
        return TimestampCheck("invalid", code="timestamp-malformed", message=f"{TIMESTAMP_FILE}: {exc}")
    info = response.tst_info
    when = iso(info.gen_time)
    tsa = _name(info)
    if manifest_sha512 is None or not _imprint_matches(response, manifest_sha512):
        why = "is absent" if manifest_sha512 is None else "has changed since it was stamped"
        return TimestampCheck("invalid", when, tsa, "timestamp-mismatch",
                              f"{TIMESTAMP_FILE} stamps a tag manifest that {why} (stamped {when})")
    if ca_pem is None:
        return TimestampCheck("unchecked", when, tsa, "timestamp-signature-unchecked",
                              f"{TIMESTAMP_FILE} matches the tag manifest and claims {when}, but its "
                              "signature was not checked (pass --tsa-ca FILE)")
    try:
        _verifier(ca_pem).verify(response, manifest_sha512)
    except Exception as exc:  # VerificationError, or a chain the library rejects
        return TimestampCheck("invalid", when, tsa, "timestamp-signature-invalid",
                              f"{TIMESTAMP_FILE}: the signature does not verify against the given "
                              f"TSA CA ({exc})")
    return TimestampCheck("verified", when, tsa,
                          message=f"the TSA attests the tag manifest existed at {when}")


def load_ca(pem: bytes) -> list:
    """The certificates of a PEM file (UsageError-worthy ValueError if none)."""
    from cryptography import x509

    certificates = x509.load_pem_x509_certificates(pem)
    if not certificates:
        raise ValueError("no certificate in the file")
    return certificates


def _verifier(ca_pem: bytes):
    from rfc3161_client import VerifierBuilder

    builder = VerifierBuilder()
    for certificate in load_ca(ca_pem):
        builder = builder.add_root_certificate(certificate)
    return builder.build()


def _name(info) -> str | None:
    try:
        name = info.name
    except Exception:  # optional field; absent in many tokens
        return None
    if name is None:
        return None
    value = getattr(name, "value", name)  # a GeneralName: its value; a directory name: "CN=…"
    return value.rfc4514_string() if hasattr(value, "rfc4514_string") else str(value)


def check_stored_token(reader: Any, ca_pem: bytes | None, add: Callable[..., None],
                       names: set[str] | None = None) -> dict | None:
    """Verify's part: check the bag's token, if it has one, through ``reader``
    (a BagReader); ``add(code, path, message, error=...)`` takes the finding.
    ``names``: the bag's files when already listed (spares a request on S3).
    Returns what the report shows under ``timestamp`` (None: no token)."""
    if names is not None and TIMESTAMP_FILE not in names:
        return None
    try:
        with reader.open(TIMESTAMP_FILE) as stream:
            token = stream.read(MAX_TOKEN + 1)
    except FileNotFoundError:
        return None
    except (OSError, ArchiverError) as exc:
        add("timestamp-malformed", TIMESTAMP_FILE, f"{TIMESTAMP_FILE} cannot be read: {exc}")
        return {"file": TIMESTAMP_FILE, "status": "invalid", "time": None, "tsa": None, "message": str(exc)}
    hasher = hashlib.sha512()
    digest: bytes | None = None
    try:
        with reader.open(STAMPED_MANIFEST) as stream:
            for chunk in iter(lambda: stream.read(1 << 20), b""):
                hasher.update(chunk)
        digest = hasher.digest()
    except (OSError, ArchiverError):
        pass  # absent or unreadable: the token then stamps nothing this bag holds
    result = check_token(token, digest, ca_pem)
    if result.code:
        add(result.code, TIMESTAMP_FILE, result.message, error=result.is_problem)
    return result.to_dict()
