"""Building S3 collection roots for tests by writing the agreed layout directly
(S3LAYOUT: bag objects, then the completion marker, and one object per event),
from a local collection made the usual way. The writer side's own publishing
code (``archiver.collection.s3store``) is tested on its own; these helpers keep
the reader tests independent of it."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import datetime, timezone
from pathlib import Path

from archiver.clock import iso, utc_now
from archiver.collection.events import Event, read_events
from archiver.collection.root import list_bag_dirs


def key(prefix: str, rel: str) -> str:
    return f"{prefix}/{rel}" if prefix else rel


def upload_bag(client, bucket: str, prefix: str, bag_dir: Path, *, marker: bool = True) -> None:
    """Every file of the local bag, then (unless ``marker`` is False) its completion marker."""
    files = {str(p.relative_to(bag_dir)): p for p in sorted(bag_dir.rglob("*")) if p.is_file()}
    for rel, path in files.items():
        client.put_object(Bucket=bucket, Key=key(prefix, f"{bag_dir.name}/{rel}"), Body=path.read_bytes())
    if not marker:
        return
    info = (bag_dir / "bag-info.txt").read_text()
    oxum = next((line.split(":", 1)[1].strip() for line in info.splitlines()
                 if line.startswith("Payload-Oxum:")), "")
    metadata_file = bag_dir / "data" / "metadata.json"
    body = {"bag": bag_dir.name, "completed": iso(utc_now()), "payload_oxum": oxum,
            "tagmanifest_sha512": hashlib.sha512((bag_dir / "tagmanifest-sha512.txt").read_bytes()).hexdigest(),
            "files": {rel: path.stat().st_size for rel, path in files.items()},
            "metadata": json.loads(metadata_file.read_text()) if metadata_file.is_file() else None}
    client.put_object(Bucket=bucket, Key=key(prefix, f".archiver/bags/{bag_dir.name}.json"),
                      Body=json.dumps(body).encode())


def put_event(client, bucket: str, prefix: str, event: Event, writer: str | None = None,
              seq: int = 1, stamp: str | None = None) -> str:
    """One event as an object of its own; returns its key (relative to the root)."""
    writer = writer or uuid.uuid4().hex[:12]
    stamp = stamp or datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%f")
    rel = f".archiver/events/{stamp}Z-{writer}-{seq:06d}.json"
    client.put_object(Bucket=bucket, Key=key(prefix, rel), Body=(event.to_json() + "\n").encode())
    return rel


def upload_collection(client, bucket: str, prefix: str, root: Path, *, legacy_events: int = 0) -> None:
    """A local collection as an S3 root: every bag with its marker; the first
    ``legacy_events`` events as a legacy ``events.jsonl``, the rest as objects."""
    for bag_dir in list_bag_dirs(root):
        upload_bag(client, bucket, prefix, bag_dir)
    events = read_events(root).events
    if legacy_events:
        lines = b"".join((e.to_json() + "\n").encode() for e in events[:legacy_events])
        client.put_object(Bucket=bucket, Key=key(prefix, ".archiver/events.jsonl"), Body=lines)
    writer = uuid.uuid4().hex[:12]
    for seq, event in enumerate(events[legacy_events:], start=1):
        put_event(client, bucket, prefix, event, writer, seq)


def event_objects(client, bucket: str, prefix: str) -> list[dict]:
    """The body of every per-event object, as JSON."""
    listed = client.list_objects_v2(Bucket=bucket, Prefix=key(prefix, ".archiver/events/"))
    return [json.loads(client.get_object(Bucket=bucket, Key=o["Key"])["Body"].read())
            for o in listed.get("Contents", [])]
