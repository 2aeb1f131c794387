"""BagIt profiles: the 17 `profile` rows of ../shared/interop-bags, both JSON formats,
the bundled profiles, and a differential test against the `bagit-profile` package."""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import pytest

from archiver.exchange.check import verify_any
from archiver.exchange.profiles import load_profile, parse_profile
from archiver.exchange.serialise import bag_members, write_archive

# The rules bagit-java's BagProfileCheckerTest checks (its exampleProfile.json: Canadiana's
# TDR loading-dock profile), written out here in BagIt-Profiles JSON for these tests. The
# repeated Bagging-Date case needs "repeatable": false (bagit-java treats every Bag-Info
# element as non-repeatable; the BagIt-Profiles spec's default is repeatable).
JAVA_PROFILE = {
    "BagIt-Profile-Info": {"BagIt-Profile-Identifier": "http://canadiana.org/standards/bagit/tdr_ingest.json",
                           "Source-Organization": "Candiana.org", "Version": "1.2"},
    "Bag-Info": {
        "Source-Organization": {"required": True, "values": ["Simon Fraser University", "York University"]},
        "Organization-Address": {"required": True, "values": [
            "8888 University Drive Burnaby, B.C. V5A 1S6 Canada",
            "4700 Keele Street Toronto, Ontario M3J 1P3 Canada"]},
        "Contact-Name": {"required": True, "values": ["Mark Jordan", "Nick Ruest"]},
        "Contact-Phone": {"required": False},
        "Contact-Email": {"required": True},
        "External-Description": {"required": True},
        "Bag-Size": {"required": True},
        "Bag-Count": {"required": True},
        "Bagging-Date": {"required": True, "repeatable": False},
        "Payload-Oxum": {"required": True},
    },
    "Manifests-Required": ["md5"],
    "Allow-Fetch.txt": False,
    "Serialization": "optional",
    "Accept-Serialization": ["application/zip"],
    "Tag-Manifests-Required": ["md5"],
    "Tag-Files-Required": ["DPN/dpnFirstNode.txt", "DPN/dpnRegistry"],
    "Accept-BagIt-Version": ["0.96"],
}

# what each row's `why` says, as the code archiver must report (None: accept)
EXPECTED = {
    "bagit-java/profile/profileConformantBag": (None, "java"),
    "bagit-java/profile/failFetchBag": ("profile-fetch-not-allowed", "java"),
    "bagit-java/profile/emailFieldMissingBag": ("profile-tag-missing", "java"),
    "bagit-java/profile/wrongValueForContactNameBag": ("profile-value-not-allowed", "java"),
    "bagit-java/profile/repeatedMetadataBag": ("profile-tag-not-repeatable", "java"),
    "bagit-java/profile/missingRequiredPayloadManifestBag": ("profile-manifest-required", "java"),
    "bagit-java/profile/missingRequiredTagManifestBag": ("profile-tag-manifest-required", "java"),
    "bagit-java/profile/missingRequiredTagFileBag": ("profile-tag-file-missing", "java"),
    "bagit-java/profile/wrongBagitVersionBag": ("profile-version-not-accepted", "java"),
    "aptrust/profile/sample_no_md5_manifest": ("profile-manifest-required", "aptrust"),
    "aptrust/profile/uva_lib_2278801": ("profile-tag-missing", "aptrust"),
    "aptrust/profile/btr_bad_missing_required_tags": ("profile-tag-missing", "btr"),
    "aptrust/profile/sample_wrong_folder_name": ("profile-tar-dir-name", "aptrust"),
    "aptrust/profile/sample_illegal_control": ("profile-file-name", "aptrust"),
    "aptrust/profile/fetchtxt": ("profile-fetch-not-allowed", "aptrust"),
    "aptrust/profile/sample_no_aptrust_info": ("profile-tag-file-missing", "aptrust"),
    "aptrust/profile/sample_bad_file_names": ("profile-file-name", "aptrust"),
}
# rows the same profile must accept, as controls (valid rows of the same sources)
CONTROLS = {"aptrust/sample_good": "aptrust", "aptrust/tagsample_good": "aptrust",
            "aptrust/btr_good_sha256": "btr", "aptrust/btr_good_sha512": "btr", "aptrust/btr_wasabi_or": "btr"}
_SERIALISED = re.compile(r"serialised: [\w-]+:\S*/([^/\s]+)\.tar \(top folder ([^/\s]+)/\)")


def _rows(shared: Path) -> dict[str, dict[str, str]]:
    with open(shared / "interop-bags" / "index.tsv", newline="", encoding="utf-8") as f:
        return {row["case"]: row for row in csv.DictReader(f, delimiter="\t")}


def _as_served(shared: Path, tmp_path: Path, row: dict[str, str]) -> Path:
    """The bag as its source serves it: a folder, or the tar its `why` names."""
    folder = shared / "interop-bags" / row["case"]
    match = _SERIALISED.search(row["why"])
    if not match:
        return folder
    tar_name, top = match.groups()
    archive = tmp_path / f"{tar_name}.tar"
    write_archive(bag_members(folder, top), archive, "tar")
    return archive


def _profile(kind: str):
    return parse_profile(JSON_PROFILE_COPY(), "exampleProfile (bagit-java)") if kind == "java" else load_profile(kind)


