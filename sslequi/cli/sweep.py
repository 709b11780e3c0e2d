"""``sslequi-sweep``: follow a submitted sweep from its manifest.

    sslequi-sweep status runs/default/<sweep id>/sweep.json    # one line per run
    sslequi-sweep collect runs/default/<sweep id>              # one results table

``status`` combines each run's ``run.json`` with the scheduler (``sacct`` on SLURM, the
job's process locally): queued, running, requeued, completed or failed. ``collect`` gathers
the completed runs' evaluation results with ``sslequi.evaluation.results.compare``. A
MANIFEST argument may be the ``sweep.json`` file or the sweep directory.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict

from sslequi.launcher.sweeps import (
    ManifestError,
    SweepManifest,
    collect,
    format_status,
    status_counts,
    sweep_status,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sslequi-sweep", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    status = commands.add_parser("status", help="state of every run of a sweep")
    status.add_argument("manifest", help="sweep.json or the sweep directory")
    status.add_argument("--json", action="store_true", help="print JSON instead of a table")
    gather = commands.add_parser("collect", help="results of the completed runs in one table")
    gather.add_argument("manifest", help="sweep.json or the sweep directory")
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
    return 1 if status_counts(statuses).get("failed") else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        manifest = SweepManifest.read(args.manifest)
        if args.command == "status":
            return _status(manifest, args.json)
        collect(manifest, out=args.out, include_unfinished=args.include_unfinished)
        return 0
    except (ManifestError, FileNotFoundError) as error:
        print(f"sslequi-sweep: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
