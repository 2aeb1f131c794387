"""A real S3 server on loopback (moto's server mode, 127.0.0.1, port 0), small
bags to mirror, and helpers to compare and damage them. Imported by the
mirror and repair tests."""

from __future__ import annotations

import logging
import os
import uuid
from pathlib import Path

import pytest

from archiver.bagit.write import write_bag


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
