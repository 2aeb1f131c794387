"""Parsing BagIt tag files (RFC 8493 and drafts 0.93 - 0.97). Pure: bytes in, values out.

Every parser returns what it could read *and* the problems it met, as
``Problem(code, path, message, error)`` values (called findings here) added to
a sink (a list, or the verifier's capped ``Collector``); nothing here raises on
bad input, so the verifier can report every problem of a bag, not the first.

- ``parse_bagit_txt``: the exact two-line form, no BOM, a known version.
- ``iter_text_lines``: decodes a stream in the declared tag-file encoding
  (UTF-8, UTF-16, ISO-8859-1, ...) and splits on CRLF, CR or LF, with a cap on
  line length so a 100 MB single line never sits in memory (bag-info.txt
  elements are parsed from it in ``archiver.bagit.tagfiles``).
- ``parse_manifest``: ``<digest> <path>`` lines, percent-decoding (%0D %0A %25),
  md5sum-style ``*path`` and ``./path`` (warnings), path safety.
- ``parse_fetch``: ``<url> <length|-> <path>`` lines.

    >>> entries, findings = parse_manifest(io.BytesIO(b"ab12  data/a%25b\\n"), "manifest-md5.txt", "md5")
"""

from __future__ import annotations

import codecs
import re
import unicodedata
from dataclasses import dataclass
from typing import Iterator, Literal, NamedTuple, Protocol, overload

from archiver.bagit.report import Problem

SUPPORTED_VERSIONS = ("0.93", "0.94", "0.95", "0.96", "0.97", "1.0")
MAX_LINE_CHARS = 64 * 1024  # a manifest or fetch line longer than this is refused, not buffered
_READ_CHUNK = 1 << 16

# Digest lengths in hex characters, for the algorithms hashlib always has.
DIGEST_HEX_LENGTHS = {
    "md5": 32, "sha1": 40, "sha224": 56, "sha256": 64, "sha384": 96, "sha512": 128,
    "sha3_224": 56, "sha3_256": 64, "sha3_384": 96, "sha3_512": 128, "blake2b": 128, "blake2s": 64,
}

MANIFEST_NAME = re.compile(r"^manifest-([A-Za-z0-9_-]+)\.txt$")
TAG_MANIFEST_NAME = re.compile(r"^tagmanifest-([A-Za-z0-9_-]+)\.txt$")
_BAGIT_VERSION_LINE = re.compile(r"^BagIt-Version: ([0-9]+\.[0-9]+)$")
_BAGIT_ENCODING_LINE = re.compile(r"^Tag-File-Character-Encoding: (\S+)$")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_PERCENT = re.compile(r"%(0[dDaA]|25)")
_HEX = re.compile(r"^[0-9a-fA-F]+$")
_DRIVE = re.compile(r"^[A-Za-z]:")
_DRIVE_IN_LINE = re.compile(r"[ \t][A-Za-z]:")
# RFC 3986 §4.3 absolute-URI: scheme ":" hier-part [ "?" query ], in URI characters
# (unreserved, reserved, percent-encoded octets). "ark:/57799/b9dd5t" and
# "urn:uuid:..." are absolute URIs as much as "https://host/x" is.
_ABSOLUTE_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:(?:[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=]|%[0-9A-Fa-f]{2})+$")

Finding = Problem  # what a parser met: a problem (error=True) or a warning


class FindingSink(Protocol):
    """Where a parser puts its findings: a list, or the verifier's ``Collector``."""

    def append(self, finding: Problem, /) -> None: ...


class ByteStream(Protocol):
    """What the parsers read from: a binary file, or anything with ``read(size)``."""

    def read(self, size: int = ..., /) -> bytes: ...


class LongLine(str):
    """The first ``max_line`` characters of a line that was longer (see
    ``iter_line_batches(keep_head=True)``): the rest was read, not kept."""


class ManifestEntry(NamedTuple):
    path: str      # decoded, normalised (no leading ./ or *), relative to the bag root
    digest: str    # lower-case hex
    line: int      # 1-based, for messages


@dataclass(frozen=True)
class FetchEntry:
    url: str
    length: int | None
    path: str
    line: int


def hash_name(algorithm: str) -> str:
    """hashlib's name for a manifest's algorithm: ``SHA-256`` -> ``sha256``, ``sha3-256`` -> ``sha3_256``."""
    name = algorithm.lower()
    if name.startswith("sha3"):
        return name.replace("-", "_")
    return name.replace("-", "")


