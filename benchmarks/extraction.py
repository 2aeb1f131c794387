"""Main-text extraction quality and speed on real pages, dataset by dataset.

Scores archiver (profile chosen by markup, generic fallback), trafilatura and
readability-lxml side by side on every dataset of ``../shared/realpages``
(amusewiki, wcxb-article, wcxb-other, readability: real pages with ground
truth) and on the Zyte article-extraction benchmark
(``../shared/article-extraction-benchmark``, 181 pages).

Body metric: the Zyte benchmark's own (its evaluate.py): lowercased ``\\w+``
tokens, TP/FP/FN over 4-word shingles normalised per page, precision and
recall averaged over pages, F1 of the two averages. "fail" counts pages whose
own F1 is under 0.5 (a wrong or lost text, not a small miss); "exact" pages
whose token sequence equals the ground truth.

Header fields, where the ground truth has them: an author matches when the
name's words equal the truth's words or one holds the other ("By Jane Doe"
holds "Jane Doe"); a date matches when both read as the same calendar day
(archiver's ``date_iso``, trafilatura's ISO date; the truth's ISO date).
readability-lxml gives no author or date.

trafilatura runs as one ``bare_extraction(with_metadata=True)`` call (its
default options, so comments follow the text as in ``extract()``): the call
that gives a body and a header, as archiver does. readability-lxml's body is
``Document(html).summary()`` read as text.

    python benchmarks/extraction.py                          # every dataset
    python benchmarks/extraction.py --dataset wcxb-other     # one or more
    python benchmarks/extraction.py --reuse-baselines        # archiver only; baselines from the last run
    python benchmarks/extraction.py --worst 15               # the pages where archiver trails most
    python benchmarks/extraction.py --ablation               # Zyte: each tuning step of the generic extractor

    python benchmarks/extraction.py --extractor archiver --extractor trafilatura --repeat 3   # timing

Timing is wall-clock per page for the whole call (parsing included), every
extractor given the same decoded page, in one process: each extractor runs
untimed on the dataset's first pages (warm-up: imports, caches), then the
extractors are interleaved page by page, in alternating order, so that
background load hits them alike; with ``--repeat N`` a page's time is the
fastest of N runs. The table shows the mean (total / pages) and the median
page; below it, archiver's total and median against trafilatura's.
Baseline outputs and per-page times are cached under ``benchmarks/data/``
(git-ignored); with ``--reuse-baselines`` their times come from that earlier
run (marked "cached"), not from the same conditions.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import re
import statistics
import sys
import time
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Callable, NamedTuple

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import trafilatura  # noqa: E402

from archiver.errors import ExtractionError  # noqa: E402
from archiver.capture.charset import decode_document  # noqa: E402
from archiver.capture.extract import extract_html, generic  # noqa: E402
from archiver.capture.extract.htmltext import element_paragraphs, parse_html  # noqa: E402

SHARED = REPO.parent / "shared"
REALPAGES = ("amusewiki", "wcxb-article", "wcxb-other", "readability")
DATASETS = (*REALPAGES, "zyte")
CACHE = REPO / "benchmarks" / "data" / "extraction-cache"
_TOKEN = re.compile(r"\w+")
_ISO_DAY = re.compile(r"^\s*(\d{4})-(\d{2})-(\d{2})")


class Output(NamedTuple):
    body: str
    author: str | None = None
    date: str | None = None     # ISO date (or None)


class Case(NamedTuple):
    key: str
    html: str
    body: str
    author: str | None
    date: str | None


Extractor = Callable[[str], Output]


# --- the benchmark's metric ---------------------------------------------------

def shingle_counts(text: str, n: int = 4) -> Counter:
    tokens = _TOKEN.findall((text or "").lower())
    return Counter(tuple(tokens[i:i + n]) for i in range(max(1, len(tokens) - n + 1)) if tokens[i:i + n])


def document_scores(truth: str, prediction: str) -> tuple[float, float, float]:
    """(tp, fp, fn) over shingles, normalised so that every document weighs the same."""
    expected, found = shingle_counts(truth), shingle_counts(prediction)
    tp = sum((expected & found).values())
    fp = sum((found - expected).values())
    fn = sum((expected - found).values())
    total = tp + fp + fn
    return (tp / total, fp / total, fn / total) if total else (0.0, 0.0, 0.0)


def _precision(tp: float, fp: float, fn: float) -> float:
    if fp == fn == 0:
        return 1.0
    return 0.0 if tp == fp == 0 else tp / (tp + fp)


def _recall(tp: float, fp: float, fn: float) -> float:
    if fp == fn == 0:
        return 1.0
    return 0.0 if tp == fn == 0 else tp / (tp + fn)


def page_f1(score: tuple[float, float, float]) -> float:
    precision, recall = _precision(*score), _recall(*score)
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def summary(scores: list[tuple[float, float, float]]) -> dict[str, float]:
    precisions = [_precision(*s) for s in scores if s[0] + s[1] > 0]
    recalls = [_recall(*s) for s in scores if s[0] + s[2] > 0]
    precision = statistics.mean(precisions) if precisions else 0.0
    recall = statistics.mean(recalls) if recalls else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def with_bootstrap(scores: list[tuple[float, float, float]], rounds: int = 1000) -> dict[str, float]:
    result = summary(scores)
    rng = random.Random(0)
    samples: dict[str, list[float]] = {key: [] for key in result}
    for _ in range(rounds):
        resampled = [scores[rng.randrange(len(scores))] for _ in scores]
        for key, value in summary(resampled).items():
            samples[key].append(value)
    result.update({f"{key}_ci": 1.96 * statistics.stdev(values) for key, values in samples.items()})
    return result


# --- header fields ------------------------------------------------------------

_NOT_NAME_WORDS = frozenset({"by", "par", "von", "and", "und", "et", "written", "posted"})


def _name_words(value: str | None) -> set[str]:
    return set(_TOKEN.findall((value or "").lower())) - _NOT_NAME_WORDS


def author_matches(truth: str, found: str | None) -> bool:
    expected, got = _name_words(truth), _name_words(found)
    return bool(expected and got) and (expected <= got or got <= expected)


def iso_day(value: str | None) -> date | None:
    match = _ISO_DAY.match(value or "")
    if not match:
        return None
    try:
        return date(*(int(part) for part in match.groups()))
    except ValueError:
        return None


def date_matches(truth: str, found: str | None) -> bool:
    expected = iso_day(truth)
    return expected is not None and expected == iso_day(found)


# --- the extractors -----------------------------------------------------------

def archiver_full(html: str) -> Output:
    try:
        extraction = extract_html(html)
    except ExtractionError:
        return Output("")
    return Output(extraction.text.body, extraction.text.author, extraction.date_iso)


def trafilatura_with_metadata(html: str) -> Output:
    try:
        document = trafilatura.bare_extraction(html, with_metadata=True)
    except Exception:  # trafilatura raises a variety of parser errors on broken pages
        return Output("")
    if document is None:
        return Output("")
    body = "\n".join(filter(None, (document.text, document.comments)))
    return Output(body or "", document.author, document.date)


def readability_lxml(html: str) -> Output:
    from lxml import html as lxml_html
    from readability import Document
    try:
        summary_html = Document(html).summary(html_partial=True)
        return Output(" ".join(lxml_html.fromstring(summary_html).itertext()))
    except Exception:  # readability raises on empty or unparsable documents
        return Output("")


def _readability_version() -> str:
    from importlib.metadata import version
    return version("readability-lxml")


EXTRACTORS: dict[str, Extractor] = {
    "archiver": archiver_full,
    "trafilatura": trafilatura_with_metadata,
    "readability-lxml": readability_lxml,
}
BASELINES = ("trafilatura", "readability-lxml")
HAS_HEADER = ("archiver", "trafilatura")


def trafilatura_tree(options: dict) -> Callable[[str], str]:
    """trafilatura with ``options``, serialised by archiver's canonical rules."""
    def run(html: str) -> str:
        document = trafilatura.bare_extraction(html, **options)
        return "\n\n".join(element_paragraphs(document.body)) if document and document.body is not None else ""
    return run


