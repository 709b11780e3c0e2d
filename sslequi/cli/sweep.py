"""``sslequi-sweep``: follow, evaluate and collect a sweep from its folder.

    sslequi-sweep status runs/sweeps/<sweep id>                 # one line per run
    sslequi-sweep evaluate runs/sweeps/<sweep id> probes=[linear,rotation,color]
    sslequi-sweep collect runs/sweeps/<sweep id>                # one results table

``status`` combines each run's ``run.json`` with the scheduler (``sacct`` on SLURM, the
job's process locally): queued, running, requeued, completed or failed, the last logged
step, and the evaluation state. ``evaluate`` evaluates the completed runs with
``sslequi-eval``'s options (after the launcher's ``launcher.eval_*`` ones), skipping and
listing failed and unfinished runs and runs already evaluated (``--force`` re-evaluates).
``collect`` compares the evaluated runs with ``sslequi.evaluation.results.compare``. SWEEP
is the sweep directory or its ``sweep.json``; a folder of runs without a manifest (an
in-process ``-m`` sweep, the demo's output) works too.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict

import sslequi.threads  # noqa: F401  (OpenMP defaults, before torch loads)
from sslequi.config import ConfigError
from sslequi.launcher.sweeps import (
    ManifestError,
    SweepManifest,
    collect,
    evaluate_sweep,
    format_outcomes,
    format_status,
    load_sweep,
    status_counts,
    sweep_status,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sslequi-sweep", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    status = commands.add_parser("status", help="state of every run of a sweep")
    status.add_argument("manifest", metavar="SWEEP", help="sweep directory or its sweep.json")
    status.add_argument("--json", action="store_true", help="print JSON instead of a table")
    evaluate = commands.add_parser("evaluate", help="evaluate the sweep's completed runs")
    evaluate.add_argument("manifest", metavar="SWEEP", help="sweep directory or its sweep.json")
    evaluate.add_argument(
        "overrides", nargs="*", help="sslequi-eval options, e.g. probes=[linear,rotation]"
    )
    evaluate.add_argument("--force", action="store_true", help="re-evaluate evaluated runs")
    gather = commands.add_parser("collect", help="results of the evaluated runs in one table")
    gather.add_argument("manifest", metavar="SWEEP", help="sweep directory or its sweep.json")
    gather.add_argument("--out", default=None, help="output directory (default: <sweep>/results)")
    gather.add_argument(
        "--include-unfinished", action="store_true", help="also collect runs not completed yet"
    )
    return parser


def _status(manifest: SweepManifest, as_json: bool) -> int:
    statuses = sweep_status(manifest)
    if as_json:
        rows = [
            {**asdict(s), "run": {"index": s.run.index, "run_dir": s.run.run_dir}} for s in statuses
        ]
        print(json.dumps({"sweep_id": manifest.sweep_id, "runs": rows}, indent=2))
    else:
        print(format_status(manifest, statuses))
        print(f"runs: {manifest.sweep_dir}")
    return 1 if status_counts(statuses).get("failed") else 0


def _evaluate(manifest: SweepManifest, overrides: Sequence[str], force: bool) -> int:
    outcomes = evaluate_sweep(manifest, overrides, force=force)
    print(f"sweep {manifest.sweep_id}: evaluation")
    print(format_outcomes(manifest, outcomes))
    if any(outcome.state == "evaluated" or "already" in outcome.detail for outcome in outcomes):
        print()
        collect(manifest)
    return 1 if any(outcome.state == "failed" for outcome in outcomes) else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        manifest = load_sweep(args.manifest)
        if args.command == "status":
            return _status(manifest, args.json)
        if args.command == "evaluate":
            return _evaluate(manifest, args.overrides, args.force)
        collect(manifest, out=args.out, include_unfinished=args.include_unfinished)
        return 0
    except (ManifestError, ConfigError, FileNotFoundError) as error:
        print(f"sslequi-sweep: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
