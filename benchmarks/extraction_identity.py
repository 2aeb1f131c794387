"""Check that a change leaves archiver's extraction output byte-identical.

Runs ``extract_html`` on every page of every dataset the extraction benchmark
reads (``../shared/realpages`` and the Zyte benchmark), with the page's URL
where the dataset knows it and a fixed retrieval time, and records for each
page everything the extraction returns: the canonical text as rendered, the
profile and its version, the download links and ``date_iso`` (or the error).

    python benchmarks/extraction_identity.py --dump before.json      # on the old code
    python benchmarks/extraction_identity.py --compare before.json   # on the new code

``--compare`` prints every page whose output differs and exits 1 when any
does, 0 when all are identical. The dump is a working file: never commit it.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from extraction import DATASETS, SHARED, load  # noqa: E402

from archiver.capture.extract import extract_html  # noqa: E402
from archiver.errors import ExtractionError  # noqa: E402

RETRIEVED = datetime(2026, 1, 1, tzinfo=timezone.utc)


def _page_url(shared: Path, dataset: str, key: str) -> str | None:
    expected = shared / "realpages" / dataset / key / "expected.json"
    if dataset == "zyte" or not expected.is_file():
        return None
    return json.loads(expected.read_text(encoding="utf-8")).get("url")


def outputs(shared: Path, datasets: list[str]) -> dict[str, object]:
    found: dict[str, object] = {}
    for dataset in datasets:
        for case in load(dataset, shared):
            url = _page_url(shared, dataset, case.key)
            for with_url in sorted({None, url}, key=lambda value: value or ""):
                name = f"{dataset}/{case.key}" + (" (url)" if with_url else "")
                try:
                    extraction = extract_html(case.html, url=with_url, retrieved=RETRIEVED)
                except ExtractionError as exc:
                    found[name] = {"error": str(exc)}
                    continue
                found[name] = {"text": extraction.text.render(), "extractor": extraction.extractor,
                               "version": extraction.extractor_version, "links": extraction.links,
                               "date_iso": extraction.date_iso}
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=SHARED, help="the shared data folder")
    parser.add_argument("--dataset", action="append", choices=DATASETS, help="only these datasets")
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--dump", type=Path, help="write every page's output to this file")
    action.add_argument("--compare", type=Path, help="compare every page's output with this dump")
    args = parser.parse_args()
    found = outputs(args.shared, args.dataset or list(DATASETS))
    if args.dump:
        args.dump.write_text(json.dumps(found, ensure_ascii=False, indent=1, sort_keys=True), encoding="utf-8")
        print(f"{len(found)} outputs written to {args.dump}")
        return 0
    before = json.loads(args.compare.read_text(encoding="utf-8"))
    differing = sorted(name for name in before.keys() | found.keys() if before.get(name) != found.get(name))
    for name in differing:
        print(f"differs: {name}")
    print(f"{len(found)} outputs, {len(differing)} differ from {args.compare}")
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())
