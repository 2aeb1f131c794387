"""Benchmark the reader side of an S3 collection root on a loopback moto server.

    python benchmarks/s3_reader.py                  # 500 bags, 1,000 event objects
    python benchmarks/s3_reader.py --bags 100       # a quicker run

Writes N small capture bags (text ~4 KB) in the agreed S3 layout (bag objects,
completion marker, one object per event) to a moto server on 127.0.0.1, then
times, through the CLI's own functions:

- ``list`` with no cache (the cache is built from S3: every bag's metadata,
  text and bag-info read, every event object read),
- ``list`` again with nothing new (listing markers, receipts and event keys only),
- ``list`` after one new event object arrives (one more GET),
- ``audit`` of the whole root (every byte downloaded and hashed),
- ``mirror`` of the root to a local directory.

moto is an in-process Python server sharing the machine's cores with the
client: figures show the shape of the costs (requests per bag, per event), not
what a real store does. Say whether the machine was loaded when quoting them.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from archiver.collection.events import Event  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bags", type=int, default=500)
    parser.add_argument("--events", type=int, default=1000, help="event objects (capture + re-checks)")
    args = parser.parse_args()
    for key, value in {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
                       "AWS_DEFAULT_REGION": "us-east-1"}.items():
        os.environ.setdefault(key, value)
    work = Path(tempfile.mkdtemp(prefix="s3-reader-bench-"))
    os.environ["XDG_CACHE_HOME"] = str(work / "cache")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    from moto.server import ThreadedMotoServer

    from archiver.collection.s3audit import audit_s3_collection
    from archiver.collection.s3root import S3Collection, open_s3_catalog
    from archiver.replication import make_client, mirror_collection, open_site
    from archiver.replication.s3source import S3Source
    from s3collection import put_event, upload_bag
    from test_catalog import make_bag

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        client = make_client(endpoint)
        client.create_bucket(Bucket="bench")
        local = work / "bags"
        local.mkdir()
        started = time.perf_counter()
        for i in range(args.bags):
            name = f"text-{i:05d}-20261130T100000Z"
            bag = make_bag(local, name, url=f"https://example.org/{i}", title=f"Text {i}", author="A. Writer",
                           retrieved="2026-11-30T10:00:00Z", body=("word%d " % i) * 600)
            upload_bag(client, "bench", "texts", bag)
        for n in range(args.events):
            i = n % args.bags
            put_event(client, "bench", "texts", Event(
                "capture", "success" if n < args.bags else "unchanged", bag=f"text-{i:05d}-20261130T100000Z",
                detail={"url": f"https://example.org/{i}"}), writer="b" * 12, seq=n + 1)
        print(f"setup: {args.bags} bags, {args.events} event objects uploaded in "
              f"{time.perf_counter() - started:.1f} s")
        collection = S3Collection("s3://bench/texts", endpoint)

        def timed(label: str, run) -> object:
            t0 = time.perf_counter()
            result = run()
            print(f"{label:<48} {time.perf_counter() - t0:8.2f} s")
            return result

        def listing() -> int:
            with open_s3_catalog(collection) as catalog:
                return len(catalog.list_bags())

        assert timed("list, no cache (builds it from S3)", listing) == args.bags
        timed("list, cache up to date", listing)
        put_event(client, "bench", "texts", Event("capture", "unchanged", bag="text-00000-20261130T100000Z",
                                                  detail={"url": "https://example.org/0"}), writer="c" * 12)
        timed("list, one new event object", listing)
        report = timed("audit (every byte downloaded and hashed)", lambda: audit_s3_collection(collection))
        assert len(report.ok) == args.bags  # type: ignore[attr-defined]
        mirrored = timed("mirror to a local directory (read back, hashed)",
                         lambda: mirror_collection(S3Source(collection), open_site(str(work / "copy"))))
        assert mirrored.count("mirrored") == args.bags  # type: ignore[attr-defined]
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
