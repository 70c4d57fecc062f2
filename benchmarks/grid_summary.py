"""Print the committed one-class grid as one Markdown table, or write it into the README.

    .venv/bin/python benchmarks/grid_summary.py                     # print it
    .venv/bin/python benchmarks/grid_summary.py --update benchmarks/README.md

The README's table sits between two marker lines and is checked against the committed file by
tests/test_benchmark.py, so it says what the file holds, to the digit.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import numpy as np

from companion.benchmark import MODELS, PUBLISHED, PUBLISHED_MEANS, markdown_summary, read_rows

RESULTS = Path(__file__).parent / "results" / "one_class.csv"
BEGIN, END = "<!-- grid summary: begin -->", "<!-- grid summary: end -->"


def grid_table(path=RESULTS) -> str:
    headlines = {name: model.defaults()["score"] for name, model in MODELS.items()}
    published = {dataset: {**{name: float(np.mean(values)) for name, values in table.items()},
                           **PUBLISHED_MEANS.get(dataset, {})}
                 for dataset, table in PUBLISHED.items()}
    return markdown_summary(read_rows(path), headlines, published)


def readme_table(readme: str) -> str:
    """The table between the README's markers."""
    match = re.search(re.escape(BEGIN) + r"\n(.*?)" + re.escape(END), readme, re.DOTALL)
    if match is None:
        raise SystemExit(f"no {BEGIN} ... {END} block in the README")
    return match.group(1).rstrip("\n")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--update", type=Path, help="README whose marked table to rewrite")
    args = parser.parse_args(argv)
    table = grid_table()
    if args.update is None:
        print(table)
        return 0
    text = args.update.read_text(encoding="utf-8")
    readme_table(text)  # the markers must be there
    text = re.sub(re.escape(BEGIN) + r"\n.*?" + re.escape(END),
                  lambda _: f"{BEGIN}\n{table}\n{END}", text, flags=re.DOTALL)
    args.update.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
