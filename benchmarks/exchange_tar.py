"""Benchmark serialised bags: tar export of many small bags, and verifying a 1 GB
.tar.gz bag in place versus extracting it with GNU tar and verifying the folder.

    python benchmarks/exchange_tar.py                      # 10,000 bags; a 1 GB .tar.gz
    python benchmarks/exchange_tar.py --bags 1000 --size-mb 200   # a quicker run

Part 1 writes N small bags (~20 KB: a text, metadata, a compressed stand-in WARC;
sha256 + sha512 manifests) straight to disk without fsync (generating them is not
what is measured), then times ``export_bags(..., "tar")`` on all of them: each
archive is written to a temporary name, fsynced, verified in place (every file
re-hashed) and linked into place. Figures: bags/s and MB/s of archive written.

Part 2 builds one bag of ``--size-mb`` of incompressible payload (64 files), exports
it as .tar.gz, then runs, each as a child process: (a) ``archiver verify X.tar.gz`` (in place, streaming); (b) ``tar -xzf``
followed by ``archiver verify`` of the extracted folder. Wall time and peak RSS
(GNU time's %M) of each step are printed.

Data goes to a temporary folder under benchmarks/data/ (git-ignored), deleted at
the end unless --keep.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from archiver.bagit.write import hash_file, render_manifest, render_tag_file  # noqa: E402
from archiver.exchange.exporting import export_bags  # noqa: E402
from archiver.exchange.serialise import export_bag  # noqa: E402

ALGORITHMS = ("sha256", "sha512")


def quick_bag(folder: Path, payload: dict[str, bytes]) -> Path:
    """A BagIt 1.0 bag written without fsync (benchmark input only)."""
    (folder / "data").mkdir(parents=True)
    for rel, content in payload.items():
        (folder / "data" / rel).write_bytes(content)
    return finish_bag(folder)


def finish_bag(folder: Path) -> Path:
    """Manifests, bag-info and tag manifests for the files already in ``folder/data``."""
    manifests: dict[str, list[tuple[str, str]]] = {a: [] for a in ALGORITHMS}
    total = count = 0
    for path in sorted((folder / "data").iterdir()):
        digests, size = hash_file(path, ALGORITHMS)
        total, count = total + size, count + 1
        for algorithm in ALGORITHMS:
            manifests[algorithm].append((f"data/{path.name}", digests[algorithm]))
    tags = {"bagit.txt": b"BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n",
            "bag-info.txt": render_tag_file([("Source-Organization", "Benchmark"),
                                             ("Payload-Oxum", f"{total}.{count}")])}
    for algorithm in ALGORITHMS:
        tags[f"manifest-{algorithm}.txt"] = render_manifest(manifests[algorithm])
    for rel, content in tags.items():
        (folder / rel).write_bytes(content)
    for algorithm in ALGORITHMS:
        entries = [(rel, hashlib.new(algorithm, c).hexdigest()) for rel, c in tags.items()]
        (folder / f"tagmanifest-{algorithm}.txt").write_bytes(render_manifest(entries))
    return folder


def small_payload(i: int) -> dict[str, bytes]:
    text = (f"Text number {i}. " * 900).encode()
    return {"text.txt": text, "metadata.json": b'{"title": "Text %d"}' % i,
            "capture.warc.gz": zlib.compress(os.urandom(2000) + text)}


def part1(work: Path, count: int) -> None:
    bags_dir, out = work / "bags", work / "out"
    bags_dir.mkdir()
    start = time.perf_counter()
    bags = [quick_bag(bags_dir / f"essay-{i:06d}", small_payload(i)) for i in range(count)]
    made = time.perf_counter() - start
    start = time.perf_counter()
    report = export_bags(bags, out, "tar")
    elapsed = time.perf_counter() - start
    assert report.ok and len(report.results) == count
    written = sum(p.stat().st_size for p in out.iterdir())
    source = sum(p.stat().st_size for b in bags for p in b.rglob("*") if p.is_file())
    print(f"part 1: {count} bags generated in {made:.1f} s (not counted)")
    print(f"part 1: tar export of {count} bags ({source / 1e6:.1f} MB of files, {written / 1e6:.1f} MB of tar) "
          f"in {elapsed:.1f} s: {count / elapsed:.0f} bags/s, {written / 1e6 / elapsed:.1f} MB/s written "
          f"({source / 1e6 / elapsed:.1f} MB/s of bag files); each archive fsynced and verified in place")


def run_child(argv: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB) of one child process. Peak RSS comes from GNU
    time (``/usr/bin/time -f %M``): a child forked straight from this Python would
    report this process's own high-water mark too (Linux carries it across exec)."""
    gnu_time = Path("/usr/bin/time")
    if not gnu_time.exists():
        raise SystemExit("GNU time is needed for peak RSS (apt-get install time)")
    start = time.perf_counter()
    proc = subprocess.run([str(gnu_time), "-f", "%M"] + argv, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{argv} exited {proc.returncode}: {proc.stderr[-500:]}")
    return elapsed, int(proc.stderr.strip().splitlines()[-1]) / 1024


def part2(work: Path, size_mb: int) -> None:
    files = 64
    each = size_mb * 1024 * 1024 // files
    bag = work / "big" / "big-bag"
    (bag / "data").mkdir(parents=True)
    for i in range(files):
        with open(bag / "data" / f"part-{i:03d}.bin", "wb") as part:
            for _ in range(0, each, 1 << 22):
                part.write(os.urandom(min(1 << 22, each)))
    finish_bag(bag)
    out = work / "big-out"
    out.mkdir()
    start = time.perf_counter()
    archive = export_bag(bag, out, "tar.gz").archive
    print(f"part 2: {size_mb} MB bag exported as .tar.gz ({archive.stat().st_size / 1e6:.0f} MB) in "
          f"{time.perf_counter() - start:.1f} s (written, fsynced, verified)")
    archiver = [sys.executable, "-m", "archiver.cli"]
    t_in_place, rss_in_place = run_child(archiver + ["verify", str(archive)])
    extract = work / "extracted"
    extract.mkdir()
    t_tar, rss_tar = run_child(["tar", "-xzf", str(archive), "-C", str(extract)])
    t_verify, rss_verify = run_child(archiver + ["verify", str(extract / "big-bag")])
    print(f"part 2: verify .tar.gz in place: {t_in_place:.1f} s, peak RSS {rss_in_place:.0f} MB, "
          f"0 bytes written")
    print(f"part 2: tar -xzf + verify folder: {t_tar + t_verify:.1f} s ({t_tar:.1f} s tar, {t_verify:.1f} s verify), "
          f"peak RSS {rss_tar:.0f} MB (tar) / {rss_verify:.0f} MB (verify), {size_mb} MB written to disk")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bags", type=int, default=10_000)
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--skip", choices=["1", "2"], help="skip a part")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    data = Path(__file__).resolve().parent / "data"
    data.mkdir(exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="exchange-tar-", dir=data))
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} "
          "(shared with other jobs: figures taken under load)")
    try:
        if args.skip != "1":
            part1(work, args.bags)
        if args.skip != "2":
            part2(work, args.size_mb)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
