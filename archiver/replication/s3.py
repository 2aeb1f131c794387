"""S3-compatible object storage (AWS, SeaweedFS, Ceph RGW, MinIO) through boto3.

``S3Bag`` reads a bag in place, streaming, for ``verify`` (the ``BagReader``
protocol); ``S3Site`` is ``archiver.replication.site.Site`` for
``s3://bucket/prefix`` (mirror target, repair source or target). Keys::

    <prefix>/<bag>/<path>                       the bag's files
    <prefix>/.archiver/receipts/<bag>.json      receipt, written last
    <prefix>/.archiver/events/<time>Z-<writer>-<seq>.json   one event each, never rewritten
    <prefix>/.archiver/events.jsonl             the legacy event log (read, never written)

S3 has no rename, but a PUT is atomic per object, so a bag is "published" by
its receipt alone: objects are sent payload first, then tag files, then tag
manifests, then the receipt. Credentials come the usual AWS way (environment,
``~/.aws``, instance roles); ``endpoint_url`` points at a non-AWS store.

Checksums the server stores (``S3Objects.put``): every upload up to
``SINGLE_PUT_LIMIT`` is one PutObject carrying ``ChecksumSHA256`` = the
file's whole SHA-256, the manifest's when the bag has one, else computed by
archiver while reading the file once (a seekable file is hashed in place, then
sent; a stream is hashed while it is spooled, in memory up to ``SPOOL_MEMORY``,
on disk beyond). A store that checks checksums (AWS, SeaweedFS) refuses a body
that does not match, and keeps the value: HeadObject with ChecksumMode=ENABLED
returns it. Larger files go multipart with ``ChecksumAlgorithm=SHA256``: each
part carries its own SHA-256 and the object's stored value is then COMPOSITE,
``base64(sha256(sha256(part 1) || … || sha256(part N)))-N``, a checksum of the
part checksums that depends on the part size and cannot be compared with a
whole-file SHA-256 (S3 offers FULL_OBJECT multipart checksums only for the CRC
family, never SHA-256). ``server_fixity`` therefore treats a composite value as
no usable stored checksum and reads such a file.
"""

from __future__ import annotations

import base64
import hashlib
import re
import tempfile
from typing import Any, BinaryIO, cast

from archiver.bagit.reader import BagReader, FileEntry
from archiver.collection.events import Event
from archiver.errors import StorageError, TargetUnreachable, UsageError, redact_credentials
from archiver.replication.lock import MirrorLock, S3Lock
from archiver.replication.plan import SourceBag, TargetBagState, algorithm_of
from archiver.replication.s3events import EventObjectNames, merge_event_lines
from archiver.replication.site import Site
from archiver.replication.target import EVENTS_FILE, RECEIPTS_DIR

EVENTS_DIR = ".archiver/events"

