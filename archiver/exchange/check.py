"""One entry point for ``verify``, ``audit``, ``mirror`` and ``ingest``: a bag folder,
an S3 bag or a serialised bag, checked by RFC 8493 and, optionally, BagIt profiles.

    >>> report = verify_any(Path("out/essay.tar"), profiles=[load_profile("aptrust")])
    >>> [p.code for p in report.problems]
    ['profile-tag-file-missing']
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from archiver.bagit.reader import BagReader, LocalBag
from archiver.bagit.verify import BagReport, verify_bag
from archiver.errors import StorageError, UsageError
from archiver.exchange.archive_reader import (ArchiveSource, Scan, ScannedBag, archive_kind, scan_archive,
                                               verify_scan)
from archiver.exchange.profiles import ArchiveFacts, Profile, check_profile


def is_archive(path: str | Path) -> bool:
    return archive_kind(str(path)) is not None and (str(path).startswith("s3://") or Path(path).is_file())


def s3_archive(url: str, endpoint_url: str | None = None, client: Any = None) -> ArchiveSource:
    """An archive object on S3, streamed by one GET per pass (tar and tar.gz only:
    zip needs random access, which a stream does not give)."""
    from archiver.replication import make_client, parse_s3_url

    kind = archive_kind(url)
    if kind is None:
        raise UsageError(f"{url} is not a .tar, .tar.gz, .tgz or .zip object")
    if kind == "zip":
        raise UsageError(f"{url}: a zip on S3 cannot be verified in place (zip needs random access); "
                         "use a tar or tar.gz, or copy it locally first")
    client = client or make_client(endpoint_url)
    bucket, key = parse_s3_url(url)

    def open_body() -> Any:
        try:
            return client.get_object(Bucket=bucket, Key=key)["Body"]
        except Exception as exc:  # noqa: BLE001 - botocore's errors are many; all mean "cannot read"
            raise StorageError(f"cannot read {url}: {exc}") from exc

    return ArchiveSource(url, kind, open_body)


def verify_any(bag: Path | BagReader | ArchiveSource, mode: str = "full", processes: int | None = None,
               on_progress: Callable[..., None] | None = None,
               profiles: list[Profile] | None = None, tsa_ca: bytes | None = None) -> BagReport:
    """Verify a bag (folder, reader or archive); each profile's problems join the
    report (a profile problem makes the bag invalid). StorageError if unreadable."""
    if isinstance(bag, Path) and is_archive(bag):
        bag = ArchiveSource.local(bag)
    if isinstance(bag, ArchiveSource):
        return verify_scanned(bag, scan_archive(bag, on_progress), mode, profiles, tsa_ca)
    reader = LocalBag(bag) if isinstance(bag, Path) else bag
    return _with_profiles(verify_bag(reader, mode, processes, on_progress, tsa_ca=tsa_ca), reader, None, profiles)


def verify_scanned(source: ArchiveSource, scan: Scan, mode: str = "full",
                   profiles: list[Profile] | None = None, tsa_ca: bytes | None = None) -> BagReport:
    """``verify_any`` for an archive already scanned (ingest reuses the scan)."""
    return _with_profiles(verify_scan(source, scan, mode, tsa_ca), ScannedBag(source.location, scan),
                          ArchiveFacts(source.kind, source.name, scan.top), profiles)


def _with_profiles(report: BagReport, reader: BagReader, archive: ArchiveFacts | None,
                   profiles: list[Profile] | None) -> BagReport:
    for profile in profiles or []:
        problems, warnings = check_profile(profile, reader, archive)
        report.problems.extend(problems)  # type: ignore[arg-type]
        report.warnings.extend(warnings)  # type: ignore[arg-type]
    report.valid = not report.problems
    return report


def find_bags_and_archives(path: Path, find_bags: Callable[[Path], list[Path]]) -> list[Path]:
    """``path`` itself if it is an archive; else the bag folders ``find_bags`` finds
    plus the archives directly in ``path`` (a collection holding serialised bags)."""
    if path.is_file():
        if archive_kind(path.name) is None:
            raise UsageError(f"{path} is a file but not a .tar, .tar.gz, .tgz or .zip bag")
        return [path]
    found = list(find_bags(path))
    if path.is_dir() and not (path / "bagit.txt").exists():
        found += [entry for entry in sorted(path.iterdir())
                  if entry.is_file() and not entry.name.startswith(".") and archive_kind(entry.name)]
    return found
