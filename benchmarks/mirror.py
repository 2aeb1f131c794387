"""Mirror benchmark: a collection of small bags to a directory and to S3 (moto).

    python benchmarks/mirror.py                      # 10,000 bags to a directory, 1,000 to S3
    python benchmarks/mirror.py --bags 2000 --s3-bags 200

Reports, for a directory target: the first mirror with verification (s, MB/s),
the no-op re-mirror (goal <= 2 s), and `rclone copy --checksum` + `rclone
check` on the same data (goal: archiver within 1.5x). The same for a moto S3
server run in its own process on 127.0.0.1 (fewer bags: moto answers a few
hundred requests a second). Each archiver run is the real CLI in a fresh
subprocess, so start-up is included. Data is generated under
benchmarks/data/mirror/ (git-ignored) and reused between runs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "benchmarks" / "data" / "mirror"
sys.path.insert(0, str(REPO))

DUMMY_AWS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
             "AWS_DEFAULT_REGION": "us-east-1"}


def make_collection(count: int) -> Path:
    """``count`` small bags (text ~2 KB, metadata, a 4 KB 'WARC'), generated once."""
    from archiver.bagit.write import write_bag

    root = DATA / f"src-{count}"
    marker = root / ".archiver" / "generated"
    if marker.exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    (root / ".archiver").mkdir(parents=True)
    started = time.monotonic()
    for i in range(count):
        rng = os.urandom(4096)
        text = f"Title: Essay {i}\n\n".encode() + (b"words of the essay " * 110)
        write_bag(root, f"essay-{i:05d}-20261125T093000Z",
                  {"text.txt": text, "metadata.json": f'{{"title": "Essay {i}"}}\n'.encode(),
                   "capture.warc.gz": rng},
                  [("Source-Organization", "Benchmark Library"),
                   ("External-Identifier", f"https://example.org/{i}")])
    marker.write_text(str(count))
    print(f"generated {count} bags in {time.monotonic() - started:.1f} s", file=sys.stderr)
    return root


def tree_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and ".archiver" not in p.parts)


def timed(args: list[str], env: dict | None = None) -> tuple[float, str]:
    started = time.monotonic()
    result = subprocess.run(args, capture_output=True, text=True, env={**os.environ, **(env or {})})
    elapsed = time.monotonic() - started
    if result.returncode != 0:
        raise SystemExit(f"failed ({result.returncode}): {' '.join(args)}\n{result.stderr[-2000:]}")
    return elapsed, result.stdout


def archiver_mirror(source: Path, target: str, *extra: str) -> tuple[float, dict]:
    elapsed, out = timed([sys.executable, "-m", "archiver.cli", "mirror", str(source), target,
                          "--json", *extra], env=DUMMY_AWS)
    return elapsed, json.loads(out)


def rclone_copy_check(source: str, target: str, env: dict | None = None) -> float | None:
    if shutil.which("rclone") is None:
        return None
    t1, _ = timed(["rclone", "copy", "--checksum", "--exclude", ".archiver/**", source, target], env)
    t2, _ = timed(["rclone", "check", "--exclude", ".archiver/**", source, target], env)
    return t1 + t2


def bench_directory(count: int) -> dict:
    source = make_collection(count)
    nbytes = tree_bytes(source)
    out = DATA / "out-dir"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    first, report = archiver_mirror(source, str(out / "archiver"))
    assert report["mirrored"] == count, report
    noop, again = archiver_mirror(source, str(out / "archiver"))
    assert again["copied"] == 0 and again["present"] == count, again
    rclone = rclone_copy_check(str(source), str(out / "rclone"))
    shutil.rmtree(out, ignore_errors=True)
    return {"target": "directory", "bags": count, "mb": nbytes / 1e6, "first_mirror_verify_s": first,
            "mb_per_s": nbytes / 1e6 / first, "noop_s": noop, "rclone_copy_check_s": rclone}


def start_moto() -> tuple[subprocess.Popen, str]:
    code = ("import logging, sys, time\n"
            "logging.getLogger('werkzeug').setLevel(logging.ERROR)\n"
            "from moto.server import ThreadedMotoServer\n"
            "s = ThreadedMotoServer(ip_address='127.0.0.1', port=0, verbose=False); s.start()\n"
            "print(s.get_host_and_port()[1], flush=True)\n"
            "time.sleep(3600)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    port = proc.stdout.readline().strip()
    return proc, f"http://127.0.0.1:{port}"


def bench_s3(count: int) -> dict:
    import boto3

    source = make_collection(count)
    nbytes = tree_bytes(source)
    proc, endpoint = start_moto()
    try:
        os.environ.update(DUMMY_AWS)
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="bench-archiver")
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="bench-rclone")
        target = "s3://bench-archiver/texts"
        first, report = archiver_mirror(source, target, "--endpoint-url", endpoint, "--workers", "8")
        assert report["mirrored"] == count, report
        noop, again = archiver_mirror(source, target, "--endpoint-url", endpoint, "--workers", "8")
        assert again["copied"] == 0 and again["present"] == count, again
        rclone_env = {"RCLONE_CONFIG_MOTO_TYPE": "s3", "RCLONE_CONFIG_MOTO_PROVIDER": "Other",
                      "RCLONE_CONFIG_MOTO_ENDPOINT": endpoint,
                      "RCLONE_CONFIG_MOTO_ACCESS_KEY_ID": "bench",
                      "RCLONE_CONFIG_MOTO_SECRET_ACCESS_KEY": "bench",
                      "RCLONE_CONFIG_MOTO_FORCE_PATH_STYLE": "true"}
        rclone = rclone_copy_check(str(source), "moto:bench-rclone/texts", rclone_env)
    finally:
        proc.kill()
        proc.wait()
    return {"target": "moto S3", "bags": count, "mb": nbytes / 1e6, "first_mirror_verify_s": first,
            "mb_per_s": nbytes / 1e6 / first, "noop_s": noop, "rclone_copy_check_s": rclone}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bags", type=int, default=10_000)
    parser.add_argument("--s3-bags", type=int, default=1_000)
    args = parser.parse_args()
    rows = [bench_directory(args.bags)]
    if args.s3_bags:
        rows.append(bench_s3(args.s3_bags))
    print(f"{'target':<10} {'bags':>6} {'MB':>7} {'first+verify s':>15} {'MB/s':>6} "
          f"{'no-op s':>8} {'rclone copy+check s':>20} {'ratio':>6}")
    for r in rows:
        rclone = r["rclone_copy_check_s"]
        ratio = f"{r['first_mirror_verify_s'] / rclone:.2f}x" if rclone else "n/a"
        rclone_text = f"{rclone:.1f}" if rclone else "not measured"
        print(f"{r['target']:<10} {r['bags']:>6} {r['mb']:>7.1f} {r['first_mirror_verify_s']:>15.1f} "
              f"{r['mb_per_s']:>6.2f} {r['noop_s']:>8.2f} {rclone_text:>20} {ratio:>6}")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
