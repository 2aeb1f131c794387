"""Benchmark the catalogue at scale: build, size, search and history latency.

    python benchmarks/catalog.py                 # 100,000 texts of ~20 KB, 2,000 real bags
    python benchmarks/catalog.py --docs 10000 --bags 500   # a quicker run

Part 1 builds a catalogue of N synthetic texts through the public
``archiver.collection.catalog.build_catalog`` (the function ``rebuild_catalog`` uses),
from records generated in memory: writing 100,000 real bags to disk would take
longer than the benchmark may run. The time spent generating the synthetic
text is measured and reported apart from the build time. Words come from a
synthetic vocabulary drawn with a Zipf distribution (s = 1.05), so there are
very common, common and rare words, shorter words more common, as in prose.
A synthetic event log with one unchanged re-check per source is imported the
way ``open_catalog`` imports new events.

Part 2 writes M real bags (archiver.bagit.write.write_bag, ~20 KB text each) and times
``rebuild_catalog`` on them, then extrapolates linearly to N (said so in the
output): reading bags costs more than generating records.

Data goes to a temporary folder under benchmarks/data/ (git-ignored), deleted
at the end unless --keep. Needs numpy for fast text generation (falls back to
the random module, slower, when numpy is absent).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterator

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from archiver.bagit.write import write_bag  # noqa: E402
from archiver.collection.catalog import (  # noqa: E402
    BagRecord, build_catalog, catalog_add_bag, catalog_path, open_catalog, read_bag_record, rebuild_catalog,
)
from archiver.collection.events import Event, append_events  # noqa: E402

try:
    import numpy as np
except ImportError:  # pragma: no cover
    np = None

SYLLABLES = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"] + ["th", "sh", "qu", "ch"]
CAPTURES_PER_URL = 2  # so history has several rows per source
RARE_PER_TEXT = 10  # long-tail words (names, hapaxes) a text


class Vocabulary:
    """Synthetic words with Zipf-distributed frequencies (rank 1 most common)."""

    def __init__(self, size: int, seed: int, exponent: float = 1.05) -> None:
        rnd = random.Random(seed)
        words: list[str] = []
        seen: set[str] = set()
        while len(words) < size:
            # Common words short, rare ones long, as in prose.
            n = 1 + min(5, int(rnd.expovariate(1.0) * (1 + len(words) / size * 3)))
            word = "".join(rnd.choice(SYLLABLES) for _ in range(n))
            if word not in seen:
                seen.add(word)
                words.append(word)
        words.sort(key=len)  # shorter = higher rank
        self.words = words
        self.weights = [1.0 / (rank + 1) ** exponent for rank in range(size)]
        total = sum(self.weights)
        self.probabilities = [w / total for w in self.weights]
        mean_len = sum(p * (len(w) + 1) for p, w in zip(self.probabilities, words))
        self.tokens_per_20kb = int(20_000 / mean_len)
        self._spaced = [w + " " for w in words]
        if np is not None:
            self._cum = np.cumsum(np.array(self.probabilities))
            self._cum[-1] = 1.0
            self._rng = np.random.default_rng(seed)
        else:
            self._cum_list = list(_accumulate(self.weights))
            self._rnd = random.Random(seed)

    def text(self, tokens: int, rare: list[str] | None = None) -> str:
        """``tokens`` words; the ``rare`` ones (names, hapaxes) at random places."""
        if np is not None:
            idx = np.searchsorted(self._cum, self._rng.random(tokens)).tolist()
            words = list(map(self._spaced.__getitem__, idx))
        else:
            words = self._rnd.choices(self._spaced, cum_weights=self._cum_list, k=tokens)
        for word in rare or ():
            words[random.randrange(tokens)] = word + " "
        # Paragraphs of ~80 words, as canonical text has.
        return "\n\n".join("".join(words[i:i + 80]).rstrip() for i in range(0, len(words), 80))


def _accumulate(values: list[float]) -> Iterator[float]:
    total = 0.0
    for v in values:
        total += v
        yield total


def url_of(i: int) -> str:
    return f"https://example.org/library/text-{i // CAPTURES_PER_URL}"


def record_name(i: int) -> str:
    return f"text-{i:06d}-202611{1 + (i % CAPTURES_PER_URL) * 10:02d}T100000Z"


def record_time(i: int) -> str:
    return f"2026-11-{1 + (i % CAPTURES_PER_URL) * 10:02d}T10:00:00Z"


def rare_word() -> str:
    """A long random word: a name or a hapax, in about one text of the collection."""
    return "".join(random.choice(SYLLABLES) for _ in range(6))


def synthetic_records(vocab: Vocabulary, n: int, clock: list[float],
                      rare_sample: list[str]) -> Iterator[BagRecord]:
    """N records; time spent generating them is added to clock[0]; some of the
    rare words used are appended to ``rare_sample``."""
    for i in range(n):
        started = time.perf_counter()
        title = " ".join(vocab.words[random.randrange(200, 20000)] for _ in range(4)).title()
        author = " ".join(vocab.words[random.randrange(1000, 40000)] for _ in range(2)).title()
        rare = [rare_word() for _ in range(RARE_PER_TEXT)]
        if i % 97 == 0:
            rare_sample.append(rare[0])
        body = vocab.text(vocab.tokens_per_20kb, rare)
        text = f"Title: {title}\nAuthor: {author}\n\n{body}\n"
        record = BagRecord(
            name=record_name(i), url=url_of(i), final_url=url_of(i),
            title=title, author=author, retrieved=record_time(i),
            text_sha256=hashlib.sha256(text.encode()).hexdigest(), payload_bytes=len(text),
            payload_files=3, text=text)
        clock[0] += time.perf_counter() - started
        yield record


def percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return f"median {statistics.median(ordered) * 1000:7.2f} ms   p95 {p95 * 1000:7.2f} ms"


def timed(calls: list[Callable[[], object]]) -> list[float]:
    times = []
    for call in calls:
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return times


def document_frequencies(path: Path, words: list[str]) -> list[tuple[str, int]]:
    """How many texts hold each word, from the index itself."""
    import sqlite3

    conn = sqlite3.connect(path)
    conn.execute("CREATE VIRTUAL TABLE temp.vocab USING fts5vocab(main, bag_text, 'row')")
    rows = [(w, (conn.execute("SELECT doc FROM temp.vocab WHERE term = ?", (w,)).fetchone() or (0,))[0])
            for w in words]
    conn.close()
    return rows


def part1(work: Path, n: int, queries: int) -> float:
    root = work / "synthetic"
    (root / ".archiver").mkdir(parents=True)
    vocab = Vocabulary(50_000, seed=1)
    random.seed(2)
    print(f"[1] {n:,} synthetic texts, ~{vocab.tokens_per_20kb} words each, vocabulary 50,000 (Zipf 1.05)")

    # A capture event a bag, and one unchanged re-check a source.
    events = [Event("capture", "success", bag=record_name(i), time=record_time(i), detail={"url": url_of(i)})
              for i in range(n)]
    events += [Event("capture", "unchanged", bag=record_name(i), time="2026-11-25T10:00:00Z",
                     detail={"url": url_of(i), "reason": "not-modified"})
               for i in range(0, n, CAPTURES_PER_URL)]
    append_events(root, events)

    clock = [0.0]
    rare_sample: list[str] = []
    cpu_started = time.process_time()
    started = time.perf_counter()
    tmp = root / ".archiver" / ".tmp-catalog-bench.sqlite"
    build_catalog(tmp, synthetic_records(vocab, n, clock, rare_sample), total=n,
                  on_progress=lambda done, total, _d="": print(f"    {done:,}/{total:,}", end="\r", flush=True)
                  if done % 10_000 == 0 else None)
    os.replace(tmp, catalog_path(root))
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    started = time.perf_counter()
    catalog = open_catalog(root)  # imports the event log
    import_time = time.perf_counter() - started
    size = catalog_path(root).stat().st_size
    text_bytes_estimate = n * 20_000
    print(f"    build (index + optimize, excluding {clock[0]:.1f} s of text generation): "
          f"{wall - clock[0]:.1f} s   [wall {wall:.1f} s; CPU time of build + generation {cpu:.1f} s; "
          f"load average now {os.getloadavg()[0]:.1f}]")
    print(f"    event import ({len(events):,} capture events): {import_time:.2f} s")
    print(f"    catalogue size: {size / 1e9:.2f} GB ({size / text_bytes_estimate:.2f} x the ~{text_bytes_estimate / 1e9:.1f} GB of text)")

    # Expected share of texts holding a word of probability p: 1 - (1 - p)^tokens.
    share = [1 - (1 - p) ** vocab.tokens_per_20kb for p in vocab.probabilities]
    pick = random.Random(5)

    def words_where(low: float, high: float) -> list[str]:
        words = [w for w, s in zip(vocab.words, share) if low <= s <= high]
        return pick.sample(words, min(len(words), 200))

    by_df = document_frequencies(catalog_path(root), vocab.words[:10] + words_where(0.10, 0.50)
                                 + words_where(0.001, 0.01) + rare_sample[:200])
    buckets = {
        "very common (top 10 words)": by_df[:10],
        "common (in 10-50% of texts)": [r for r in by_df[10:] if n * 0.10 <= r[1] <= n * 0.50],
        "uncommon (in 0.1-1% of texts)": [r for r in by_df[10:] if n * 0.001 <= r[1] <= n * 0.01],
        "rare (in 1-5 texts)": [r for r in by_df[10:] if 1 <= r[1] <= 5],
    }
    rnd = random.Random(3)
    for label, rows in buckets.items():
        if not rows:
            print(f"    search {label}: no such words")
            continue
        sample = [rnd.choice(rows) for _ in range(queries)]
        catalog.search(sample[0][0], 20)  # warm the page cache once
        times = timed([lambda w=w: catalog.search(w, 20) for w, _ in sample])
        mean_df = sum(df for _, df in sample) / len(sample)
        print(f"    search {label:<32} {percentiles(times)}   (mean {mean_df:,.0f} matching texts, top 20)")
    pairs = [(rnd.choice(buckets['common (in 10-50% of texts)'] or by_df)[0],
              rnd.choice(buckets['uncommon (in 0.1-1% of texts)'] or by_df)[0]) for _ in range(queries)]
    times = timed([lambda a=a, b=b: catalog.search(f"{a} {b}", 20) for a, b in pairs])
    print(f"    search {'two words (common + uncommon)':<32} {percentiles(times)}")
    urls = [url_of(rnd.randrange(n)) for _ in range(queries * 4)]
    times = timed([lambda u=u: catalog.history(u) for u in urls])
    print(f"    history {'(2 captures + 1 re-check a URL)':<31} {percentiles(times)}")

    def open_and_history(u: str) -> None:
        with open_catalog(root) as fresh:
            fresh.history(u)
    times = timed([lambda u=u: open_and_history(u) for u in urls[:queries]])
    print(f"    open_catalog + history {'(as one CLI call does)':<16} {percentiles(times)}")
    catalog.close()

    # What the snapshot pipeline pays a capture: index one new bag into the big catalogue.
    new_bags = [write_real_bag(root, vocab, n + i) for i in range(20)]
    times = timed([lambda b=b: catalog_add_bag(root, b) for b in new_bags])
    print(f"    catalog_add_bag {'(one ~20 KB bag, fsynced)':<23} {percentiles(times)}")
    return wall - clock[0]


def write_real_bag(root: Path, vocab: Vocabulary, i: int) -> Path:
    body = vocab.text(vocab.tokens_per_20kb)
    text = f"Title: Text {i}\n\n{body}\n".encode()
    metadata = {"title": f"Text {i}", "author": None, "url": url_of(i), "final_url": url_of(i),
                "retrieved": "2026-11-01T10:00:00Z", "text_sha256": hashlib.sha256(text).hexdigest(),
                "derived_from": None}
    return write_bag(root, f"text-{i:06d}-20261101T100000Z",
                     {"text.txt": text, "metadata.json": json.dumps(metadata).encode(),
                      "capture.warc.gz": os.urandom(2048)},
                     [("External-Identifier", url_of(i))])


def part2(work: Path, m: int, n: int, build_n: float) -> None:
    root = work / "bags"
    root.mkdir()
    vocab = Vocabulary(50_000, seed=4)
    print(f"[2] {m:,} real bags on disk (write_bag, ~20 KB text + metadata + small WARC each)")
    started = time.perf_counter()
    for i in range(m):
        write_real_bag(root, vocab, i)
    print(f"    writing the bags: {time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    report = rebuild_catalog(root)
    took = time.perf_counter() - started
    print(f"    rebuild_catalog from {report.bags:,} bags: {took:.1f} s "
          f"({took / report.bags * 1000:.2f} ms a bag)")
    started = time.perf_counter()
    for bag_dir in sorted(p for p in root.iterdir() if not p.name.startswith(".")):
        read_bag_record(bag_dir)
    reading = (time.perf_counter() - started) / m
    print(f"    of which reading a bag (metadata, text, bag-info): {reading * 1000:.2f} ms")
    print(f"    estimate for {n:,} bags = build of {n:,} texts in [1] + {n:,} x reading a bag: "
          f"{(build_n + reading * n) / 60:.1f} min; naive linear extrapolation of this rebuild: "
          f"{took / report.bags * n / 60:.1f} min (estimates, not measurements; page cache warm)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=100_000, help="synthetic texts in part 1")
    parser.add_argument("--bags", type=int, default=2_000, help="real bags in part 2 (0 to skip)")
    parser.add_argument("--queries", type=int, default=100, help="queries a latency figure")
    parser.add_argument("--keep", action="store_true", help="keep the data under benchmarks/data/")
    args = parser.parse_args()
    data = Path(__file__).resolve().parent / "data"
    data.mkdir(exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="catalog-", dir=data))
    print(f"data in {work} (numpy {'yes' if np is not None else 'no: slower generation'})")
    try:
        build_n = part1(work, args.docs, args.queries)
        if args.bags:
            part2(work, args.bags, args.docs, build_n)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