def parse_bagit_txt(raw: bytes) -> tuple[str | None, str | None, list[Finding]]:
    """(version, encoding, findings) of a bagit.txt, which must be exactly
    ``BagIt-Version: M.N`` and ``Tag-File-Character-Encoding: ENC`` (RFC 8493 §2.1.1),
    UTF-8 without a byte-order mark."""
    findings: list[Finding] = []
    where = "bagit.txt"
    if raw.startswith(codecs.BOM_UTF8):
        findings.append(Finding("bagit-txt-bom", where, "bagit.txt starts with a byte-order mark; "
                                "RFC 8493 §2.1.1 requires UTF-8 without one"))
        raw = raw[len(codecs.BOM_UTF8):]
    try:
        text = raw.decode("utf-8")
    except UnicodeError as exc:  # UTF-16 without a BOM raises plain UnicodeError
        findings.append(Finding("bagit-txt-malformed", where, f"bagit.txt is not UTF-8 ({getattr(exc, 'reason', exc)})"))
        return None, None, findings
    lines = _LINE_BREAK.split(text)
    if lines and lines[-1] == "":
        lines.pop()  # the final line break
    version = encoding = None
    if len(lines) != 2:
        findings.append(Finding("bagit-txt-malformed", where,
                                f"bagit.txt has {len(lines)} lines; it must have exactly two: "
                                "'BagIt-Version: M.N' and 'Tag-File-Character-Encoding: ENC'"))
    if lines:
        match = _BAGIT_VERSION_LINE.match(lines[0])
        if match:
            version = match.group(1)
            if version not in SUPPORTED_VERSIONS:
                findings.append(Finding("version-unsupported", where,
                                        f"BagIt-Version {version} is not one of {', '.join(SUPPORTED_VERSIONS)}"))
        else:
            findings.append(Finding("bagit-txt-malformed", where,
                                    f"first line {lines[0][:80]!r} is not exactly 'BagIt-Version: M.N' "
                                    "(no extra spaces)"))
    if len(lines) >= 2:
        match = _BAGIT_ENCODING_LINE.match(lines[1])
        if match:
            encoding = match.group(1)
            if lookup_encoding(encoding) is None:
                findings.append(Finding("encoding-unknown", where,
                                        f"Tag-File-Character-Encoding {encoding!r} is not a known encoding"))
        else:
            findings.append(Finding("bagit-txt-malformed", where,
                                    f"second line {lines[1][:80]!r} is not exactly "
                                    "'Tag-File-Character-Encoding: ENC'"))
    return version, encoding, findings


def lookup_encoding(name: str | None) -> str | None:
    """Python's codec name for a declared tag-file encoding, or None if unknown."""
    if not name:
        return None
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


def iter_text_lines(stream: ByteStream, encoding: str, where: str, findings: FindingSink,
                    max_line: int = MAX_LINE_CHARS, keep_head: bool = False) -> Iterator[tuple[int, str]]:
    """Yield (line number, line) of a tag file, decoded incrementally; see ``iter_line_batches``."""
    for number, lines in iter_line_batches(stream, encoding, where, findings, max_line, keep_head):
        for offset, line in enumerate(lines):
            if line is not None:
                yield number + offset, line


