"""WACZ and OCFL export of generated collections.

    python benchmarks/exchange_wacz_ocfl.py               # N = 1000
    python benchmarks/exchange_wacz_ocfl.py --n 200 --validate

Makes a collection in a temporary folder with the real pipeline (`archiver
snapshot` of N generated ~70 KB pages from a loopback server, three rounds,
each page's text changed every round: 3 × N bags), then measures

- WACZ: `export_wacz` of the N captures of the first round (MB/s of WARC
  packaged, and of the .wacz written);
- OCFL: `export_ocfl` of all 3 × N captures (N objects × 3 versions): time,
  and bytes stored in the OCFL root against the bags' total; then a no-op
  re-export.

Export times are in-process library calls (no CLI start-up). ``--validate``
also runs `wacz validate` and ocfl-py's validator on the results (not timed).
Nothing is kept: the temporary folder is removed at the end.
"""

from __future__ import annotations

import argparse
import http.server
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from snapshot_throughput import Handler, make_page  # noqa: E402

from archiver.exchange.ocfl import export_ocfl  # noqa: E402
from archiver.exchange.wacz import export_wacz  # noqa: E402


def snapshot_round(root: Path, urls: list[str], n: int, round_: int) -> None:
    Handler.pages = {f"/essay/{i}": make_page(i).replace(b"</div></div></div>",
                                                     f"<p>Revision {round_} of essay {i}.</p></div></div></div>".encode())
                     for i in range(n)}
    done = subprocess.run([sys.executable, "-m", "archiver.cli", "snapshot", *urls, "--root", str(root),
                           "--delay", "0", "--json"], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"snapshot failed ({done.returncode}): {done.stderr[-2000:]}")


def tree_bytes(folder: Path, skip: str | None = None) -> int:
    total = 0
    for dirpath, dirnames, filenames in os.walk(folder):
        if skip in dirnames:
            dirnames.remove(skip)
        total += sum(os.lstat(os.path.join(dirpath, name)).st_size for name in filenames)
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="pages (WACZ captures; OCFL objects)")
    parser.add_argument("--validate", action="store_true", help="also validate the results (not timed)")
    args = parser.parse_args()
    n = args.n
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}, "
          f"load average {os.getloadavg()[0]:.1f}")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    work = Path(tempfile.mkdtemp(prefix="archiver-exchange-bench-"))
    try:
        root = work / "bags"
        urls = [f"{base}/essay/{i}" for i in range(n)]
        started = time.perf_counter()
        first_round: list[str] = []
        for round_ in range(3):
            before = {p.name for p in root.iterdir()} if root.exists() else set()
            snapshot_round(root, urls, n, round_)
            if round_ == 0:
                first_round = sorted({p.name for p in root.iterdir()} - before - {".archiver"})
        bags = [p for p in root.iterdir() if not p.name.startswith(".")]
        bag_bytes = tree_bytes(root, skip=".archiver")
        print(f"collection: {len(bags)} bags, {bag_bytes / 1e6:.1f} MB, made in "
              f"{time.perf_counter() - started:.0f} s")

        out = work / "round1.wacz"
        started = time.perf_counter()
        report = export_wacz(root, first_round, None, out)
        elapsed = time.perf_counter() - started
        warc_mb = sum(p.warc_bytes for p in report.pages) / 1e6
        print(f"WACZ: {len(report.pages)} captures, {warc_mb:.1f} MB of WARC -> {report.bytes / 1e6:.1f} MB "
              f".wacz in {elapsed:.2f} s: {warc_mb / elapsed:.1f} MB/s of WARC "
              f"({report.bytes / 1e6 / elapsed:.1f} MB/s written), {len(report.pages) / elapsed:.0f} captures/s, "
              f"ok={report.ok}")

        ocfl_root = work / "ocfl"
        started = time.perf_counter()
        result = export_ocfl(root, None, None, ocfl_root)
        elapsed = time.perf_counter() - started
        stored = tree_bytes(ocfl_root)
        print(f"OCFL: {len(result.objects)} objects, {result.versions_added} versions in {elapsed:.2f} s "
              f"({result.versions_added / elapsed:.0f} versions/s); bags {result.bytes_in_bags / 1e6:.1f} MB -> "
              f"content stored {result.bytes_stored / 1e6:.1f} MB "
              f"({100 * result.bytes_stored / result.bytes_in_bags:.1f} %), whole root incl. inventories "
              f"{stored / 1e6:.1f} MB ({100 * stored / bag_bytes:.1f} % of the bags' {bag_bytes / 1e6:.1f} MB); "
              f"{result.files_deduplicated} files already held, sha512 from manifests "
              f"{result.digests_from_manifests}, hashed {result.digests_computed}; ok={result.ok}")
        started = time.perf_counter()
        again = export_ocfl(root, None, None, ocfl_root)
        print(f"OCFL re-export with nothing new: {time.perf_counter() - started:.2f} s, "
              f"{again.versions_added} versions added")
        print(f"peak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
        if args.validate:
            bin_dir = Path(sys.executable).parent
            wacz = subprocess.run([str(bin_dir / "wacz"), "validate", "-f", str(out)], capture_output=True, text=True)
            print(f"wacz validate: exit {wacz.returncode}")
            import ocfl
            store = ocfl.StorageRoot(root=str(ocfl_root))
            valid = store.validate(log_warnings=True)
            print(f"ocfl-py: valid={valid}, {store.good_objects}/{store.num_objects} objects good, "
                  f"{len(store.errors)} objects with messages")
    finally:
        server.shutdown()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