def archiver_generic(html: str) -> str:
    try:
        tree = parse_html(html)
    except ExtractionError:
        return ""
    return "\n\n".join(generic.extract(tree, html, None).paragraphs)


def ablation() -> dict[str, Callable[[str], str]]:
    """Each tuning step of archiver.capture.extract.generic, added one at a time."""
    def with_fallback(html: str) -> str:
        try:
            tree = parse_html(html)
        except ExtractionError:
            return ""
        return "\n\n".join(generic.main_text_paragraphs(html, title=None, tree=tree))
    return {
        "trafilatura default, extract()": lambda html: trafilatura.extract(html) or "",
        "trafilatura body tree (comments kept apart), canonical serialisation": trafilatura_tree({}),
        "+ include_comments=False": trafilatura_tree(generic.BALANCED_OPTIONS),
        "+ favor_precision": trafilatura_tree(generic.PRECISION_OPTIONS),
        "+ balanced mode for discussions, non-articles and cut results": with_fallback,
        "+ drop repeated title (= archiver generic)": archiver_generic,
    }


# --- the data -----------------------------------------------------------------

def _decode(raw: bytes) -> str:
    return decode_document(raw, None)[0]


def load(name: str, shared: Path, only: set[str] | None = None) -> list[Case]:
    cases: list[Case] = []
    if name == "zyte":
        folder = shared / "article-extraction-benchmark"
        truth = json.loads((folder / "ground-truth.json").read_text(encoding="utf-8"))
        for key in sorted(truth):
            if only and key not in only:
                continue
            raw = gzip.decompress((folder / "html" / f"{key}.html.gz").read_bytes())
            cases.append(Case(key, _decode(raw), truth[key].get("articleBody", ""), None, None))
        return cases
    for folder in sorted((shared / "realpages" / name).iterdir()):
        if not (folder / "expected.json").is_file() or (only and folder.name not in only):
            continue
        expected = json.loads((folder / "expected.json").read_text(encoding="utf-8"))
        body = expected.get("body")
        if body is None:  # amusewiki: the canonical text's body follows the header's blank line
            text = (folder / "expected.txt").read_text(encoding="utf-8")
            body = text.partition("\n\n")[2] if not text.startswith("\n") else text[1:]
        raw = gzip.decompress((folder / "page.html.gz").read_bytes())
        cases.append(Case(folder.name, _decode(raw), body, expected.get("author"), expected.get("date")))
    return cases


