"""bagit.txt and bag-info.txt: their parsing, and the verify steps that read them.

bag-info.txt is read as a stream in bounded memory whatever its size: RFC 8493
§2.2.2 sets no limit on a value, so a value longer than ``MAX_VALUE_CHARS``
(a 5 MB description, say) is read to its end with only its head kept and a
``tag-value-long`` warning, never called invalid. Only the elements verify
needs (Payload-Oxum, and which reserved labels repeat) are kept. If the value
archiver must *read* (Payload-Oxum) is itself that long, the bag is not judged:
``CannotVerify`` (exit 3).

    >>> elements, findings = parse_tag_file(io.BytesIO(b"Contact-Name: Ada\\n"), "UTF-8", "bag-info.txt", "1.0")
    >>> elements
    [('Contact-Name', 'Ada')]
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass, field
from typing import Iterator

from archiver.bagit.check import BagCheck
from archiver.bagit.parse import (
    MAX_LINE_CHARS, ByteStream, Finding, FindingSink, LongLine, iter_text_lines, lookup_encoding,
    parse_bagit_txt, parse_oxum,
)
from archiver.bagit.report import CannotVerify, rule_applies
from archiver.errors import StorageError

MAX_BAGIT_TXT = 64 * 1024            # two short lines; anything longer cannot be them
MAX_VALUE_CHARS = MAX_LINE_CHARS     # of a bag-info value, archiver keeps at most this much
# RFC 8493 §2.2.2: these SHOULD NOT be repeated (a warning); Payload-Oxum MUST NOT (a problem in 1.0).
SHOULD_NOT_REPEAT = ("bagging-date", "bag-size", "bag-group-identifier", "bag-count")


@dataclass(frozen=True)
class TagElement:
    """One ``Label: value`` element; ``truncated``: the value was longer than kept."""

    label: str
    value: str
    line: int
    truncated: bool = False


def iter_tag_elements(stream: ByteStream, encoding: str, where: str, version: str | None,
                      findings: FindingSink, max_value: int = MAX_VALUE_CHARS) -> Iterator[TagElement]:
    """Elements of bag-info.txt (or package-info.txt), streaming: ``Label: value``
    lines, a line starting with a space or tab continuing the previous value
    (RFC 8493 §2.2.2). Memory: one line and one value, each capped at
    ``max_value`` characters. Labels with surrounding whitespace (``Label : v``)
    are an error in 1.0 and a warning in the drafts, where bags in the wild have them."""
    pending: TagElement | None = None
    for number, line in iter_text_lines(stream, encoding, where, findings, max_value, keep_head=True):
        long = isinstance(line, LongLine)
        if line == "":
            findings.append(Finding("tag-blank-line", where, f"line {number} of {where} is blank", False))
            continue
        if line[0] in " \t":
            if pending is None:
                findings.append(Finding("tag-line-malformed", where,
                                        f"line {number} of {where} continues a value but no element precedes it"))
                continue
            value = pending.value + " " + line.strip()
            pending = TagElement(pending.label, value[:max_value], pending.line,
                                 pending.truncated or long or len(value) > max_value)
            continue
        if pending is not None:
            yield pending
            pending = None
        label, colon, value = line.partition(":")
        if not colon and long:
            raise CannotVerify(f"{where}: line {number} has no ':' in its first {max_value} characters; "
                               "archiver does not read a label that long")
        if not colon or not label.strip():
            findings.append(Finding("tag-line-malformed", where,
                                    f"line {number} of {where} is not 'Label: value': {line[:80]!r}"))
            continue
        if label != label.strip():
            findings.append(Finding("tag-label-whitespace", where,
                                    f"label {label!r} on line {number} of {where} has surrounding whitespace",
                                    error=rule_applies("tag-label-whitespace", version)))
        # RFC 8493 §2.2.2: one space or tab separates label and value; the rest is the value.
        if value[:1] in (" ", "\t"):
            value = value[1:]
        pending = TagElement(label.strip(), value, number, long)
    if pending is not None:
        yield pending


def parse_tag_file(stream: ByteStream, encoding: str, where: str,
                   version: str | None) -> tuple[list[tuple[str, str]], list[Finding]]:
    """Every element of a small tag file as (label, value) pairs, and the findings."""
    findings: list[Finding] = []
    elements = [(e.label, e.value) for e in iter_tag_elements(stream, encoding, where, version, findings)]
    return elements, findings


# -- the verify steps ---------------------------------------------------------------------

@dataclass
class BagInfo:
    """What verification keeps of bag-info.txt."""

    name: str = "bag-info.txt"
    oxum: list[TagElement] = field(default_factory=list)
    repeated: dict[str, list[int]] = field(default_factory=dict)   # SHOULD_NOT_REPEAT label -> lines


def check_bagit_txt(check: BagCheck, names: set[str] | None) -> None:
    """bagit.txt (RFC 8493 §2.1.1); sets the check's version and tag-file encoding."""
    raw = None if names is not None and "bagit.txt" not in names else _read_small(check, "bagit.txt")
    if raw is None:
        if names is None or "bagit.txt" not in names:
            check.out.add("bagit-txt-missing", "bagit.txt", "the bag has no bagit.txt (RFC 8493 §2.1.1)")
        return
    if len(raw) > MAX_BAGIT_TXT:
        check.out.add("bagit-txt-malformed", "bagit.txt",
                      f"bagit.txt is larger than {MAX_BAGIT_TXT} bytes, so it is not the two required lines "
                      "'BagIt-Version: M.N' and 'Tag-File-Character-Encoding: ENC'")
        return
    version, encoding, findings = parse_bagit_txt(raw)
    check.out.extend(findings)
    check.version = version
    check.encoding = lookup_encoding(encoding) or "utf-8"


