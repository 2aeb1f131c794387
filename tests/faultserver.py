"""Fault-injecting handlers for the loopback HTTP server of tests/conftest.py.

Each factory returns a handler ``fn(request_handler)`` to put in
``LoopbackServer.routes``: it misbehaves in one precise way, as real servers
do, and records what it managed to do in a ``FaultLog`` so tests can assert
on the server side too (how many tries arrived, how much of a body was sent
before the client hung up).
"""

from __future__ import annotations

import gzip
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

Handler = Callable[[object], None]


@dataclass
class FaultLog:
    """What the faulty handlers saw. ``release`` ends every stalled handler."""

    release: threading.Event = field(default_factory=threading.Event)
    hits: dict[str, list[float]] = field(default_factory=dict)   # path -> monotonic times
    sent: dict[str, int] = field(default_factory=dict)           # path -> body bytes written
    lock: threading.Lock = field(default_factory=threading.Lock)

    def hit(self, path: str) -> None:
        with self.lock:
            self.hits.setdefault(path.split("?")[0], []).append(time.monotonic())

    def count(self, path: str) -> int:
        return len(self.hits.get(path, []))


def _head(handler, status: int, headers: dict[str, str]) -> None:
    handler.send_response(status)
    for key, value in headers.items():
        handler.send_header(key, value)
    handler.end_headers()


def always(log: FaultLog, status: int, body: bytes = b"", **headers: str) -> Handler:
    """The same status on every try (a 500 that never recovers, a 429 that never clears)."""

    def handle(handler) -> None:
        log.hit(handler.path)
        all_headers = {"Content-Type": "text/plain", "Content-Length": str(len(body)),
                       **{k.replace("_", "-"): v for k, v in headers.items()}}
        _head(handler, status, all_headers)
        handler.wfile.write(body)

    return handle


def never_answers(log: FaultLog, limit: float = 30.0) -> Handler:
    """Accept the request, then say nothing until the test ends (a read timeout)."""

    def handle(handler) -> None:
        log.hit(handler.path)
        log.release.wait(limit)
        handler.close_connection = True

    return handle


def short_body(log: FaultLog, body: bytes, declared: int) -> Handler:
    """Declare ``declared`` bytes, send ``body`` (fewer), then close the connection."""

    def handle(handler) -> None:
        log.hit(handler.path)
        _head(handler, 200, {"Content-Type": "text/html; charset=utf-8", "Content-Length": str(declared)})
        handler.wfile.write(body)
        handler.wfile.flush()
        handler.close_connection = True
        try:
            handler.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    return handle


def endless_body(log: FaultLog, limit: int, chunk: int = 64 * 1024) -> Handler:
    """An HTML body with no Content-Length, streamed until ``limit`` bytes or until the
    client hangs up; ``log.sent[path]`` says how far it got."""

    def handle(handler) -> None:
        path = handler.path
        log.hit(path)
        _head(handler, 200, {"Content-Type": "text/html; charset=utf-8", "Connection": "close"})
        handler.close_connection = True
        piece = b"<p>" + b"x" * (chunk - 7) + b"</p>\n"
        sent = 0
        try:
            handler.wfile.write(b"<html><body>")
            while sent < limit:
                handler.wfile.write(piece)
                sent += len(piece)
        except OSError:
            pass  # the client hung up: that is what the test wants to see
        with log.lock:
            log.sent[path] = sent

    return handle


def gzip_bomb(log: FaultLog, inflated: int) -> Handler:
    """A small gzip body that inflates to ``inflated`` bytes of HTML."""
    body = gzip.compress(b"<html><body><p>" + b"a" * inflated + b"</p></body></html>", 9)

    def handle(handler) -> None:
        log.hit(handler.path)
        _head(handler, 200, {"Content-Type": "text/html; charset=utf-8", "Content-Encoding": "gzip",
                             "Content-Length": str(len(body))})
        handler.wfile.write(body)

    handle.compressed_size = len(body)  # type: ignore[attr-defined]
    return handle


def stalls_mid_body(log: FaultLog, limit: float = 30.0) -> Handler:
    """Headers and the start of the body, then silence until the test ends."""

    def handle(handler) -> None:
        log.hit(handler.path)
        _head(handler, 200, {"Content-Type": "text/html", "Content-Length": "100000"})
        handler.wfile.write(b"<html><body><p>The start of a page that never")
        handler.wfile.flush()
        log.release.wait(limit)
        handler.close_connection = True

    return handle


def raw_answer(log: FaultLog, data: bytes, reset: bool = False) -> Handler:
    """Write ``data`` as the whole answer (not HTTP, a broken chunk, ...), or reset the connection."""

    def handle(handler) -> None:
        log.hit(handler.path)
        handler.close_connection = True
        if reset:
            handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            handler.connection.close()
            return
        handler.wfile.write(data)
        handler.wfile.flush()

    return handle


_RESERVED: list[socket.socket] = []


def refused_port() -> int:
    """A loopback port nothing listens on. The socket stays bound (never listening)
    for the whole session, so no server started later can take the port: a
    connection to it is refused every time."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    _RESERVED.append(sock)
    return sock.getsockname()[1]