def iter_line_batches(stream: ByteStream, encoding: str, where: str, findings: FindingSink,
                      max_line: int = MAX_LINE_CHARS, keep_head: bool = False,
                      ) -> Iterator[tuple[int, list[str | None]]]:
    """Yield (number of the first line, lines) per chunk read; a skipped
    overlong line is None in its place, so numbers stay right.

    Lines end at CRLF, CR or LF (RFC 8493 §2.1.3: all three are allowed). A
    line longer than ``max_line`` characters is read to its end without being
    held in memory: reported (``line-too-long``) and skipped, or with
    ``keep_head=True`` (bag-info.txt, where any value length is legal) given as
    a ``LongLine`` of its first ``max_line`` characters and not reported.
    Undecodable bytes are reported and the rest of the file is not read (its
    meaning is unknowable)."""
    codec = lookup_encoding(encoding) or "utf-8"
    if codec == "utf-8":
        codec = "utf-8-sig"  # a BOM in a UTF-8 tag file is tolerated
    decoder = codecs.getincrementaldecoder(codec)()
    current = ""          # the line being assembled (never longer than max_line)
    skipping = False      # inside an overlong line, already reported
    head: LongLine | None = None  # keep_head: the start of the overlong line being skipped
    cr_pending = False    # the last text ended in CR: a leading LF completes that CRLF
    number = 0
    while True:
        chunk = stream.read(_READ_CHUNK)
        try:
            text = decoder.decode(chunk, final=not chunk)
        except UnicodeError as exc:  # UTF-16 without a BOM raises plain UnicodeError
            findings.append(Finding("tag-file-undecodable", where,
                                    f"{where} is not valid {encoding} near line {number + 1} ({getattr(exc, 'reason', exc)})"))
            return
        if cr_pending and text.startswith("\n"):
            text = text[1:]
        if text:
            cr_pending = text.endswith("\r")
        # str.split is several times faster than the regex; CR is rare.
        parts = text.split("\n") if "\r" not in text else _LINE_BREAK.split(text)
        first = number + 1
        batch: list[str | None] = []
        # parts[0] continues the current line; parts[1:-1] are whole lines; parts[-1] starts one.
        if len(parts) > 1:
            whole: list[str | None] = [current + parts[0] if not skipping else head]
            whole += parts[1:-1]
            if max(map(len, parts[1:-1]), default=0) <= max_line and (skipping or len(current + parts[0]) <= max_line):
                batch = whole  # the common case, checked in C
                number += len(whole)
            else:
                for line in whole:
                    number += 1
                    if line is not None and len(line) > max_line:
                        line = _overlong(line, number, where, max_line, keep_head, findings)
                    batch.append(line)
            current, skipping, head = "", False, None
        if not skipping:
            current += parts[-1]
            if len(current) > max_line:
                head = _overlong(current, number + 1, where, max_line, keep_head, findings)
                current, skipping = "", True
        if not chunk:
            if current and not skipping:
                number += 1
                batch.append(current)  # a last line without a line break
            elif skipping:
                number += 1
                batch.append(head)
        if batch:
            yield first, batch
        if not chunk:
            return


def _overlong(line: str, number: int, where: str, max_line: int, keep_head: bool,
              findings: FindingSink) -> LongLine | None:
    """What an overlong line becomes: its head (``keep_head``), or nothing and a finding."""
    if keep_head:
        return LongLine(line[:max_line])
    findings.append(Finding("line-too-long", where, f"line {number} of {where} is longer "
                            f"than {max_line} characters; skipped"))
    return None


def decode_manifest_path(path: str) -> str:
    """Undo RFC 8493 §2.1.3 percent-encoding: %0D, %0A and %25 only, either case."""
    if "%" not in path:
        return path
    return _PERCENT.sub(lambda m: {"0d": "\r", "0a": "\n", "25": "%"}[m.group(1).lower()], path)


def path_safety_problem(path: str) -> str | None:
    """Why a manifest or fetch path could point outside the bag, or None if it
    is a plain relative path. Judged on the text, the same on every OS."""
    if path == "":
        return "the path is empty"
    if "\x00" in path:
        return "the path contains a NUL character"
    if path.startswith(("\\\\", "//")):
        return "the path is a UNC network path"
    if _DRIVE.match(path):
        return "the path starts with a drive letter"
    if "\\" in path:
        return "the path contains a backslash (a Windows separator, or an escape trick)"
    if path.startswith("/"):
        return "the path is absolute"
    if path.startswith("~"):
        return "the path starts with ~ (a home-folder shortcut)"
    parts = path.split("/")
    if ".." in parts:
        return "the path contains a '..' component"
    if any(part in ("", ".") for part in parts):
        return "the path has an empty or '.' component"
    return None


def parse_manifest(stream: ByteStream, where: str, algorithm: str, encoding: str = "UTF-8",
                   ) -> tuple[list[ManifestEntry], list[Finding]]:
    """Entries of a (tag) manifest, streaming. Grammar (RFC 8493 §2.1.3):
    ``checksum``, one or more spaces or tabs, ``filepath``.

    Tolerated with a warning: ``*path`` (md5sum's binary marker) and ``./path``.
    Errors: malformed lines, digests that are not hex of the algorithm's
    length, unsafe paths (code ``path-unsafe``; such entries are dropped)."""
    findings: list[Finding] = []
    entries: list[ManifestEntry] = []
    for first, pairs, others in _manifest_chunks(stream, where, algorithm, encoding, findings):
        if pairs is not None:
            entries.extend(ManifestEntry(path, digest, number)
                           for number, (digest, path) in enumerate(pairs, start=first))
        entries.extend(others)
    return entries, findings


