"""Compare evaluated runs: ``python eval/compare.py RUN_DIR [RUN_DIR ...] [--out PATH]``.

Prints one Markdown table with the protocol columns (and writes ``PATH.md``/``PATH.csv``);
a thin script over ``sslequi.evaluation.results.compare``.
"""

from __future__ import annotations

import argparse
import sys

import sslequi.threads  # noqa: F401  (OpenMP defaults, before torch loads)
from sslequi.evaluation.results import compare


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="run directories holding results.json")
    parser.add_argument("--out", default=None, help="write <out>.md/.csv/.png (or into a dir)")
    parser.add_argument("--skip-missing", action="store_true", help="skip unevaluated runs")
    args = parser.parse_args(argv)
    try:
        compare(args.runs, out=args.out, skip_missing=args.skip_missing)
    except (FileNotFoundError, ValueError) as error:
        print(f"compare: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
