"""CPU-scale method study on the built-in 3D benchmark: every ``*_3diebench_cpu`` recipe under
one budget, evaluated by one probe protocol, one table out (a thin script over ``sslequi.study``).

Protocol (the study budget): ``sslequi-data render3d --preset small`` (12 classes × 40
objects × 12 views, 64 px; rendered into ``--root`` if missing), two distinct renders per
object and no 2D augmentation (the 3DIEBench protocol); the ``<method>_3diebench_cpu``
recipes (ResNet-18 at width 1/4, 128-d, ImageNet stem; ~512-wide projectors per part;
norm-preserving hypernetwork init), 300 optimiser steps × batch 128, one torch thread per
method; seeds 0, 1, 2 for VICReg, SimCLR, SIE, EquiMod and E-SimCLR, the first seed for
every other recipe (marked †). Probes on frozen eval-mode features with the size-chosen
protocol (docs/evaluation.md): linear top-1, rotation and colour R² (both definitions,
with floors), rot90 accuracy, MRR / H@k where there is a predictor; every declared part.

    python benchmarks/compare_3d.py                          # the whole study, 2 jobs
    python benchmarks/compare_3d.py --methods vicreg sie --seeds 0
    python benchmarks/compare_3d.py --stage evaluate         # re-score trained runs

A benchmark, not a test: about 5 CPU-minutes per (method, seed) for each stage.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import sslequi.threads  # noqa: F401, E402  (OpenMP defaults, before torch loads)

os.environ.setdefault("WANDB_SILENT", "true")

from sslequi.study import (  # noqa: E402
    DEFAULT_SEEDS,
    MULTI_SEED,
    Budget,
    discover_recipes,
    ensure_rendered,
    group_runs,
    headline_table,
    load_average,
    protocol_line,
    run_study,
    timing_summary,
)

# The multi-seed methods first, so a partial study has their rows.
RECIPES = dict(
    sorted(
        discover_recipes().items(),
        key=lambda item: (MULTI_SEED.index(item[0]) if item[0] in MULTI_SEED else 99, item[0]),
    )
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("data/render3d_small"))
    parser.add_argument("--out", type=Path, default=Path("runs/compare_3d"))
    parser.add_argument("--methods", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    parser.add_argument("--seeds", nargs="+", type=int, default=list(DEFAULT_SEEDS))
    parser.add_argument("--steps", type=int, default=300, help="optimizer steps per method")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--jobs", type=int, default=2, help="single-thread runs side by side")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads per run")
    parser.add_argument(
        "--stage", choices=("all", "pretrain", "evaluate"), default="all", help="what to run"
    )
    parser.add_argument("--extra", nargs="*", default=[], help="Hydra overrides for every run")
    args = parser.parse_args(argv)

    budget = Budget(args.steps, args.batch_size, args.seeds[0])
    ensure_rendered(args.root, "small")
    stages = ("pretrain", "evaluate") if args.stage == "all" else (args.stage,)
    before = load_average()
    runs = run_study(
        {name: RECIPES[name] for name in args.methods},
        args.root,
        args.out,
        budget,
        extra=("logger.mode=disabled", *args.extra),
        seeds=args.seeds,
        multi_seed=MULTI_SEED,
        jobs=args.jobs,
        stages=stages,
        threads=args.threads,
    )
    timings = {
        r.run_dir.name: json.loads((r.run_dir / "study_timing.json").read_text()) for r in runs
    }
    (args.out / "timings.json").write_text(json.dumps(timings, indent=2))
    if "evaluate" not in stages:
        print(timing_summary(runs))
        return 0
    table = headline_table(group_runs(args.out))
    data = f"built-in 3D benchmark, small preset ({args.root.name}: 12 classes × 40 objects × 12 views, 64 px)"
    conditions = (
        f"{args.jobs} jobs × {args.threads} thread; {before} at start, {load_average()} at end"
    )
    text = (
        f"{table}\n\nProtocol: {protocol_line(budget, data, args.seeds)}\n\n"
        f"CPU time per run (mean over seeds):\n{timing_summary(runs)}\n\nConditions: {conditions}\n"
    )
    print("\n" + text)
    (args.out / "summary.md").write_text(text)
    print(f"summary: {args.out / 'summary.md'}")
    print(f"full table (every probe, part and protocol column): {args.out / 'comparison.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
