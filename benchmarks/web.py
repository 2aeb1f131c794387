"""Benchmark the web room: page latency on a 100,000-bag catalogue, and the
static-site build for 10,000 bags.

    python benchmarks/web.py                          # 100,000 bags, 10,000 for the site
    python benchmarks/web.py --bags 20000 --site-bags 2000   # a quicker run

Part 1 builds a synthetic catalogue of N bags through the public
``build_catalog`` (as benchmarks/catalog.py does; texts of ~300 words from a
Zipf vocabulary, 2 captures per URL on 20 sites), writes an event log with a
capture event for every bag and a fixity check for every other one, and
writes 300 real bags (``write_bag``) for the bag pages (a bag page reads the
bag's files). Pages are requested in-process through starlette's TestClient,
so times include routing, catalogue queries, event-log state and template
rendering, not a TCP round trip. Each page is requested R times; p50/p95 are
reported, the first (cold) request of each apart.

Part 2 writes M real bags, rebuilds their catalogue, and times
``archiver site`` (``build_site``) on them: a first build, then a re-run with
nothing changed.

Data goes to benchmarks/data/ (git-ignored), deleted at the end unless --keep.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from catalog import Vocabulary  # noqa: E402  (benchmarks/catalog.py)
from starlette.testclient import TestClient  # noqa: E402

from archiver.bagit.write import write_bag  # noqa: E402
from archiver.collection.catalog import BagRecord, build_catalog, catalog_path, rebuild_catalog  # noqa: E402
from archiver.web.app import create_app  # noqa: E402
from archiver.web.static_site import build_site  # noqa: E402

SITES = 20


def name_of(i: int) -> str:
    return f"text-{i:06d}-202611{1 + (i % 2) * 10:02d}T100000Z"


def record(i: int, vocab: Vocabulary) -> BagRecord:
    retrieved = f"2026-11-{1 + (i % 2) * 10:02d}T10:00:00Z"
    text = vocab.text(300)
    return BagRecord(name=name_of(i), url=f"https://site{i % SITES}.example.org/library/text-{i // 2}",
                     final_url=None, title=" ".join(text.split()[:5]).title(), author=f"Author {i % 997}",
                     retrieved=retrieved, text_sha256=f"{i:064x}", payload_bytes=len(text), payload_files=3,
                     text=text)


def real_bag(root: Path, i: int, vocab: Vocabulary) -> None:
    r = record(i, vocab)
    metadata = {k: v for k, v in r.to_dict().items() if k != "name"}
    text = f"Title: {r.title}\nAuthor: {r.author}\n\n{vocab.text(1500)}\n"
    write_bag(root, r.name, {"text.txt": text.encode(), "metadata.json": json.dumps(metadata).encode()},
              [("Source-URL", r.url or ""), ("Retrieval-Date", r.retrieved or "")])


def events(n: int) -> str:
    lines = []
    for i in range(n):
        base = {"agent": "archiver/0.1.0", "bag": name_of(i), "target": None}
        lines.append(json.dumps({**base, "id": f"c{i}", "type": "capture", "time": "2026-11-01T10:00:00Z",
                                 "outcome": "success", "detail": {"url": f"https://x/{i}"}}))
        if i % 2:
            lines.append(json.dumps({**base, "id": f"f{i}", "type": "fixity", "time": "2026-11-20T10:00:00Z",
                                     "outcome": "success" if i % 1000 != 1 else "failure", "detail": {}}))
    return "\n".join(lines) + "\n"


def percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return f"p50 {statistics.median(ordered) * 1000:7.1f} ms   p95 {p95 * 1000:7.1f} ms"


def part1(work: Path, n: int, repeats: int) -> None:
    root = work / "pages"
    (root / ".archiver").mkdir(parents=True)
    vocab = Vocabulary(20000, seed=1)
    started = time.perf_counter()
    build_catalog(catalog_path(root), (record(i, vocab) for i in range(n)), total=n)
    (root / ".archiver" / "events.jsonl").write_text(events(n))
    rnd = random.Random(2)
    sample = rnd.sample(range(n), 300)
    for i in sample:
        real_bag(root, i, vocab)
    print(f"catalogue of {n:,} bags + event log + 300 real bags built in {time.perf_counter() - started:.0f} s")

    client = TestClient(create_app(root), base_url="http://127.0.0.1")
    words = [w for w in vocab.words[200:2000] if len(w) > 3]
    pages = {
        "home": lambda: "/",
        "browse page 500": lambda: "/browse?page=500",
        "search": lambda: f"/search?q={rnd.choice(words)}",
        "search, 2 words": lambda: f"/search?q={rnd.choice(words)}+{rnd.choice(words)}",
        "bag page": lambda: f"/bag/{name_of(rnd.choice(sample))}",
    }
    for label, make in pages.items():
        cold = time.perf_counter()
        response = client.get(make())
        cold = time.perf_counter() - cold
        assert response.status_code == 200, (label, response.status_code, response.text[:300])
        samples = []
        for _ in range(repeats):
            url = make()
            t = time.perf_counter()
            response = client.get(url)
            samples.append(time.perf_counter() - t)
            assert response.status_code == 200, (url, response.status_code)
        print(f"{label:<17} {percentiles(samples)}   (first request {cold * 1000:.0f} ms, {repeats} requests)")


def part2(work: Path, m: int) -> None:
    root, out = work / "site-bags", work / "site"
    root.mkdir()
    vocab = Vocabulary(20000, seed=3)
    started = time.perf_counter()
    for i in range(m):
        real_bag(root, i, vocab)
    rebuild_catalog(root)
    print(f"{m:,} real bags written and catalogued in {time.perf_counter() - started:.0f} s")
    t = time.perf_counter()
    report = build_site(root, out)
    first = time.perf_counter() - t
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"static site, first build: {first:6.1f} s  ({report.pages:,} pages, {report.written:,} files, "
          f"{size / 1e6:.0f} MB)")
    t = time.perf_counter()
    again = build_site(root, out)
    print(f"static site, re-run with nothing changed: {time.perf_counter() - t:6.1f} s  "
          f"({again.written} files written, {again.unchanged:,} unchanged)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bags", type=int, default=100_000)
    parser.add_argument("--site-bags", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    data = Path(__file__).resolve().parent / "data"
    data.mkdir(exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="web-", dir=data))
    try:
        part1(work, args.bags, args.repeats)
        if args.site_bags:
            part2(work, args.site_bags)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
