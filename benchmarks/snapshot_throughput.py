"""Snapshot throughput: N generated ~70 KB pages from a loopback server.

    python benchmarks/snapshot_throughput.py            # N = 100 and 1000
    python benchmarks/snapshot_throughput.py --n 100

Each run is `archiver snapshot URL... --delay 0 --root <tmp>` in a fresh
subprocess (so start-up is included and peak RSS is that process's own);
pages/s = N / wall-clock seconds. Peak RSS is the snapshot process's own;
batches of 16 or more also fork one build worker per core, whose largest
peak is printed beside it. Pages are amusewiki-style, like the golden page,
with generated prose.
"""

from __future__ import annotations

import argparse
import http.server
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

WORDS = ("the library keeps every page it can find and readers return to the shelves "
         "archive paper memory street neighbours print shop pamphlet winter history "
         "solidarity tenants union council meeting rota van kitchen bread letter").split()


def make_page(i: int, size: int = 70_000) -> bytes:
    rng = random.Random(i)
    paragraphs = []
    total = 0
    while total < size - 3000:
        para = " ".join(rng.choice(WORDS) for _ in range(rng.randint(60, 160))).capitalize() + "."
        paragraphs.append(f"<p>{para}</p>")
        total += len(para) + 7
    body = "\n".join(paragraphs)
    return f"""<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">
<title>Generated essay {i} | The Example Library</title></head><body>
<nav class="navbar"><a href="/">The Example Library</a></nav>
<div id="page"><div id="preamble-container" class="well"><div id="preamble">
<div id="texttitle"><span id="texttitle-label"><strong>Title:</strong></span> Generated essay {i}</div>
<div id="authors"><span id="authors-label"><strong>Author:</strong></span> Bench Writer</div>
<div id="textdate"><span id="textdate-label"><strong>Date:</strong></span> 2025</div>
</div></div>
<div id="htmltextbody"><div id="thework" dir="ltr">{body}</div></div></div>
<footer>The Example Library</footer></body></html>""".encode()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    pages: dict[str, bytes] = {}

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        body = self.pages.get(self.path)
        status = 200 if body is not None else 404
        body = body if body is not None else b"not found"
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def run(n: int) -> tuple[float, float, float, int]:
    Handler.pages = {f"/essay/{i}": make_page(i) for i in range(n)}
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    root = Path(tempfile.mkdtemp(prefix="archiver-bench-"))
    urls_file = root.parent / f"{root.name}-urls.txt"
    try:
        urls = [f"{base}/essay/{i}" for i in range(n)]
        script = (
            "import resource, sys; from archiver.cli import app\n"
            "try:\n    app(sys.argv[1:])\n"
            "except SystemExit as e:\n"
            "    print('RSS_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,\n"
            "          resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)\n"
            "    raise\n")
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", script, "snapshot", *urls, "--root", str(root / "bags"),
                               "--delay", "0", "--json"], capture_output=True, text=True)
        elapsed = time.perf_counter() - started
        if proc.returncode != 0:
            raise SystemExit(f"snapshot failed ({proc.returncode}): {proc.stderr[-2000:]}")
        fields = [l for l in proc.stderr.splitlines() if l.startswith("RSS_KB")][-1].split()
        parent_kb, worker_kb = int(fields[1]), int(fields[2])
        bags = len([p for p in (root / "bags").iterdir() if not p.name.startswith(".")])
        return elapsed, parent_kb / 1024, worker_kb / 1024, bags
    finally:
        server.shutdown()
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, action="append", help="number of pages (repeatable)")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    print(f"page size: {len(make_page(0)):,} bytes")
    for n in args.n or [100, 1000]:
        elapsed, parent_mb, worker_mb, bags = run(n)
        assert bags == n, f"expected {n} bags, found {bags}"
        print(f"N={n:5d}: {elapsed:7.2f} s  {n / elapsed:6.1f} pages/s  peak RSS {parent_mb:6.1f} MB "
              f"(largest worker process {worker_mb:5.1f} MB)  ({bags} bags)")


if __name__ == "__main__":
    main()
