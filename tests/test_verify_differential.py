"""archiver verify against the reference implementation (bagit-python) on every fixture bag.

Where the two agree there is nothing to say. Where they disagree, the case
must be in ``DISAGREEMENTS`` with what bagit-python says and the RFC 8493
clause that makes archiver right; a disagreement not in the table, or a table
entry on which they agree, fails the test (so the table stays true).
"""

from __future__ import annotations

import logging
from pathlib import Path

import bagit
import pytest

from archiver.bagit.verify import verify_bag
from fixtures.bags.bag_cases import CASES

# case -> (bagit-python's verdict, why archiver's verdict is the right one)
DISAGREEMENTS: dict[str, tuple[str, str]] = {
    "good-percent-encoded-names": (
        "invalid", "§2.1.3: '%' in a manifest path is written %25 and CR/LF as %0D/%0A; bagit-python decodes "
        "no %25 (its issue #157) and so looks for 'data/100%25 sure.txt'"),
    "good-percent-lowercase-escapes": (
        "invalid", "§2.1.3 percent-encoding: %0a and %25 name '\\n' and '%' (hex digits are case-insensitive)"),
    "bagit-txt-space-before-colon": (
        "valid", "§2.1.1: bagit.txt is exactly 'BagIt-Version: M.N' and 'Tag-File-Character-Encoding: ENC'; "
        "'BagIt-Version : 1.0' is not that line (the conformance suite agrees)"),
    "bagit-txt-extra-line": (
        "valid", "§2.1.1: bagit.txt MUST consist of exactly two lines"),
    "version-unsupported": (
        "valid", "§2.1.1: BagIt-Version names the specification the bag follows; 0.98 is none, so its rules "
        "are unknown and nothing can be claimed"),
    "payload-oxum-repeated-v1": (
        "valid", "§2.2.2: Payload-Oxum MUST NOT be repeated (a 1.0 rule; bagit-python does not check it, "
        "and archiver only warns about it in a 0.97 bag)"),
    "good-fetch-non-hierarchical-uris": (
        "invalid", "§2.2.3 with RFC 3986 §4.3: the url is an absolute URI, 'scheme:' and the rest; "
        "'ark:/57799/b9dd5t' and 'urn:uuid:...' are absolute URIs without a '//host' part (bagit-python "
        "requires a host)"),
    "fetch-url-bad-percent-escape": (
        "valid", "§2.2.3 with RFC 3986 §2.1: '%' in a URI starts a two-hex-digit escape, so "
        "'https://example.org/a%zz' is no URI (bagit-python checks only the scheme and the host)"),
    "bag-info-label-whitespace-v1": (
        "valid", "§2.2.2: a label MUST NOT start or end with whitespace ('Contact-Name : Ann'); an error in "
        "1.0 bags, a warning in the drafts"),
    "manifest-line-malformed": (
        "valid", "§2.1.3: every manifest line is '<checksum> <filepath>'; a line with one field is malformed "
        "(bagit-python skips it silently)"),
    "algorithm-unsupported": (
        "valid", "§3: a valid bag has every checksum of every manifest verified; checksums of an unknown "
        "algorithm cannot be verified (bagit-python skips the manifest)"),
    "path-unsafe-sibling-with-bag-prefix": (
        "valid", "§5 (Security Considerations): a manifest path may not reach outside the bag; "
        "'../<bag>-evil/...' passes bagit-python's os.path.commonprefix check"),
    "tag-manifest-omits-payload-manifest": (
        "valid", "§2.2.1: every tag manifest lists every payload manifest"),
    "file-not-in-every-manifest": (
        "valid", "§3 (complete bag, 1.0): every payload file is listed in every payload manifest"),
    "percent-unencoded-in-v1": (
        "valid", "§2.1.3: in a 1.0 manifest 'a%25.txt' means the file 'a%.txt', which is absent; the file "
        "'a%25.txt' is then listed nowhere"),
    "fetch-not-in-manifest": (
        "valid", "§2.2.3: every file in fetch.txt MUST be listed in the payload manifest(s)"),
    "fetch-length-mismatch": (
        "valid", "§2.2.3: the length field is the file's size in octets; a fetched file of another size is "
        "not the file fetch.txt describes"),
    "warn-normalisation-collision": (
        "invalid", "§2.1.3 file paths name files byte for byte: 'café' (NFC) and 'café' (NFD) are two files "
        "with two checksums, and both match; bagit-python conflates them and compares one file against the "
        "other's checksum (archiver warns that the names collide after normalisation)"),
    "bag-info-undecodable": (
        "crash", "§2.2.2 with bagit.txt's Tag-File-Character-Encoding: bytes that are not UTF-8 in a UTF-8 "
        "bag-info.txt are a problem to report (bagit-python raises UnicodeDecodeError)"),
    "fetch-line-malformed": (
        "crash", "§2.2.3: a fetch.txt line is '<url> <length> <filepath>'; a two-field line is reported "
        "(bagit-python raises ValueError while unpacking it)"),
    "symlink-listed-in-manifest": (
        "valid", "§5 (Security Considerations): nothing outside the bag is read; bagit-python follows the "
        "link and hashes a file outside the bag"),
}


def bagit_verdict(path: Path) -> str:
    logging.disable(logging.CRITICAL)  # bagit-python reports through logging only
    try:
        bagit.Bag(str(path)).validate()
        return "valid"
    except bagit.BagError:
        return "invalid"
    except Exception:  # noqa: BLE001 - a crash is a verdict too
        return "crash"
    finally:
        logging.disable(logging.NOTSET)


@pytest.mark.parametrize("name", sorted(CASES))
def test_differential(name: str, tmp_path: Path) -> None:
    bag = tmp_path / name
    CASES[name].build(bag)
    ours = "valid" if verify_bag(bag).valid else "invalid"
    theirs = bagit_verdict(bag)
    assert ours == ("valid" if CASES[name].valid else "invalid")
    if ours == theirs:
        assert name not in DISAGREEMENTS, f"{name}: both say {ours}; remove it from the table"
    else:
        assert name in DISAGREEMENTS, f"{name}: archiver says {ours}, bagit-python says {theirs}; explain it"
        assert DISAGREEMENTS[name][0] == theirs


def test_every_table_entry_is_a_fixture() -> None:
    assert set(DISAGREEMENTS) <= set(CASES)


def test_bags_made_by_bagit_python_are_valid(tmp_path: Path) -> None:
    folder = tmp_path / "made-by-bagit"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("hello\n")
    (folder / "sub" / "b c.txt").write_text("x\n")
    logging.disable(logging.CRITICAL)
    try:
        bagit.make_bag(str(folder), checksums=["sha256", "sha512"])
    finally:
        logging.disable(logging.NOTSET)
    report = verify_bag(folder)
    assert report.valid and report.warnings == [] and report.version == "0.97"
