"""Main-text extraction quality and speed on the article-extraction benchmark.

Scores archiver's generic extractor, archiver's full extraction (profile
chosen by markup, generic fallback) and trafilatura's default output in the
same run, on ``../shared/article-extraction-benchmark/`` (181 real pages and
their ground-truth article bodies, MIT, from scrapinghub's
article-extraction-benchmark).

The metric is that benchmark's own (its evaluate.py): for each document,
TP/FP/FN over 4-word shingles of ``\\w+`` tokens, normalised per document;
precision and recall averaged over documents; F1 of the two averages; ± is a
1.96-sigma bootstrap interval over documents (n=1000).

    python benchmarks/extraction.py                 # headline figures
    python benchmarks/extraction.py --ablation      # each tuning step alone

Timing is wall-clock per page for the whole extraction call (parsing
included), with the extractors interleaved page by page so that background
load hits them alike.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import re
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import trafilatura  # noqa: E402

from archiver.errors import ExtractionError  # noqa: E402
from archiver.capture.extract import extract_html, generic  # noqa: E402
from archiver.capture.extract.htmltext import element_paragraphs, parse_html  # noqa: E402

DEFAULT_DATA = REPO.parent / "shared" / "article-extraction-benchmark"
_TOKEN = re.compile(r"\w+")

Extractor = Callable[[str], str]


# --- the benchmark's metric ---------------------------------------------------

def shingle_counts(text: str, n: int = 4) -> Counter:
    tokens = _TOKEN.findall(text or "")
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


def summary(scores: list[tuple[float, float, float]]) -> dict[str, float]:
    precision = statistics.mean(_precision(*s) for s in scores if s[0] + s[1] > 0)
    recall = statistics.mean(_recall(*s) for s in scores if s[0] + s[2] > 0)
    return {"precision": precision, "recall": recall, "f1": 2 * precision * recall / (precision + recall)}


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


# --- the extractors -----------------------------------------------------------

def trafilatura_default(html: str) -> str:
    return trafilatura.extract(html) or ""


def archiver_generic(html: str) -> str:
    try:
        tree = parse_html(html)
    except ExtractionError:
        return ""
    return "\n\n".join(generic.extract(tree, html, None).paragraphs)


def archiver_full(html: str) -> str:
    try:
        return extract_html(html).text.body
    except ExtractionError:
        return ""


def trafilatura_tree(options: dict) -> Extractor:
    """trafilatura with ``options``, serialised by archiver's canonical rules."""
    def run(html: str) -> str:
        document = trafilatura.bare_extraction(html, **options)
        return "\n\n".join(element_paragraphs(document.body)) if document and document.body is not None else ""
    return run


def ablation() -> dict[str, Extractor]:
    """Each tuning step of archiver.capture.extract.generic, added one at a time."""
    def with_fallback(html: str) -> str:
        return "\n\n".join(generic.main_text_paragraphs(html, title=None))
    return {
        "trafilatura default, extract()": trafilatura_default,
        "trafilatura body tree (comments kept apart), canonical serialisation": trafilatura_tree({}),
        "+ include_comments=False": trafilatura_tree(generic.BALANCED_OPTIONS),
        "+ favor_precision": trafilatura_tree(generic.PRECISION_OPTIONS),
        "+ balanced retry on short result": with_fallback,
        "+ drop repeated title (= archiver generic)": archiver_generic,
    }


# --- the run ------------------------------------------------------------------

def load(data: Path) -> tuple[dict[str, str], dict[str, str]]:
    truth = {key: value.get("articleBody", "")
             for key, value in json.loads((data / "ground-truth.json").read_text(encoding="utf-8")).items()}
    pages = {key: gzip.decompress((data / "html" / f"{key}.html.gz").read_bytes()).decode("utf-8")
             for key in truth}
    return truth, pages


def run(extractors: dict[str, Extractor], truth: dict[str, str], pages: dict[str, str]) -> dict[str, dict]:
    outputs: dict[str, dict[str, str]] = {name: {} for name in extractors}
    seconds = {name: 0.0 for name in extractors}
    names = list(extractors)
    for index, (key, html) in enumerate(pages.items()):
        # Alternate the order so neither extractor always runs on a warm cache.
        order = names if index % 2 == 0 else list(reversed(names))
        for name in order:
            started = time.perf_counter()
            outputs[name][key] = extractors[name](html)
            seconds[name] += time.perf_counter() - started
    results = {}
    for name in names:
        scores = [document_scores(truth[key], outputs[name][key]) for key in truth]
        results[name] = {**with_bootstrap(scores), "ms_per_page": 1000 * seconds[name] / len(pages),
                         "exact": sum(_TOKEN.findall(truth[k]) == _TOKEN.findall(outputs[name][k])
                                      for k in truth) / len(truth)}
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="benchmark folder")
    parser.add_argument("--ablation", action="store_true", help="score each tuning step")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    if not (args.data / "ground-truth.json").is_file():
        print(f"benchmark data not found under {args.data}", file=sys.stderr)
        return 3
    truth, pages = load(args.data)
    extractors = ablation() if args.ablation else {
        "trafilatura default": trafilatura_default,
        "archiver generic": archiver_generic,
        "archiver (profiles + generic)": archiver_full,
    }
    print(f"{len(pages)} pages, trafilatura {trafilatura.__version__}, "
          f"python {sys.version.split()[0]}")
    results = run(extractors, truth, pages)
    baseline = results[next(iter(results))]["ms_per_page"]
    for name, figures in results.items():
        print(f"{name:<46} P={figures['precision']:.3f}±{figures['precision_ci']:.3f} "
              f"R={figures['recall']:.3f}±{figures['recall_ci']:.3f} "
              f"F1={figures['f1']:.4f}±{figures['f1_ci']:.3f}  exact={figures['exact']:.3f}  "
              f"{figures['ms_per_page']:.1f} ms/page ({figures['ms_per_page'] / baseline:.2f}x)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