def JSON_PROFILE_COPY() -> dict:
    return json.loads(json.dumps(JAVA_PROFILE))


def test_the_index_has_17_profile_rows_and_each_is_expected(shared_dir: Path) -> None:
    rows = [c for c, r in _rows(shared_dir).items() if r["expected"] == "profile"]
    assert sorted(rows) == sorted(EXPECTED)


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_profile_rows(shared_dir: Path, tmp_path: Path, case: str) -> None:
    code, kind = EXPECTED[case]
    bag = _as_served(shared_dir, tmp_path, _rows(shared_dir)[case])
    report = verify_any(bag, "full", profiles=[_profile(kind)])
    profile_problems = [p for p in report.problems if p.code.startswith("profile-")]
    if code is None:
        assert report.valid, report.problems
    else:
        assert code in {p.code for p in profile_problems}, report.problems
        assert all(getattr(p, "rule", "") for p in profile_problems)  # every problem names its rule


@pytest.mark.parametrize("case", sorted(CONTROLS))
def test_good_aptrust_and_btr_bags_are_accepted(shared_dir: Path, tmp_path: Path, case: str) -> None:
    bag = _as_served(shared_dir, tmp_path, _rows(shared_dir)[case])
    report = verify_any(bag, "full", profiles=[load_profile(CONTROLS[case])])
    assert report.valid, report.problems


@pytest.mark.parametrize("case", sorted(c for c, (_, k) in EXPECTED.items() if k == "aptrust"
                                        and c.rsplit("/", 1)[-1] not in ("sample_illegal_control",
                                                                         "sample_bad_file_names")))
def test_the_published_dart_profile_gives_the_same_verdicts(shared_dir: Path, tmp_path: Path, case: str) -> None:
    """The bundled aptrust profile agrees with APTrust's own 2.3 file (DART JSON); the
    file-name rules are archiver's addition, so those two rows are left out here."""
    bag = _as_served(shared_dir, tmp_path, _rows(shared_dir)[case])
    published = load_profile(shared_dir / "bagit-profiles" / "dart-format" / "aptrust-v2.3.json")
    bundled = verify_any(bag, "full", profiles=[load_profile("aptrust")])
    theirs = verify_any(bag, "full", profiles=[published])
    assert {p.code for p in bundled.problems} == {p.code for p in theirs.problems}


def test_every_shared_profile_file_loads(shared_dir: Path) -> None:
    loaded = {path.name: load_profile(path) for path in sorted((shared_dir / "bagit-profiles").rglob("*.json"))}
    assert len(loaded) == 9
    assert {t.name for t in loaded["unordered-loc-profile.json"].tags if t.required} >= {"Send-To-Name",
                                                                                         "Ship-To-Address"}
    assert loaded["aptrust-v2.3.json"].tar_dir_must_match_name
    assert loaded["btr_standard_profile.json"].accept_versions == ["0.97", "1.0"]


def test_a_folder_fails_a_profile_that_requires_serialisation(shared_dir: Path) -> None:
    report = verify_any(shared_dir / "interop-bags" / "aptrust" / "sample_good", "full",
                        profiles=[load_profile("aptrust")])
    assert [p.code for p in report.problems] == ["profile-serialization"]


def test_unknown_profile_is_a_usage_error(tmp_path: Path) -> None:
    from archiver.errors import UsageError
    with pytest.raises(UsageError):
        load_profile("no-such-profile")
    (tmp_path / "p.json").write_text("[1]")
    with pytest.raises(UsageError):
        load_profile(tmp_path / "p.json")


# --------------------------------------------------------------------------- differential

def test_differential_against_bagit_profile_package(shared_dir: Path, tmp_path: Path) -> None:
    """Same profile, same nine bagit-java bags: archiver and `bagit-profile` agree on every
    verdict. One difference is set aside: bagit-profile requires bag-info.txt to carry
    BagIt-Profile-Identifier equal to the profile's URL (and stops checking bag-info.txt at
    the first failure), which bagit-java and DART do not require and archiver does not
    either; so each bag is checked as a copy whose bag-info.txt names the profile."""
    bagit = pytest.importorskip("bagit")
    bagit_profile = pytest.importorskip("bagit_profile")
    profile = JSON_PROFILE_COPY()
    url = profile["BagIt-Profile-Info"]["BagIt-Profile-Identifier"]
    for case, (code, kind) in sorted(EXPECTED.items()):
        if kind != "java":
            continue
        folder = tmp_path / case
        shutil.copytree(shared_dir / "interop-bags" / case, folder)
        with open(folder / "bag-info.txt", "a", encoding="utf-8") as info:
            info.write(f"BagIt-Profile-Identifier: {url}\n")
        theirs = bagit_profile.Profile(url, profile=JSON_PROFILE_COPY())
        theirs.validate(bagit.Bag(str(folder)))
        their_errors = [str(e) for e in theirs.report.errors if "BagIt-Profile-Identifier" not in str(e)]
        ours = verify_any(folder, "completeness", profiles=[_profile("java")])
        our_errors = [p for p in ours.problems if p.code.startswith("profile-")]
        assert bool(their_errors) == bool(our_errors), (case, their_errors, our_errors)
        assert (code is None) == (not our_errors), case