_BUCKET = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$")
SINGLE_PUT_LIMIT = 1 << 30  # above this, a multipart upload (boto3's managed transfer)
PART_SIZE = 64 << 20  # multipart part size (more for files over 9,000 parts; S3 allows 10,000)
MAX_PARTS = 9_000
SPOOL_MEMORY = 8 << 20  # a stream hashed on its way up is held in memory up to this, then on disk
_COPY_CHUNK = 1 << 20


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix/`` → ``("bucket", "some/prefix")``."""
    if not url.startswith("s3://"):
        raise UsageError(f"not an s3:// location: {url}")
    bucket, _, prefix = url[5:].partition("/")
    if not bucket:
        raise UsageError(f"no bucket in {redact_credentials(url)} (expected s3://bucket/prefix)")
    if "@" in bucket:
        raise UsageError(f"refusing {redact_credentials(url)}: S3 credentials never go in the URL; "
                         "give them the usual AWS way (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
                         "~/.aws/credentials, an instance role)")
    if not _BUCKET.match(bucket):
        raise UsageError(f"{bucket!r} is not an S3 bucket name (letters, digits, '.', '-', '_'; "
                         "expected s3://bucket/prefix)")
    return bucket, prefix.strip("/")


def make_client(endpoint_url: str | None = None, checksum_when_required: bool = True,
                max_pool_connections: int = 16) -> Any:
    """A boto3 S3 client. ``checksum_when_required`` sets boto3's
    ``request_checksum_calculation``/``response_checksum_validation`` to
    ``"when_required"``: stores that reject the default CRC32 headers work,
    and uploads still carry the SHA256 checksum archiver asks for explicitly."""
    import boto3
    from botocore.config import Config

    options: dict[str, Any] = {"max_pool_connections": max_pool_connections,
                               "retries": {"max_attempts": 3, "mode": "standard"},
                               "connect_timeout": 10, "read_timeout": 60}
    if checksum_when_required:
        options["request_checksum_calculation"] = "when_required"
        options["response_checksum_validation"] = "when_required"
    try:
        return boto3.client("s3", endpoint_url=endpoint_url, config=Config(**options))
    except Exception as exc:  # botocore raises many kinds for bad config
        raise UsageError(f"cannot set up an S3 client: {exc}") from exc


def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def _is_missing(exc: Exception) -> bool:
    return _error_code(exc) in ("NoSuchKey", "404", "NotFound")


def _client_errors() -> tuple[type[Exception], ...]:
    from botocore.exceptions import BotoCoreError, ClientError

    return (ClientError, BotoCoreError)


class _Body:
    """A streaming object body as a binary file: read(n), close, context manager."""

    def __init__(self, body: Any, location: str) -> None:
        self._body = body
        self._location = location

    def read(self, n: int = -1) -> bytes:
        try:
            return self._body.read(None if n is None or n < 0 else n)
        except _client_errors() + (OSError,) as exc:
            raise StorageError(f"reading {self._location} failed: {exc}") from exc

    def close(self) -> None:
        self._body.close()

    def __enter__(self) -> "_Body":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _seekable(stream: BinaryIO) -> bool:
    try:
        return bool(stream.seekable())
    except (AttributeError, OSError, ValueError):
        return False


def _sha256_of(stream: BinaryIO) -> str:
    hasher = hashlib.sha256()
    while chunk := stream.read(_COPY_CHUNK):
        hasher.update(chunk)
    return hasher.hexdigest()


class S3Objects:
    """Thin layer over one bucket: list, get, put, delete, with archiver's errors."""

    def __init__(self, client: Any, bucket: str) -> None:
        self.client = client
        self.bucket = bucket

    def url(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def list(self, prefix: str) -> dict[str, dict[str, Any]]:
        """Every object under ``prefix``: key → {"Size", "ETag"}."""
        found: dict[str, dict[str, Any]] = {}
        try:
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for obj in page.get("Contents", ()):
                    found[obj["Key"]] = {"Size": obj["Size"], "ETag": obj.get("ETag", "")}
        except _client_errors() as exc:
            raise StorageError(f"cannot list {self.url(prefix)}: {exc}") from exc
        return found

    def open(self, key: str) -> _Body:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=key)
        except _client_errors() as exc:
            if _is_missing(exc):
                raise FileNotFoundError(self.url(key)) from exc
            raise StorageError(f"cannot read {self.url(key)}: {exc}") from exc
        return _Body(response["Body"], self.url(key))

    def get_bytes(self, key: str) -> bytes | None:
        try:
            with self.open(key) as body:
                return body.read()
        except FileNotFoundError:
            return None

    def put(self, key: str, stream: BinaryIO | bytes, size: int, sha256: str | None = None) -> None:
        """Store ``stream`` (``size`` bytes) at ``key`` with a SHA-256 the server keeps
        (see the module doc): ``sha256`` is the manifest's hex digest, or None to
        have it computed here in one streaming pass."""
        try:
            if isinstance(stream, bytes):
                self._put_single(key, stream, sha256 or hashlib.sha256(stream).hexdigest())
            elif size > SINGLE_PUT_LIMIT:
                self._put_multipart(key, stream, size)
            elif _seekable(stream):
                if sha256 is None:
                    start = stream.tell()
                    sha256 = _sha256_of(stream)
                    stream.seek(start)
                self._put_single(key, stream, sha256)  # botocore seeks it back to retry
            else:
                self.put_stream(key, stream)
        except _client_errors() as exc:
            raise StorageError(f"cannot write {self.url(key)}: {exc}") from exc

    def put_stream(self, key: str, stream: BinaryIO) -> None:
        """Store a stream of unknown size (not seekable: a body read from
        elsewhere): hashed while it is spooled, then sent as ``put`` sends a file."""
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY) as spool:
            hasher = hashlib.sha256()
            size = 0
            while chunk := stream.read(_COPY_CHUNK):
                hasher.update(chunk)
                spool.write(chunk)
                size += len(chunk)
            spool.seek(0)
            try:
                if size > SINGLE_PUT_LIMIT:
                    self._put_multipart(key, cast(BinaryIO, spool), size)
                else:
                    self._put_single(key, spool, hasher.hexdigest())
            except _client_errors() as exc:
                raise StorageError(f"cannot write {self.url(key)}: {exc}") from exc

    def _put_single(self, key: str, body: Any, sha256: str) -> None:
        self.client.put_object(Bucket=self.bucket, Key=key, Body=body, ChecksumAlgorithm="SHA256",
                               ChecksumSHA256=base64.b64encode(bytes.fromhex(sha256)).decode("ascii"))

    def _put_multipart(self, key: str, stream: BinaryIO, size: int) -> None:
        """boto3's managed multipart upload, a SHA-256 per part; the stored
        object checksum is COMPOSITE (module doc)."""
        from boto3.s3.transfer import TransferConfig

        part = max(PART_SIZE, -(-size // MAX_PARTS))
        config = TransferConfig(multipart_threshold=1, multipart_chunksize=part)
        self.client.upload_fileobj(stream, self.bucket, key, ExtraArgs={"ChecksumAlgorithm": "SHA256"},
                                   Config=config)

    def head(self, key: str) -> dict[str, Any] | None:
        """HeadObject with ChecksumMode=ENABLED (None: no such object): size,
        ETag and the stored checksum fields, if the server keeps any."""
        try:
            return cast(dict[str, Any], self.client.head_object(Bucket=self.bucket, Key=key,
                                                                ChecksumMode="ENABLED"))
        except _client_errors() as exc:
            if _is_missing(exc):
                return None
            raise StorageError(f"cannot read the attributes of {self.url(key)}: {exc}") from exc

    def copy(self, source_key: str, key: str) -> None:
        try:
            self.client.copy_object(Bucket=self.bucket, Key=key, ChecksumAlgorithm="SHA256",
                                    CopySource={"Bucket": self.bucket, "Key": source_key})
        except _client_errors() as exc:
            raise StorageError(f"cannot copy {self.url(source_key)} to {key}: {exc}") from exc

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=key)
        except _client_errors() as exc:
            raise StorageError(f"cannot delete {self.url(key)}: {exc}") from exc


class S3Bag:
    """A bag on S3, read in place (``archiver.bagit.reader.BagReader``)."""

    def __init__(self, client: Any, bucket: str, prefix: str) -> None:
        self.objects = S3Objects(client, bucket)
        self.prefix = prefix.strip("/")
        self.location = f"s3://{bucket}/{self.prefix}"

    def list_files(self) -> list[FileEntry]:
        base = self.prefix + "/"
        listed = self.objects.list(base)
        return sorted((FileEntry(key[len(base):], meta["Size"]) for key, meta in listed.items()
                       if not key.endswith("/")), key=lambda e: e.path)

    def open(self, path: str) -> BinaryIO:
        # _Body has what readers use of a binary file: read(n), close, a context manager.
        return cast(BinaryIO, self.objects.open(f"{self.prefix}/{path}"))


def find_s3_bags(client: Any, url: str) -> list[S3Bag]:
    """The bag at ``url`` if it is one, else every bag directly under it
    (a prefix holding ``bagit.txt``); ``.archiver`` is skipped."""
    bucket, prefix = parse_s3_url(url)
    objects = S3Objects(client, bucket)
    base = prefix + "/" if prefix else ""
    listed = objects.list(base)
    if base + "bagit.txt" in listed:
        return [S3Bag(client, bucket, prefix)]
    names = sorted({key[len(base):].split("/", 1)[0] for key in listed
                    if key[len(base):].count("/") == 1 and key.endswith("/bagit.txt")})
    return [S3Bag(client, bucket, base + name) for name in names if not name.startswith(".")]


class S3Site:
    """The site ``s3://bucket/prefix``."""

    parallel_planning = False

    def __init__(self, client: Any, url: str) -> None:
        self.client = client
        self.bucket, self.prefix = parse_s3_url(url)
        self.objects = S3Objects(client, self.bucket)
        self.location = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        self._listing: dict[str, dict[str, dict[str, Any]]] | None = None
        self._receipts: set[str] = set()
        self._event_writer = EventObjectNames()

    def _key(self, rel: str) -> str:
        return f"{self.prefix}/{rel}" if self.prefix else rel

    def check_reachable(self) -> None:
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except _client_errors() as exc:
            raise TargetUnreachable(f"S3 bucket {self.bucket} cannot be reached: {exc} "
                                    "(check --endpoint-url, credentials, and that the bucket exists)") from exc

    def check_readable(self) -> None:
        self.check_reachable()

    def bag_readers(self) -> list[BagReader]:
        return [*find_s3_bags(self.client, self.location)]

    def locate_bag(self) -> tuple[Site, str] | None:
        if self.prefix and _looks_like_s3_bag(self.objects.list(self.prefix + "/"), self.prefix + "/"):
            parent, _, name = self.prefix.rpartition("/")
            return S3Site(self.client, f"s3://{self.bucket}/{parent}"), name
        return None

    def scan(self) -> None:
        """List the whole target once: bag files with sizes and ETags, receipts."""
        base = self._key("")
        listing: dict[str, dict[str, dict[str, Any]]] = {}
        receipts: set[str] = set()
        receipt_base = self._key(RECEIPTS_DIR + "/")
        for key, meta in self.objects.list(base).items():
            if key.startswith(receipt_base) and key.endswith(".json"):
                receipts.add(key[len(receipt_base):-5])
                continue
            rel = key[len(base):]
            name, sep, path = rel.partition("/")
            if sep and path and not name.startswith("."):
                listing.setdefault(name, {})[path] = meta
        self._listing, self._receipts = listing, receipts

    def state(self, source: SourceBag) -> TargetBagState | None:
        if self._listing is None:
            self.scan()
        assert self._listing is not None
        files = self._listing.get(source.name)
        if not files:
            return None
        identical = all(self._same_bytes(source.name, name, content, files.get(name))
                        for name, content in source.tagmanifests.items())
        return TargetBagState({p: m["Size"] for p, m in files.items()},
                              source.name in self._receipts, identical)

    def _same_bytes(self, name: str, path: str, content: bytes, meta: dict[str, Any] | None) -> bool:
        if meta is None or meta["Size"] != len(content):
            return False
        etag = meta.get("ETag", "").strip('"')
        # A single-part upload's ETag is the MD5 of its bytes on every S3 store
        # archiver targets; anything else (multipart "-N", SSE-KMS) is fetched.
        if len(etag) == 32 and "-" not in etag:
            return etag == hashlib.md5(content).hexdigest()
        return self.objects.get_bytes(self._key(f"{name}/{path}")) == content

    def listing(self, name: str) -> dict[str, int]:
        base = self._key(name + "/")
        return {key[len(base):]: meta["Size"] for key, meta in self.objects.list(base).items()}

    def scanned_files(self, name: str) -> dict[str, int] | None:
        """The bag's files with sizes as the last ``scan`` saw them (None: no scan yet)."""
        if self._listing is None:
            return None
        return {path: meta["Size"] for path, meta in self._listing.get(name, {}).items()}

    def mirror_lock(self, lease: float) -> MirrorLock:
        return S3Lock(self.client, self.bucket, self.prefix, lease)

    def keeps_receipts(self) -> bool:
        """True when this target is a mirror (it holds at least one receipt)."""
        return bool(self.objects.list(self._key(RECEIPTS_DIR + "/")))

    def reader(self, name: str) -> BagReader:
        return S3Bag(self.client, self.bucket, self._key(name))

    def has_receipt(self, name: str) -> bool:
        return self.objects.get_bytes(self._key(f"{RECEIPTS_DIR}/{name}.json")) is not None

    def bag_names(self) -> list[str]:
        self.scan()
        assert self._listing is not None
        from archiver.collection.s3root import visible_bag_names  # a collection: complete bags only

        return visible_bag_names(self.client, self.location, sorted(self._listing))

    def begin(self, name: str) -> None:
        # After a scan we know which receipts exist; a new bag needs no DELETE.
        if self._listing is None or name in self._receipts:
            self.delete_receipt(name)
            self._receipts.discard(name)

    def put(self, name: str, path: str, stream: BinaryIO, size: int, sha256: str | None) -> None:
        self.objects.put(self._key(f"{name}/{path}"), stream, size, sha256)

    def delete(self, name: str, path: str) -> None:
        self.objects.delete(self._key(f"{name}/{path}"))

    def finish(self, name: str) -> None:
        """Nothing to do: each PUT is durable when it returns."""

    def write_receipt(self, name: str, data: bytes) -> None:
        self.objects.put(self._key(f"{RECEIPTS_DIR}/{name}.json"), data, len(data))

    def delete_receipt(self, name: str) -> None:
        self.objects.delete(self._key(f"{RECEIPTS_DIR}/{name}.json"))

    def read_event_log(self, known: dict[str, bytes] | None = None) -> bytes:
        """Every event line the site holds: the legacy ``events.jsonl`` and the
        per-event objects, merged in order of (event time, key). ``known`` (key →
        body) holds event objects already read, and gets the new ones: an event
        object is never rewritten, so only those not seen before are fetched."""
        legacy = self.objects.get_bytes(self._key(EVENTS_FILE)) or b""
        base = self._key(EVENTS_DIR + "/")
        keys = sorted(k for k in self.objects.list(base) if k.endswith(".json"))
        known = {} if known is None else known
        known.update(self._get_many([k for k in keys if k not in known]))
        return merge_event_lines(legacy, [(k, known[k]) for k in keys if k in known])

    def _get_many(self, keys: list[str]) -> list[tuple[str, bytes]]:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=min(16, max(1, len(keys)))) as pool:
            bodies = list(pool.map(self.objects.get_bytes, keys))
        # An object listed then gone (deleted by hand) is skipped, not fatal.
        return [(key, body) for key, body in zip(keys, bodies) if body is not None]

    def append_event_lines(self, lines: list[bytes]) -> None:
        """Each line becomes an object of its own under ``.archiver/events/``,
        never rewritten: two writers can never lose each other's events."""
        lines = [line.rstrip(b"\n") for line in lines if line.strip()]
        if not lines:
            return
        puts = [(self._key(f"{EVENTS_DIR}/{self._event_writer.next_name()}"), line + b"\n") for line in lines]
        if len(puts) == 1:
            self.objects.put(puts[0][0], puts[0][1], len(puts[0][1]))
            return
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=min(8, len(puts))) as pool:
            for future in [pool.submit(self.objects.put, key, body, len(body)) for key, body in puts]:
                future.result()

    def log_events(self, events: list[Event]) -> None:
        self.append_event_lines([e.to_json().encode("utf-8") for e in events])

    # -- repair: stage under .archiver/staging, read back, copy into place -----------
    def _staging_key(self, name: str, path: str = "") -> str:
        return self._key(f".archiver/staging/{name}/{path}")

    def stage(self, name: str, path: str, stream: BinaryIO) -> None:
        self.objects.put_stream(self._staging_key(name, path), stream)

    def staged_reader(self, name: str) -> BagReader:
        return S3Bag(self.client, self.bucket, self._staging_key(name).rstrip("/"))

    def swap(self, name: str, path: str) -> None:
        self.objects.copy(self._staging_key(name, path), self._key(f"{name}/{path}"))
        self.objects.delete(self._staging_key(name, path))

    def discard_staging(self, name: str) -> None:
        for key in self.objects.list(self._staging_key(name)):
            self.objects.delete(key)


def _looks_like_s3_bag(listed: dict[str, dict[str, Any]], base: str) -> bool:
    """Like ``verify.looks_like_bag``: bagit.txt, or data/ and a manifest (a
    bag that lost its bagit.txt is still a bag, and one to repair)."""
    names = {key[len(base):] for key in listed}
    top = {n for n in names if "/" not in n}
    return "bagit.txt" in top or (any(n.startswith("data/") for n in names)
                                  and any(algorithm_of(n) for n in top))


S3Target = S3Site  # the name mirror's callers and tests know
