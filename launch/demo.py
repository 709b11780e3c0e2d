"""The end-to-end demo (README "Quick start"): render the built-in 3D benchmark, pretrain
VICReg and SIE on it side by side (the cores shared between them, the study budget: 300 steps × batch
128 at 64 px), run the linear, rotation, colour, rot90 and MRR probes under the small-set
protocol, and print one comparison table (a thin script over ``sslequi.study``).

    python launch/demo.py                                  # small preset, 300 steps each
    python launch/demo.py --steps 100 --methods vicreg sie simclr
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from sslequi.threads import threads_per_job  # noqa: E402  (OpenMP defaults, before torch)

os.environ.setdefault("WANDB_SILENT", "true")  # the offline wandb run is still written

from sslequi.study import (  # noqa: E402
    Budget,
    add_probe_budget_arguments,
    discover_recipes,
    ensure_rendered,
    headline_table,
    protocol_line,
    run_study,
)

RECIPES = discover_recipes()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("data/render3d_small"))
    parser.add_argument("--out", type=Path, default=Path("runs/demo"))
    parser.add_argument("--methods", nargs="+", default=["vicreg", "sie"], choices=list(RECIPES))
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=2, help="methods trained side by side")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads per job (default: $OMP_NUM_THREADS if set, else the cores shared "
        "out between the jobs)",
    )
    add_probe_budget_arguments(parser)
    parser.add_argument("--extra", nargs="*", default=[], help="Hydra overrides for every run")
    args = parser.parse_args(argv)
    threads = threads_per_job(args.jobs, args.threads)
    budget = Budget(args.steps, args.batch_size, args.seed, args.probe_epochs, args.probe_min_steps)
    ensure_rendered(args.root, "small")
    runs = run_study(
        {name: RECIPES[name] for name in args.methods},
        args.root,
        args.out,
        budget,
        extra=tuple(args.extra),
        seeds=(args.seed,),
        jobs=args.jobs,
        threads=threads,
    )
    print("\n" + headline_table({r.name: r.run_dir for r in runs}))
    print(f"\nProtocol: {protocol_line(budget, 'built-in 3D benchmark, small preset')}")
    for run in runs:
        print(
            f"  {run.name}: pretrain {run.pretrain_cpu_s / 60:.1f} CPU-min, evaluate "
            f"{run.eval_cpu_s / 60:.1f} CPU-min, {run.run_dir}"
        )
    print(f"Full table with protocol columns: {args.out / 'comparison.md'} (+ .csv, .png)")
    print("What the numbers mean (floors, R² definitions, protocols): docs/evaluation.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
