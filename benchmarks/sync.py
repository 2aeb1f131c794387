"""Sync benchmark: a loopback amusewiki site of N synthetic texts (default 1,000).

    python benchmarks/sync.py            # N = 1000
    python benchmarks/sync.py --n 200

Runs `archiver sync MANIFEST --delay 0 --root <tmp>` in a fresh subprocess
(start-up included) against an amusewiki-like site served from this process
(tests/sites.py: /mirror.ts.txt, /library/<slug>, /mirror/…/<slug>.muse):

1. first sync, the default (each text's .muse captured too): pages/s = N /
   wall seconds, peak RSS (the sync process or its largest build worker);
2. the same first sync with `attachments = []` (one request per text);
3. a no-change re-sync: wall time and requests (goal: at most 2 listing
   requests, 0 page fetches, under 5 s);
4. 10% of the texts edited (their mirror.ts.txt time moves): requests and time.

Requests are counted by the server's own log.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from sites import AmusewikiSite  # noqa: E402


def run(args: list[str]) -> tuple[float, int]:
    """(wall seconds, peak RSS in bytes) of one archiver run. wait4's ru_maxrss is the largest
    of the process and the descendants it waited for (its build workers)."""
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "archiver.cli", *args], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    stderr = proc.stderr.read() if proc.stderr else ""
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"archiver {' '.join(args[:2])} exited {proc.returncode}: {stderr[-2000:]}")
    return wall, usage.ru_maxrss * 1024


def counts(site: AmusewikiSite) -> tuple[int, int, int]:
    """(all requests, listing requests, page fetches) in the site's log since it was cleared."""
    paths = site.paths_requested()
    listings = sum(p in ("/robots.txt", "/mirror.ts.txt") for p in paths)
    pages = sum(p.startswith("/library/") and "." not in p.rsplit("/", 1)[-1] for p in paths)
    return len(paths), listings, pages


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1000)
    n = parser.parse_args().n
    site = AmusewikiSite.synthetic(n)
    work = Path(tempfile.mkdtemp(prefix="archiver-sync-bench-"))
    try:
        manifest = work / "library.toml"
        manifest.write_text(f'[collection]\nid = "bench"\n\n[[sites]]\nurl = "{site.base}"\n')
        bare = work / "bare.toml"
        bare.write_text(f'[collection]\nid = "bench"\n\n[[sites]]\nurl = "{site.base}"\nattachments = []\n')
        root = work / "bags"
        common = ["--delay", "0", "--retries", "0"]
        print(f"loopback amusewiki site, {n} texts; load average {os.getloadavg()[0]:.1f} at start")

        site.clear_log()
        wall, rss = run(["sync", str(manifest), "--root", str(root), *common])
        total, _, pages = counts(site)
        print(f"first sync (with .muse)  : {wall:6.1f} s  {n / wall:5.1f} pages/s  peak RSS {rss / 2**20:.0f} MB  "
              f"{total} requests ({pages} pages)")

        site.clear_log()
        wall2, rss2 = run(["sync", str(bare), "--root", str(work / "bare-bags"), *common])
        total2, _, pages2 = counts(site)
        print(f"first sync (no .muse)    : {wall2:6.1f} s  {n / wall2:5.1f} pages/s  peak RSS {rss2 / 2**20:.0f} MB  "
              f"{total2} requests ({pages2} pages)")

        site.clear_log()
        wall, rss = run(["sync", str(manifest), "--root", str(root), *common])
        total, listings, pages = counts(site)
        print(f"no-change re-sync        : {wall:6.2f} s  {total} requests ({listings} listing, {pages} pages)  "
              f"peak RSS {rss / 2**20:.0f} MB  [goal: <= 2 listing, 0 pages, < 5 s]")

        for slug in sorted(site.texts)[:: 10]:
            site.edit(slug, "An edit made between two syncs.")
        site.clear_log()
        wall, rss = run(["sync", str(manifest), "--root", str(root), *common])
        total, listings, pages = counts(site)
        print(f"10% changed ({n // 10} texts)  : {wall:6.2f} s  {total} requests ({listings} listing, {pages} pages)")
    finally:
        site.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