def read_bag_info(check: BagCheck, names: set[str] | None) -> BagInfo:
    """bag-info.txt (package-info.txt before 0.96), streamed; findings go to ``check.out``."""
    info = BagInfo("package-info.txt" if check.version in ("0.93", "0.94", "0.95") else "bag-info.txt")
    if names is not None and info.name not in names:
        return info
    try:
        with check.reader.open(info.name) as stream:
            start = stream.read(len(codecs.BOM_UTF8))
            if check.encoding == "utf-8" and start == codecs.BOM_UTF8:
                check.out.add("tag-file-bom", info.name, f"{info.name} starts with a byte-order mark", error=False)
            seen: dict[str, list[int]] = {}
            for element in iter_tag_elements(_Prefixed(start, stream), check.encoding, info.name, check.version,
                                             check.out):
                key = element.label.lower()
                if key == "payload-oxum":
                    info.oxum.append(element)
                elif key in SHOULD_NOT_REPEAT:
                    seen.setdefault(key, []).append(element.line)
                if element.truncated:
                    check.out.add("tag-value-long", info.name,
                                  f"the value of {element.label} (line {element.line} of {info.name}) is longer "
                                  f"than {MAX_VALUE_CHARS} characters; read to its end, not kept", error=False)
    except FileNotFoundError:
        return info
    except (StorageError, OSError) as exc:
        if isinstance(exc, CannotVerify):
            raise
        check.out.add("file-unreadable", info.name, f"cannot read {info.name}: {exc}")
        return info
    info.repeated = {label: lines for label, lines in seen.items() if len(lines) > 1}
    return info


def check_oxum(check: BagCheck, info: BagInfo) -> None:
    """Payload-Oxum against the payload counted (RFC 8493 §2.2.2), and repeated reserved elements."""
    out = check.out
    for label, lines in sorted(info.repeated.items()):
        out.add("tag-element-repeated", info.name,
                f"{label} appears {len(lines)} times (lines {', '.join(map(str, lines))}); "
                "RFC 8493 §2.2.2: it SHOULD NOT be repeated", error=False)
    if len(info.oxum) > 1:
        check.report_rule("payload-oxum-repeated", info.name,
                          f"Payload-Oxum appears {len(info.oxum)} times (lines "
                          f"{', '.join(str(e.line) for e in info.oxum)}); RFC 8493 §2.2.2: it MUST NOT be repeated")
    if not info.oxum and check.mode == "fast":
        out.add("payload-oxum-missing", info.name,
                "--fast needs a Payload-Oxum in bag-info.txt; run a full verify instead")
    for element in info.oxum:
        if element.truncated:
            raise CannotVerify(f"{check.reader.location}: the Payload-Oxum value on line {element.line} of "
                               f"{info.name} is longer than {MAX_VALUE_CHARS} characters; archiver does not "
                               "read it, so it cannot tell whether the bag is complete")
        oxum = parse_oxum(element.value)
        if oxum is None:
            out.add("payload-oxum-malformed", info.name, f"Payload-Oxum {element.value!r} is not '<octets>.<files>'")
            continue
        octets, streams = oxum
        if octets != check.payload_bytes:
            out.add("payload-oxum-mismatch", info.name,
                    f"Payload-Oxum says {octets} bytes; the payload has {check.payload_bytes}")
        if streams != check.payload_files:
            out.add("payload-oxum-mismatch", info.name,
                    f"Payload-Oxum says {streams} files; the payload has {check.payload_files}")


def _read_small(check: BagCheck, path: str) -> bytes | None:
    """Up to MAX_BAGIT_TXT + 1 bytes of a file (a network stream may return less
    per read than asked); None if it is absent or unreadable (reported)."""
    try:
        with check.reader.open(path) as stream:
            pieces: list[bytes] = []
            remaining = MAX_BAGIT_TXT + 1
            while remaining > 0 and (piece := stream.read(remaining)):
                pieces.append(piece)
                remaining -= len(piece)
    except FileNotFoundError:
        return None
    except (StorageError, OSError) as exc:
        check.out.add("file-unreadable", path, str(exc))
        return None
    return b"".join(pieces)


class _Prefixed:
    """A stream with bytes already read put back in front."""

    def __init__(self, prefix: bytes, stream: ByteStream) -> None:
        self.prefix = prefix
        self.stream = stream

    def read(self, size: int = -1, /) -> bytes:
        if self.prefix:
            head, self.prefix = self.prefix, b""
            return head
        return self.stream.read(size)