# --- the run ------------------------------------------------------------------

def _cache_file(extractor: str, dataset: str) -> Path:
    version = trafilatura.__version__ if extractor == "trafilatura" else _readability_version()
    return CACHE / f"{extractor}-{version}-{dataset}.json"


WARM_UP_PAGES = 5
TIMING_NOTE = ("time: wall-clock of one extractor call per page (parsing included), every extractor given the same "
               "decoded str; extractors interleaved page by page, order alternating; each extractor first run "
               "untimed on {warm} pages of the dataset (warm-up); a page's time is the fastest of {repeat} run(s); "
               "mean = total / pages, median = the median page; garbage collection left on")


def run_dataset(dataset: str, cases: list[Case], names: list[str], reuse: bool, repeat: int = 1
                ) -> tuple[dict[str, dict[str, Output]], dict[str, list[float]], set[str]]:
    """Outputs and per-page seconds of each extractor; the names whose figures come from the cache."""
    outputs: dict[str, dict[str, Output]] = {name: {} for name in names}
    seconds: dict[str, list[float]] = {name: [] for name in names}
    to_run = list(names)
    for name in names:
        cached = _cache_file(name, dataset) if name in BASELINES else None
        if reuse and cached is not None and cached.is_file():
            stored = json.loads(cached.read_text(encoding="utf-8"))
            if all(case.key in stored["pages"] and case.key in stored.get("seconds", {}) for case in cases):
                outputs[name] = {case.key: Output(*stored["pages"][case.key]) for case in cases}
                seconds[name] = [stored["seconds"][case.key] for case in cases]
                to_run.remove(name)
    for case in cases[:WARM_UP_PAGES]:
        for name in to_run:
            EXTRACTORS[name](case.html)
    for index, case in enumerate(cases):
        # Alternate the order so that no extractor always runs on a warm cache.
        order = to_run if index % 2 == 0 else list(reversed(to_run))
        fastest = {name: float("inf") for name in order}
        for _ in range(repeat):
            for name in order:
                started = time.perf_counter()
                outputs[name][case.key] = EXTRACTORS[name](case.html)
                fastest[name] = min(fastest[name], time.perf_counter() - started)
        for name in order:
            seconds[name].append(fastest[name])
    for name in to_run:
        if name in BASELINES and len(cases) > 0:
            CACHE.mkdir(parents=True, exist_ok=True)
            previous = _cache_file(name, dataset)
            stored = json.loads(previous.read_text(encoding="utf-8")) if previous.is_file() else {}
            pages = {key: list(output) for key, output in outputs[name].items()}
            times = {case.key: value for case, value in zip(cases, seconds[name])}
            # A run on some pages (--page) keeps the other pages' figures.
            if isinstance(stored.get("pages"), dict) and isinstance(stored.get("seconds"), dict):
                pages, times = {**stored["pages"], **pages}, {**stored["seconds"], **times}
            previous.write_text(json.dumps({"pages": pages, "seconds": times}), encoding="utf-8")
    return outputs, seconds, set(names) - set(to_run)


