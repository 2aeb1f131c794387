#!/usr/bin/env python
"""Benchmark: ``archiver verify`` against ``bagit.py --validate`` (issue 3).

Builds once, under benchmarks/data/verify/ (git-ignored, reused when present):
  small-50k   50,000 payload files of 500 B - 8 KB, sha256 + sha512 manifests
  large-20    20 files of 20 MB, sha256 + sha512
  fast-500k   500,000 tiny payload files (for --fast peak RSS only)

Then, with a warm page cache (one untimed run of each tool first), times the
two CLIs alternately, ``--rounds`` times each (median reported), measures the
2-core hashlib limit over the large files' bytes in the same run (two threads,
sha256 + sha512 per file, data already in memory), and peak RSS of
``archiver verify --fast`` at 50k and 500k files (wait4 rusage of the child).

    python benchmarks/verify_vs_bagit.py [--rounds 3] [--skip-500k]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data" / "verify"
ALGORITHMS = ("sha256", "sha512")


def build_bag(folder: Path, files, algorithms=ALGORITHMS) -> None:
    """A BagIt 1.0 bag from (relative path, bytes) pairs; tag manifests included."""
    if (folder / ".complete").exists():
        return
    if folder.exists():
        shutil.rmtree(folder)
    tmp = folder.with_name(folder.name + ".building")
    if tmp.exists():
        shutil.rmtree(tmp)
    (tmp / "data").mkdir(parents=True)
    lines = {alg: [] for alg in algorithms}
    octets = count = 0
    made_dirs: set[str] = set()
    for rel, content in files:
        parent = os.path.dirname(rel)
        if parent not in made_dirs:
            (tmp / "data" / parent).mkdir(parents=True, exist_ok=True)
            made_dirs.add(parent)
        with open(tmp / "data" / rel, "wb") as f:
            f.write(content)
        for alg in algorithms:
            lines[alg].append(f"{hashlib.new(alg, content).hexdigest()}  data/{rel}\n")
        octets += len(content)
        count += 1
    (tmp / "bagit.txt").write_text("BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n")
    (tmp / "bag-info.txt").write_text(f"Source-Organization: benchmark\nPayload-Oxum: {octets}.{count}\n")
    for alg in algorithms:
        (tmp / f"manifest-{alg}.txt").write_text("".join(lines[alg]))
    tags = ["bagit.txt", "bag-info.txt"] + [f"manifest-{alg}.txt" for alg in algorithms]
    for alg in algorithms:
        (tmp / f"tagmanifest-{alg}.txt").write_text(
            "".join(f"{hashlib.new(alg, (tmp / t).read_bytes()).hexdigest()}  {t}\n" for t in tags))
    tmp.rename(folder)
    (folder / ".complete").touch()  # outside the bag's tag manifests; archiver warns, bagit ignores


def small_files(n: int, low: int, high: int, seed: int = 8493):
    rng = random.Random(seed)
    for i in range(n):
        yield f"d{i // 500:03d}/f{i:06d}.bin", rng.randbytes(rng.randint(low, high))


def large_files(n: int = 20, size: int = 20 << 20, seed: int = 1):
    rng = random.Random(seed)
    block = rng.randbytes(1 << 20)
    for i in range(n):
        # Distinct content per file, cheaply: a 1 MB random block, rotated.
        shift = (i * 7919) % len(block)
        rotated = block[shift:] + block[:shift]
        yield f"big-{i:02d}.bin", rotated * (size // len(rotated))


TIME = shutil.which("time") or ("/usr/bin/time" if os.path.exists("/usr/bin/time") else None)


def run(cmd: list[str]) -> tuple[float, int, int]:
    elapsed, code, rss, _cpu = run_measured(cmd)
    return elapsed, code, rss


def run_measured(cmd: list[str]) -> tuple[float, int, int, float]:
    """(wall seconds, exit code, peak RSS in KiB, CPU seconds incl. its worker processes) of one child.

    RSS comes from /usr/bin/time when present: a child forked from this
    (large) process would inherit this process's high-water mark in ru_maxrss."""
    rss_file = DATA / ".rss"
    wrapped = [TIME, "-f", "%M", "-o", str(rss_file), *cmd] if TIME else cmd
    started = time.perf_counter()
    proc = subprocess.Popen(wrapped, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _pid, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    rss = usage.ru_maxrss
    if TIME:
        rss = int(rss_file.read_text().split()[-1])
    return elapsed, code, rss, usage.ru_utime + usage.ru_stime


def archiver_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "archiver.cli", "verify", *args]


def bagit_cmd(bag: Path) -> list[str]:
    return [sys.executable, "-m", "bagit", "--validate", "--quiet", str(bag)]


def compare(bag: Path, rounds: int, label: str) -> dict[str, float]:
    for cmd in (archiver_cmd(str(bag)), bagit_cmd(bag)):  # warm the page cache, check both pass
        _t, code, _rss = run(cmd)
        if code != 0:
            raise SystemExit(f"{cmd} exited {code} on {bag}")
    ours, theirs, ours_cpu, theirs_cpu = [], [], [], []
    for _ in range(rounds):
        wall, _code, _rss, cpu = run_measured(archiver_cmd(str(bag)))
        ours.append(wall)
        ours_cpu.append(cpu)
        wall, _code, _rss, cpu = run_measured(bagit_cmd(bag))
        theirs.append(wall)
        theirs_cpu.append(cpu)
    result = {"archiver": statistics.median(ours), "bagit": statistics.median(theirs)}
    print(f"{label}: archiver verify median {result['archiver']:.2f} s {fmt(ours)}; "
          f"bagit.py --validate median {result['bagit']:.2f} s {fmt(theirs)}; "
          f"speed-up {result['bagit'] / result['archiver']:.1f}x (load average {os.getloadavg()[0]:.1f})",
          flush=True)
    print(f"  CPU seconds (user+sys, workers included): archiver {statistics.median(ours_cpu):.2f}, "
          f"bagit.py {statistics.median(theirs_cpu):.2f}", flush=True)
    return result


