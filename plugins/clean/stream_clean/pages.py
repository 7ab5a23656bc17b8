"""Measuring article extraction from web pages: word-level recall and precision.

``python -m stream_clean.pages [DIR]`` (default ``tests/data/pages``) reads each
``NAME.html`` and its truth ``NAME.txt`` (the article's paragraphs), extracts the article
twice, with trafilatura alone and with trafilatura then the cleaner (what the clean plugin
does with an input's ``html``), and prints a table: over all pages, the share of the
truth's words found (recall) and of the extracted words that are the truth's (precision),
as multisets of lower-cased words; and per layout (the name's second part).
"""

from __future__ import annotations

import argparse
import re
from collections import Counter, defaultdict
from pathlib import Path

from .cleaner import clean
from .extract import extract
from .rules import DEFAULT_RULES, load_rules

__all__ = ["main", "score_pages", "words"]

_WORD = re.compile(r"\w+")


def words(text: str) -> Counter[str]:
    return Counter(w.lower() for w in _WORD.findall(text))


def _raw(html: str) -> str:
    import trafilatura

    document = trafilatura.bare_extraction(html, with_metadata=True, include_comments=False, include_tables=False)
    return (document.text or "") if document is not None else ""


def score_pages(directory: Path) -> dict[str, dict[str, Counter[str]]]:
    """``{arm: {layout or "all": Counter(truth=, extracted=, common=)}}``."""
    rules = load_rules(DEFAULT_RULES)
    out: dict[str, dict[str, Counter[str]]] = {"trafilatura": defaultdict(Counter),
                                               "trafilatura + cleaner": defaultdict(Counter)}
    for page in sorted(directory.glob("*.html")):
        truth = words(page.with_suffix(".txt").read_text())
        html = page.read_text()
        found = extract(html)
        cleaned = clean(found.text, rules).text if found else ""
        layout = page.stem.split("-")[1] if page.stem.count("-") >= 2 else "page"
        for arm, text in (("trafilatura", _raw(html)), ("trafilatura + cleaner", cleaned)):
            got = words(text)
            for key in ("all", layout):
                counts = out[arm][key]
                counts["pages"] += 1
                counts["truth"] += sum(truth.values())
                counts["extracted"] += sum(got.values())
                counts["common"] += sum((truth & got).values())
    return out


def rates(counts: Counter[str]) -> tuple[float, float]:
    """``(recall, precision)``."""
    recall = counts["common"] / counts["truth"] if counts["truth"] else 1.0
    precision = counts["common"] / counts["extracted"] if counts["extracted"] else 1.0
    return recall, precision


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stream_clean.pages", description=__doc__.split("\n")[0])
    parser.add_argument("directory", nargs="?", default="tests/data/pages", type=Path)
    args = parser.parse_args(argv)
    results = score_pages(args.directory)
    print("| arm | pages | words of truth | recall | precision |\n|---|---|---|---|---|")
    for arm, by_layout in results.items():
        recall, precision = rates(by_layout["all"])
        print(f"| {arm} | {by_layout['all']['pages']} | {by_layout['all']['truth']} | {recall:.3f} | {precision:.3f} |")
    print("\n| layout | pages | recall (trafilatura + cleaner) | precision |\n|---|---|---|---|")
    for layout, counts in sorted(results["trafilatura + cleaner"].items()):
        if layout != "all":
            recall, precision = rates(counts)
            print(f"| {layout} | {counts['pages']} | {recall:.3f} | {precision:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