@overload
def parse_manifest_map(stream: ByteStream, where: str, algorithm: str, encoding: str = ...,
                       binary: Literal[False] = ..., findings: FindingSink | None = ...,
                       ) -> tuple[dict[str, str], list[ManifestEntry], FindingSink]: ...
@overload
def parse_manifest_map(stream: ByteStream, where: str, algorithm: str, encoding: str = ...,
                       binary: Literal[True] = ..., findings: FindingSink | None = ...,
                       ) -> tuple[dict[str, bytes | str], list[ManifestEntry], FindingSink]: ...
def parse_manifest_map(stream: ByteStream, where: str, algorithm: str, encoding: str = "UTF-8",
                       binary: bool = False, findings: FindingSink | None = None,
                       ) -> tuple[dict[str, str], list[ManifestEntry], FindingSink] | \
                            tuple[dict[str, bytes | str], list[ManifestEntry], FindingSink]:
    """Like ``parse_manifest``, shaped for checking 1,000,000-line manifests fast
    and compactly: ({path: digest} of each path's first entry, [later entries of a
    listed path], the findings sink).

    ``binary=True``: digests are raw bytes (``bytes.fromhex``), half the memory of
    hex text, for algorithms whose digest length is known (others stay hex).
    ``findings``: where findings go (e.g. a sink that passes each on at once, so a
    million bad lines are never held); a new list if None. Repeats keep their digest in hex."""
    sink: FindingSink = [] if findings is None else findings
    to_value = bytes.fromhex if binary and DIGEST_HEX_LENGTHS.get(hash_name(algorithm)) else None
    listed: dict[str, bytes | str] = {}
    repeats: list[ManifestEntry] = []
    for first, pairs, others in _manifest_chunks(stream, where, algorithm, encoding, sink):
        if pairs is not None:
            chunk: dict[str, bytes | str]
            if to_value is None:
                chunk = {path: digest for digest, path in pairs}
            else:
                chunk = {path: to_value(digest) for digest, path in pairs}
            if len(chunk) == len(pairs) and not (chunk.keys() & listed.keys()):
                listed.update(chunk)
                continue
            others = [ManifestEntry(path, digest, number) for number, (digest, path) in enumerate(pairs, start=first)]
        for entry in others:
            if entry.path in listed:
                repeats.append(entry)
            else:
                listed[entry.path] = entry.digest if to_value is None else to_value(entry.digest)
    return listed, repeats, sink


def _manifest_chunks(stream: ByteStream, where: str, algorithm: str, encoding: str, findings: FindingSink,
                     ) -> Iterator[tuple[int, list[tuple[str, str]] | None, list[ManifestEntry]]]:
    """Yield, per chunk read, (first line number, [(digest, path)], []) when
    every line is plain (``_plain_pairs``), else (first, None, [ManifestEntry])
    after every rule (``_parse_manifest_line``)."""
    expected_length = DIGEST_HEX_LENGTHS.get(hash_name(algorithm))
    plain_lines = _plain_line_pattern(expected_length)
    for first, lines in iter_line_batches(stream, encoding, where, findings):
        pairs = _plain_pairs(lines, plain_lines)
        if pairs is not None:
            yield first, pairs, []
            continue
        entries: list[ManifestEntry] = []
        for number, line in enumerate(lines, start=first):
            if line is not None:
                _parse_manifest_line(line, number, where, algorithm, expected_length, entries, findings)
        yield first, None, entries


def _plain_pairs(lines: list[str | None], plain_lines: re.Pattern[str]) -> list[tuple[str, str]] | None:
    """Fast path of ``_parse_manifest_line`` for a whole chunk: [(digest, path)]
    if every line is one that every rule passes unchanged (lower-case hex digest
    of the right length, a path with nothing to decode and no '.', '..', empty
    or drive-letter part), decided by one regex pass in C; else None."""
    if None in lines:
        return None
    text = "\n".join(line for line in lines if line is not None)
    found: list[tuple[str, str]] = plain_lines.findall(text)
    if (len(found) == len(lines) and "/." not in text and "//" not in text and "/\n" not in text
            and not text.endswith("/") and not (":" in text and _DRIVE_IN_LINE.search(text))):
        return found
    return None


def _plain_line_pattern(length: int | None) -> re.Pattern[str]:
    """Lines ``<lower-case hex digest><spaces><path>`` whose path needs no
    decoding and cannot start with ``*``, ``.``, ``~`` or ``/``."""
    digits = f"{{{length}}}" if length else "+"
    return re.compile(rf"(?m)^([0-9a-f]{digits})[ \t]+([^*.~/\\%\x00 \t\n][^\\%\x00\n]*)$")


