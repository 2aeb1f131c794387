"""Fixity of bags on S3 from the checksums the server stores, without reading
the payload ("server-attested", never "verified").

Every upload archiver makes sends the file's whole SHA-256 (``s3.S3Objects.put``);
a store that checks it refuses a body that does not match and keeps the value.
Here each payload file's stored value (HeadObject, ChecksumMode=ENABLED) is
compared with the bag's ``manifest-sha256.txt``: equal is **server-attested**,
different is a failure. That is the server's word, not archiver's reading: it
says the bytes the server accepted had that SHA-256, not that they are still
intact on its disks (that is the server's own scrubbing). So the outcome is
labelled server-attested everywhere (``METHOD``: result, CLI, JSON, events).

A file is **read and hashed** instead (that part IS verified) when:

    tag-file                 it is outside data/: tag files are read anyway (the
                             manifests are what everything is compared with)
    tag-manifest             a tag manifest: read when parsed; nothing in the
                             bag records its digest
    manifest-has-no-sha256   the bag's manifests have no sha256 for it
    no-stored-sha256         the server keeps no SHA-256 for the object (uploaded
                             without one, or overwritten without one)
    composite                multipart upload: the stored value is a checksum of
                             the parts' checksums ("<b64>-<parts>", ChecksumType
                             COMPOSITE), not comparable with a whole-file SHA-256
    server-does-not-check    the probe found that the server stores whatever
                             checksum it is sent without checking it (moto does):
                             its values are the uploader's claims, so none is used
    server-unprobed          the probe could not tell (no write permission, an
                             error): no stored value is used

The probe (``probe_server``) uploads one small object with a deliberately wrong
SHA-256 under ``<prefix>/.archiver/checksum-probe/``: a checking server refuses
it (BadDigest); one that accepts it does not check, and the object is deleted.

Structure (bagit.txt, bag-info, completeness, Payload-Oxum, the RFC 3161 token)
is checked as ``verify --completeness-only`` does, from the listing and the
tag files. A bag all of whose files were read reports ``success`` (verified);
one with any attested file ``server-attested``; any problem ``failure``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import re
import uuid
from collections import deque
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Callable, Iterable, Iterator

from archiver.bagit.hashing import check_stream, unreadable_problem
from archiver.bagit.reader import FileEntry
from archiver.bagit.report import Problem
from archiver.bagit.verify import verify_bag
from archiver.collection.events import Event
from archiver.errors import StorageError, UsageError
from archiver.replication.fixity import manifest_digests
from archiver.replication.plan import algorithm_of
from archiver.replication.s3 import S3Site, _client_errors, _error_code
from archiver.replication.site import Site

METHOD = "server-attested"
ATTESTED = "server-attested"  # the event outcome and the per-bag status
PROBE_DIR = ".archiver/checksum-probe"
# The error codes with which stores refuse a body whose checksum does not match.
_REFUSED = {"BadDigest", "XAmzContentChecksumMismatch", "XAmzContentSHA256Mismatch", "InvalidDigest"}
_MULTIPART_ETAG = re.compile(r"-\d+\"?$")
WORKERS = 16  # HEADs and reads in flight
BAG_WORKERS = 4  # bags checked at once
KEEP_TAG_FILE = 1 << 20  # tag files up to this size are fetched once per bag

ProgressCallback = Callable[[int, int, str], None]


@dataclass(frozen=True)
class ServerProbe:
    """Does the server check the checksums it is sent? True, False or None (unknown)."""

    checks: bool | None
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"checks_checksums": self.checks, "message": self.message}


def probe_server(site: S3Site) -> ServerProbe:
    """Upload a small object with a wrong SHA-256 and see whether the server refuses it."""
    key = site._key(f"{PROBE_DIR}/{uuid.uuid4().hex}")
    body = b"archiver checksum probe: this body does not match the checksum sent with it\n"
    wrong = base64.b64encode(hashlib.sha256(b"not the body").digest()).decode("ascii")
    try:
        site.client.put_object(Bucket=site.bucket, Key=key, Body=body, ChecksumAlgorithm="SHA256",
                               ChecksumSHA256=wrong)
    except _client_errors() as exc:
        code = _error_code(exc)
        if code in _REFUSED:
            return ServerProbe(True, f"the server refused a body with a wrong SHA-256 ({code}): "
                                     "it checks the checksums it stores")
        return ServerProbe(None, f"could not tell whether the server checks checksums "
                                 f"({code or type(exc).__name__}); stored checksums are not used")
    site.objects.delete(key)
    return ServerProbe(False, "the server accepted a body with a wrong SHA-256: its stored checksums are "
                              "only the uploader's claims, so every file is read instead")


def stored_sha256(head: dict[str, Any]) -> tuple[str | None, str]:
    """(hex SHA-256 of the whole object, "") from a HeadObject response, or
    (None, the reason it has none usable)."""
    value = head.get("ChecksumSHA256")
    if not value:
        return None, "no-stored-sha256"
    etag = str(head.get("ETag", ""))
    # moto reports a multipart object's composite value without "-N" and without
    # ChecksumType; its multipart ETag ("…-N") still tells.
    if head.get("ChecksumType") == "COMPOSITE" or "-" in value or _MULTIPART_ETAG.search(etag):
        return None, "composite"
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None, "no-stored-sha256"
    if len(raw) != 32:
        return None, "no-stored-sha256"
    return raw.hex(), ""


@dataclass
class BagAttestation:
    """One bag's result. ``status``: server-attested | success (every file read
    and hashed: verified) | failure."""

    bag: str
    location: str
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    attested: int = 0
    read: dict[str, int] = field(default_factory=dict)  # reason → files read and hashed
    attested_bytes: int = 0
    read_bytes: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def status(self) -> str:
        if self.problems:
            return "failure"
        return ATTESTED if self.attested else "success"

    @property
    def read_files(self) -> int:
        return sum(self.read.values())

    def to_dict(self) -> dict[str, Any]:
        return {"bag": self.bag, "path": self.location, "method": METHOD, "status": self.status,
                "valid": self.ok, "attested": self.attested, "read": self.read_files,
                "read_reasons": dict(sorted(self.read.items())), "attested_bytes": self.attested_bytes,
                "read_bytes": self.read_bytes, "problems": [p.to_dict() for p in self.problems],
                "warnings": [w.to_dict() for w in self.warnings]}


@dataclass
class SiteAttestation:
    location: str
    probe: ServerProbe
    bags: list[BagAttestation] = field(default_factory=list)
    errors: list[dict[str, str]] = field(default_factory=list)  # bags that could not be read at all

    def total(self, what: str) -> int:
        if what == "read":
            return sum(b.read_files for b in self.bags)
        return sum(getattr(b, what) for b in self.bags)

    def read_reasons(self) -> dict[str, int]:
        reasons: dict[str, int] = {}
        for bag in self.bags:
            for reason, count in bag.read.items():
                reasons[reason] = reasons.get(reason, 0) + count
        return dict(sorted(reasons.items()))

    def to_dict(self) -> dict[str, Any]:
        return {"method": METHOD, "location": self.location, "server": self.probe.to_dict(),
                "attested": self.total("attested"), "read": self.total("read"),
                "read_reasons": self.read_reasons(),
                "failed": sum(1 for b in self.bags if not b.ok),
                "bags": [b.to_dict() for b in self.bags], "errors": self.errors}


class _ListedBag:
    """A bag on S3 read through a listing made once (verify_bag lists it again
    otherwise); small tag files are fetched once, though the structure check,
    the manifest parsing and the tag-file hashing each read them."""

    def __init__(self, site: S3Site, name: str, sizes: dict[str, int]) -> None:
        self._reader = site.reader(name)
        self.location = self._reader.location
        self._sizes = sizes
        self._kept: dict[str, bytes] = {}

    def list_files(self) -> list[FileEntry]:
        return [FileEntry(path, size) for path, size in sorted(self._sizes.items())]

    def open(self, path: str) -> BinaryIO:
        if "/" in path or self._sizes.get(path, KEEP_TAG_FILE + 1) > KEEP_TAG_FILE:
            return self._reader.open(path)
        if path not in self._kept:
            with self._reader.open(path) as stream:
                self._kept[path] = stream.read()
        return io.BytesIO(self._kept[path])


def _expected_digests(reader: _ListedBag, sizes: dict[str, int]) -> tuple[dict[str, dict[str, str]], set[str]]:
    """({path: {algorithm: hex}} from every manifest and tag manifest, the tag manifests' paths)."""
    expected = {path: {alg: digest.lower() for alg, digest in digests.items()}
                for path, digests in manifest_digests(reader, sizes).items()}
    return expected, {name for name in sizes if name.startswith("tagmanifest-") and algorithm_of(name)}


def attest_bag(site: S3Site, name: str, probe: ServerProbe, pool: Executor,
               tsa_ca: bytes | None = None, sizes: dict[str, int] | None = None) -> BagAttestation:
    """Check one bag at ``site`` (see the module doc), its files' checks run on
    ``pool``; ``sizes``: its files from a listing made by this run (None: list it
    now). StorageError: it cannot be listed."""
    base = site._key(name + "/")
    if not sizes:
        sizes = {key[len(base):]: meta["Size"] for key, meta in site.objects.list(base).items()}
    sizes = {path: size for path, size in sizes.items() if path and not path.endswith("/")}
    reader = _ListedBag(site, name, sizes)
    result = BagAttestation(name, reader.location)
    structure = verify_bag(reader, "completeness", tsa_ca=tsa_ca)  # reads tag files only
    result.problems.extend(structure.problems)
    result.warnings.extend(structure.warnings)
    expected, tagmanifests = _expected_digests(reader, sizes)
    for path in tagmanifests:
        _count_read(result, "tag-manifest", sizes[path])

    def check(path: str) -> tuple[str, str, list[Problem]]:
        """(how: "attested" | "read" | "missing", read reason, problems)."""
        digests = expected[path]
        reason = _read_reason(path, digests, probe)
        if not reason:
            head = site.objects.head(base + path)
            if head is None:
                return "missing", "", [Problem("file-missing", path, f"{path} vanished while checking")]
            stored, reason = stored_sha256(head)
            if stored is not None:
                if stored == digests["sha256"]:
                    return "attested", "", []
                return "attested", "", [Problem(
                    "checksum-mismatch", path,
                    f"the server's stored sha256 does not match manifest-sha256.txt: "
                    f"expected {digests['sha256']}, the server has {stored}")]
        try:
            with reader.open(path) as stream:
                return "read", reason, check_stream(stream, digests, path)
        except FileNotFoundError:
            return "missing", reason, [Problem("file-missing", path, f"{path} vanished while checking")]
        except (StorageError, OSError) as exc:
            return "read", reason, [unreadable_problem(path, str(exc))]

    present = sorted(p for p in expected if p in sizes)
    for path, (how, reason, problems) in zip(present, _in_order(pool, check, present)):
        result.problems.extend(problems)
        if how == "attested":
            result.attested += 1
            result.attested_bytes += sizes[path]
        elif how == "read":
            _count_read(result, reason, sizes[path])
    return result


def _in_order(pool: Executor, fn: Callable[[Any], Any], items: Iterable[Any], window: int = 256) -> Iterator[Any]:
    """``pool.map`` with at most ``window`` calls in flight (a million files are not
    a million futures at once); results in the order of ``items``."""
    pending: deque[Future[Any]] = deque()
    for item in items:
        pending.append(pool.submit(fn, item))
        if len(pending) >= window:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def _read_reason(path: str, digests: dict[str, str], probe: ServerProbe) -> str:
    """Why ``path`` must be read ("" when its stored checksum may be used)."""
    if not path.startswith("data/"):
        return "tag-file"
    if "sha256" not in digests:
        return "manifest-has-no-sha256"
    if probe.checks is False:
        return "server-does-not-check"
    if probe.checks is None:
        return "server-unprobed"
    return ""


def _count_read(result: BagAttestation, reason: str, size: int) -> None:
    result.read[reason] = result.read.get(reason, 0) + 1
    result.read_bytes += size


def as_s3_site(site: Site) -> S3Site:
    if not isinstance(site, S3Site):
        raise UsageError(f"--server-checksums needs an s3:// location ({site.location} is not one): "
                         "a local disk keeps no checksums of its own")
    return site


def server_attest_site(site: Site, names: Iterable[str] | None = None, workers: int = WORKERS,
                       on_progress: ProgressCallback | None = None, tsa_ca: bytes | None = None,
                       on_bag: Callable[[BagAttestation], None] | None = None,
                       probe: ServerProbe | None = None) -> SiteAttestation:
    """Server-attest ``names`` (default: every bag at the site). A bag that cannot
    be listed or read at all goes to ``errors`` (could not check), not to failures.
    ``on_bag`` is called with each result as it is made (to log events as it goes);
    ``probe``: a probe already made (default: probe the server now)."""
    s3 = as_s3_site(site)
    s3.check_readable()
    todo = sorted(names) if names is not None else s3.bag_names()  # bag_names lists the site
    if names is not None and len(todo) > 1:
        s3.scan()  # one listing of the site, made now, instead of one per bag
    scanned = len(todo) > 1
    report = SiteAttestation(s3.location, probe or probe_server(s3))

    def one(name: str) -> BagAttestation | str:
        try:
            return attest_bag(s3, name, report.probe, files, tsa_ca, s3.scanned_files(name) if scanned else None)
        except StorageError as exc:
            return str(exc)

    # Bags in parallel (many small bags), and their files on one shared pool (one big bag).
    with ThreadPoolExecutor(max(1, workers)) as files, ThreadPoolExecutor(BAG_WORKERS) as bags:
        for index, (name, result) in enumerate(zip(todo, _in_order(bags, one, todo, window=2 * BAG_WORKERS))):
            if on_progress:
                on_progress(index, len(todo), name)
            if isinstance(result, str):
                report.errors.append({"path": f"{s3.location}/{name}", "error": result})
                continue
            report.bags.append(result)
            if on_bag:
                on_bag(result)
    if on_progress:
        on_progress(len(todo), len(todo), "")
    return report


def attest_location(site: Site, **kwargs: Any) -> SiteAttestation:
    """``verify s3://… --server-checksums``: one bag, or every bag under the location."""
    s3 = as_s3_site(site)
    located = s3.locate_bag()
    if located is not None:
        parent, name = located
        return server_attest_site(parent, [name], **kwargs)
    names = [str(reader.location).rsplit("/", 1)[-1] for reader in s3.bag_readers()]
    return server_attest_site(s3, names, **kwargs)


def attestation_event(result: BagAttestation, site_location: str, probe: ServerProbe) -> Event:
    """The fixity event: outcome server-attested, success (all read) or failure."""
    detail: dict[str, Any] = {"method": METHOD, "site": site_location, "algorithm": "sha256",
                              "attested": result.attested, "read": result.read_files,
                              "read_reasons": dict(sorted(result.read.items())),
                              "server_checks_checksums": probe.checks}
    if result.problems:
        detail["files"] = sorted({p.path for p in result.problems if p.path})[:1000]
        detail["problems"] = [p.to_dict() for p in result.problems[:1000]]
    return Event("fixity", result.status, bag=result.bag, detail=detail)


def read_site_events(site: S3Site) -> list[Event]:
    """The site's event log as events (lines that are not whole events are skipped)."""
    import json

    events = []
    for line in site.read_event_log().split(b"\n"):
        if line.strip():
            try:
                events.append(Event.from_dict(json.loads(line)))
            except (ValueError, KeyError, TypeError):
                continue
    return events


@dataclass
class ServerAudit:
    """``audit --server-checksums`` of an S3 site."""

    attestation: SiteAttestation
    missing: list[str] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.missing and all(b.ok for b in self.attestation.bags)

    def to_dict(self) -> dict[str, Any]:
        bags = self.attestation.bags
        return {**self.attestation.to_dict(), "root": self.attestation.location, "checked": len(bags),
                "server_attested": [b.bag for b in bags if b.status == ATTESTED],
                "verified_by_reading": [b.bag for b in bags if b.status == "success"],
                "failed_bags": [b.bag for b in bags if not b.ok],
                "missing": self.missing, "skipped": self.skipped}


def audit_site(site: Site, max_age: Any, limit: int | None = None, now: Any = None,
               on_progress: ProgressCallback | None = None, tsa_ca: bytes | None = None,
               log_every: int = 100) -> ServerAudit:
    """Server-attest the bags of an S3 site that are due, logging one fixity event
    each to the site's log (in batches of ``log_every``: S3 cannot append).

    Only this method's own events (``detail.method`` server-attested, ``detail.site``
    this site) say when a bag was last checked here: a mirror's log also holds the
    source collection's events, which are about another copy."""
    from archiver.clock import utc_now
    from archiver.collection.audit import plan_audit

    s3 = as_s3_site(site)
    s3.check_readable()
    mine = [e for e in read_site_events(s3)
            if e.type == "fixity" and e.detail.get("method") == METHOD and e.detail.get("site") == s3.location]
    plan = plan_audit(s3.bag_names(), mine, now or utc_now(), max_age, limit, good=("success", ATTESTED))
    pending: list[Event] = []

    def log(event: Event) -> None:
        pending.append(event)
        if len(pending) >= log_every:
            s3.log_events(pending)
            pending.clear()

    probe = probe_server(s3) if plan.due else ServerProbe(None, "no bag was due: the server was not probed")
    try:
        attestation = server_attest_site(
            s3, plan.due, on_progress=on_progress, tsa_ca=tsa_ca, probe=probe,
            on_bag=lambda result: log(attestation_event(result, s3.location, probe)))
    finally:
        if pending:
            s3.log_events(pending)
    report = ServerAudit(attestation, plan.missing,
                         [{"bag": bag, "reason": reason, "last_checked": plan.last_ok.get(bag)}
                          for bag, reason in plan.skipped])
    missing_events = [Event("fixity", "unverifiable", bag=bag,
                            detail={"method": METHOD, "site": s3.location, "reason": "missing",
                                    "message": f"bag {bag} is gone from {s3.location}"})
                      for bag in plan.missing]
    if missing_events:
        s3.log_events(missing_events)
    return report