def score(cases: list[Case], outputs: dict[str, Output], seconds: list[float]) -> dict[str, float]:
    scores = [document_scores(case.body, outputs[case.key].body) for case in cases]
    figures = with_bootstrap(scores, rounds=200)
    authors = [case for case in cases if case.author]
    dates = [case for case in cases if iso_day(case.date)]
    figures.update({
        "pages": len(cases),
        "fail": sum(page_f1(s) < 0.5 for s in scores),
        "exact": sum(_TOKEN.findall(case.body.lower()) == _TOKEN.findall(outputs[case.key].body.lower())
                     for case in cases),
        "authors": len(authors),
        "author_ok": sum(author_matches(case.author, outputs[case.key].author) for case in authors),
        "dates": len(dates),
        "date_ok": sum(date_matches(case.date, outputs[case.key].date) for case in dates),
        "ms_per_page": 1000 * sum(seconds) / max(len(cases), 1),
        "ms_median": 1000 * statistics.median(seconds) if seconds else 0.0,
        "seconds_total": sum(seconds),
    })
    return figures


def print_table(results: dict[str, dict[str, dict[str, float]]]) -> None:
    print("| dataset | extractor | precision | recall | F1 | fail (F1<0.5) | exact | author | date "
          "| ms/page mean (median) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for dataset, by_extractor in results.items():
        for name, f in by_extractor.items():
            header = name in HAS_HEADER
            author = f"{f['author_ok']}/{f['authors']}" if header and f["authors"] else "–"
            when = f"{f['date_ok']}/{f['dates']}" if header and f["dates"] else "–"
            print(f"| {dataset} ({f['pages']}) | {name} | {f['precision']:.3f} | {f['recall']:.3f} | "
                  f"{f['f1']:.3f} ± {f['f1_ci']:.3f} | {f['fail']} | {f['exact']} | {author} | {when} | "
                  f"{f['ms_per_page']:.1f} ({f['ms_median']:.1f}){' cached' if f.get('cached') else ''} |")


def print_timing(results: dict[str, dict[str, dict[str, float]]], repeat: int,
                 load: tuple[float, float]) -> None:
    """archiver's time against trafilatura's, dataset by dataset, and how it was measured."""
    print(TIMING_NOTE.format(warm=WARM_UP_PAGES, repeat=repeat)
          + f"; {os.cpu_count()} CPUs, load average {load[0]:.1f} at the start, {load[1]:.1f} at the end")
    for dataset, by_extractor in results.items():
        ours, theirs = by_extractor.get("archiver"), by_extractor.get("trafilatura")
        if not ours or not theirs or not theirs["seconds_total"] or not theirs["ms_median"]:
            continue
        cached = " (trafilatura's figures from the cache of an earlier run)" if theirs.get("cached") else ""
        print(f"  {dataset}: archiver / trafilatura = {ours['seconds_total'] / theirs['seconds_total']:.2f}x total "
              f"({ours['seconds_total']:.1f} s / {theirs['seconds_total']:.1f} s), "
              f"{ours['ms_median'] / theirs['ms_median']:.2f}x median{cached}")


def print_worst(dataset: str, cases: list[Case], outputs: dict[str, dict[str, Output]], count: int) -> None:
    rows = []
    for case in cases:
        ours = page_f1(document_scores(case.body, outputs["archiver"][case.key].body))
        best = max((page_f1(document_scores(case.body, outputs[name][case.key].body)), name)
                   for name in outputs if name != "archiver")
        rows.append((ours - best[0], case.key, ours, best))
    for gap, key, ours, (theirs, name) in [row for row in sorted(rows) if row[0] < 0][:count]:
        print(f"  {dataset}/{key}: archiver {ours:.3f} vs {name} {theirs:.3f} ({gap:+.3f})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=SHARED, help="the shared data folder")
    parser.add_argument("--dataset", action="append", choices=DATASETS, help="only these datasets")
    parser.add_argument("--page", action="append", help="only these page ids")
    parser.add_argument("--reuse-baselines", action="store_true",
                        help="take trafilatura and readability-lxml outputs from the last run's cache")
    parser.add_argument("--worst", type=int, default=0, help="list the N pages where archiver trails most")
    parser.add_argument("--ablation", action="store_true", help="Zyte: score each tuning step of the generic extractor")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--extractor", action="append", choices=list(EXTRACTORS), help="only these extractors")
    parser.add_argument("--repeat", type=int, default=1, help="run each page this many times, keep the fastest")
    args = parser.parse_args()
    if not (args.shared / "realpages").is_dir() and not (args.shared / "article-extraction-benchmark").is_dir():
        print(f"benchmark data not found under {args.shared}", file=sys.stderr)
        return 3
    only = set(args.page) if args.page else None
    print(f"trafilatura {trafilatura.__version__}, readability-lxml {_readability_version()}, "
          f"python {sys.version.split()[0]}")
    if args.ablation:
        cases = load("zyte", args.shared, only)
        for label, function in ablation().items():
            scores = [document_scores(case.body, function(case.html)) for case in cases]
            print(f"{label:<72} F1={summary(scores)['f1']:.4f}")
        return 0
    results: dict[str, dict[str, dict[str, float]]] = {}
    load_at_start = os.getloadavg()[0]
    for dataset in args.dataset or DATASETS:
        cases = load(dataset, args.shared, only)
        if not cases:
            continue
        names = [name for name in EXTRACTORS if not args.extractor or name in args.extractor]
        outputs, seconds, cached = run_dataset(dataset, cases, names, args.reuse_baselines, max(args.repeat, 1))
        results[dataset] = {name: {**score(cases, outputs[name], seconds[name]), "cached": name in cached}
                            for name in names}
        if args.worst and "archiver" in outputs and len(outputs) > 1:
            print_worst(dataset, cases, outputs, args.worst)
    print_table(results)
    print_timing(results, max(args.repeat, 1), (load_at_start, os.getloadavg()[0]))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