def _parse_manifest_line(line: str, number: int, where: str, algorithm: str, expected_length: int | None,
                         entries: list[ManifestEntry], findings: FindingSink) -> None:
    """One manifest line the fast path did not accept: every rule, every finding."""
    if line == "":
        findings.append(Finding("manifest-line-malformed", where, f"line {number} of {where} is blank"))
        return
    digest, path = _split_first_whitespace(line)
    if not path:
        findings.append(Finding("manifest-line-malformed", where,
                                f"line {number} of {where} is not '<checksum> <path>': {line[:80]!r}"))
        return
    if not _HEX.match(digest) or (expected_length and len(digest) != expected_length):
        findings.append(Finding("digest-malformed", where,
                                f"line {number} of {where}: {digest[:140]!r} is not a {algorithm} digest"))
        return
    if path.startswith("*"):
        findings.append(Finding("md5sum-binary-marker", where,
                                f"line {number} of {where} uses md5sum's '*path' form", False))
        path = path[1:]
    path = decode_manifest_path(path)
    if path.startswith("./"):
        findings.append(Finding("dot-slash-path", path[2:],
                                f"line {number} of {where} writes the path as ./{path[2:]}", False))
        path = path[2:]
    unsafe = path_safety_problem(path)
    if unsafe:
        findings.append(Finding("path-unsafe", _printable(path),
                                f"line {number} of {where}: {unsafe}; it is never opened"))
        return
    entries.append(ManifestEntry(path, digest.lower(), number))


def parse_fetch(stream: ByteStream, encoding: str, where: str = "fetch.txt",
                ) -> tuple[list[FetchEntry], list[Finding]]:
    """Entries of fetch.txt: ``url length filepath`` where length is digits or
    ``-`` (RFC 8493 §2.2.3); the path is percent-decoded like a manifest's."""
    findings: list[Finding] = []
    entries: list[FetchEntry] = []
    for number, line in iter_text_lines(stream, encoding, where, findings):
        if line == "":
            findings.append(Finding("fetch-line-malformed", where, f"line {number} of {where} is blank"))
            continue
        url, rest = _split_first_whitespace(line)
        length_text, path = _split_first_whitespace(rest)
        if not path or not (length_text == "-" or length_text.isdigit()):
            findings.append(Finding("fetch-line-malformed", where,
                                    f"line {number} of {where} is not '<url> <length|-> <path>': {line[:80]!r}"))
            continue
        if not is_absolute_uri(url):
            findings.append(Finding("fetch-url-invalid", where,
                                    f"line {number} of {where}: {url[:80]!r} is not an absolute URI "
                                    "(RFC 3986 §4.3: scheme ':' then URI characters)"))
        path = decode_manifest_path(path)
        unsafe = path_safety_problem(path)
        if unsafe:
            findings.append(Finding("path-unsafe", _printable(path),
                                    f"line {number} of {where}: {unsafe}; it is never opened"))
            continue
        length = None if length_text == "-" else int(length_text)
        entries.append(FetchEntry(url, length, path, number))
    return entries, findings


def is_absolute_uri(text: str) -> bool:
    """RFC 3986 §4.3 absolute-URI: ``https://host/x``, ``ark:/57799/b9dd5t``, ``urn:uuid:...``."""
    return _ABSOLUTE_URI.match(text) is not None


def parse_oxum(value: str) -> tuple[int, int] | None:
    """(octets, files) of a Payload-Oxum value ``123.4``, or None if malformed."""
    octets, dot, streams = value.strip().partition(".")
    if not dot or not octets.isdigit() or not streams.isdigit():
        return None
    return int(octets), int(streams)


def normalised_key(path: str) -> str:
    return unicodedata.normalize("NFC", path)


def casefold_key(path: str) -> str:
    return unicodedata.normalize("NFC", path).casefold()


_FIRST_FIELD = re.compile(r"([^ \t]*)[ \t]*(.*)", re.S)


def _split_first_whitespace(line: str) -> tuple[str, str]:
    """``"abc  d e"`` -> ``("abc", "d e")``: split at the first run of spaces/tabs."""
    match = _FIRST_FIELD.match(line)
    assert match is not None  # the pattern matches every string
    return match.group(1), match.group(2)


def _printable(path: str) -> str:
    return path.replace("\r", "%0D").replace("\n", "%0A")