def library_time(bag: Path, rounds: int) -> float:
    """verify_bag in this process: the verifier without interpreter and CLI start-up."""
    from archiver.bagit.verify import verify_bag

    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        report = verify_bag(bag)
        times.append(time.perf_counter() - started)
        assert report.valid, report.problems[:3]
    return statistics.median(times)


def hash_seconds(blobs: list[bytes], threads: int = 2) -> float:
    """Seconds for sha256 + sha512 over ``blobs`` (in memory) with ``threads`` threads:
    the hash limit of this machine for these bytes, with no I/O at all."""
    def work(share: list[bytes]) -> None:
        for blob in share:
            view = memoryview(blob)
            h1, h2 = hashlib.sha256(), hashlib.sha512()
            for start in range(0, len(view), 1 << 20):  # the same 1 MiB chunks archiver uses
                h1.update(view[start:start + (1 << 20)])
                h2.update(view[start:start + (1 << 20)])
    workers = [threading.Thread(target=work, args=(blobs[i::threads],)) for i in range(threads)]
    started = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return time.perf_counter() - started


def large_file_efficiency(bag: Path, rounds: int) -> tuple[float, float, float]:
    """(limit bytes/s, archiver bytes/s, median ratio), the limit and verify_bag
    measured alternately so both see the same machine load."""
    from archiver.bagit.verify import verify_bag

    blobs = [p.read_bytes() for p in sorted((bag / "data").iterdir())]
    total = sum(len(b) for b in blobs)
    limits, ours, ratios = [], [], []
    for _ in range(rounds):
        limit = hash_seconds(blobs)
        started = time.perf_counter()
        assert verify_bag(bag).valid
        mine = time.perf_counter() - started
        limits.append(total / limit)
        ours.append(total / mine)
        ratios.append(limit / mine)
    del blobs
    return statistics.median(limits), statistics.median(ours), statistics.median(ratios)


def fmt(values: list[float]) -> str:
    return "[" + ", ".join(f"{v:.2f}" for v in values) + "]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip-500k", action="store_true")
    args = parser.parse_args()
    DATA.mkdir(parents=True, exist_ok=True)
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}", flush=True)

    started = time.perf_counter()
    small, large, huge = DATA / "small-50k", DATA / "large-20", DATA / "fast-500k"
    build_bag(small, small_files(50_000, 500, 8 * 1024))
    build_bag(large, large_files())
    if not args.skip_500k:
        build_bag(huge, small_files(500_000, 1, 64, seed=500), algorithms=("sha256",))
    print(f"data ready in {time.perf_counter() - started:.0f} s under {DATA}", flush=True)

    for bag, label in ((small, "50,000"), (huge, "500,000")):
        if not bag.exists():
            continue
        rss, seconds = [], []
        for _ in range(args.rounds):
            elapsed, code, kib = run(archiver_cmd("--fast", str(bag)))
            rss.append(kib)
            seconds.append(elapsed)
        print(f"peak RSS archiver verify --fast, {label} files: {max(rss) / 1024:.1f} MiB "
              f"(median {statistics.median(seconds):.2f} s, exit {code})", flush=True)
    _t, _code, kib = run(archiver_cmd(str(small)))
    print(f"peak RSS archiver verify (full; parent process), 50,000 files: {kib / 1024:.1f} MiB", flush=True)

    small_result = compare(small, args.rounds, "50,000 files (500 B - 8 KB), sha256+sha512")
    print(f"  goal >= 8x: {'MET' if small_result['bagit'] / small_result['archiver'] >= 8 else 'NOT MET'}")
    lib_small = library_time(small, args.rounds)
    print(f"  verify_bag in-process (no interpreter/CLI start-up): {lib_small:.2f} s")

    large_result = compare(large, args.rounds, "20 x 20 MB, sha256+sha512")
    total = sum(p.stat().st_size for p in (large / "data").iterdir())
    limit, lib_rate, ratio = large_file_efficiency(large, args.rounds)
    print(f"  2-core hashlib limit (sha256+sha512, 2 threads, bytes in memory): {limit / 1e6:.0f} MB/s")
    print(f"  verify_bag in-process (whole verification incl. reading files): {lib_rate / 1e6:.0f} MB/s; "
          f"median ratio to the limit measured alternately: {ratio:.0%}; goal >= 85%: "
          f"{'MET' if ratio >= 0.85 else 'NOT MET'}")
    print(f"  archiver CLI: {total / large_result['archiver'] / 1e6:.0f} MB/s including interpreter start-up")
    print(f"load average at the end: {os.getloadavg()[0]:.1f} (other work on this machine skews wall "
          "times; the tools alternate so ratios are fairer than absolute times)")


if __name__ == "__main__":
    main()
