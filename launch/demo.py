"""The end-to-end demo (README "Quick start"): render the built-in 3D benchmark, pretrain
VICReg and SIE on it for a few CPU minutes each, run the probes and print one comparison
table (a thin script over ``sslequi.study``).

    python launch/demo.py                                  # small preset, 300 steps each
    python launch/demo.py --steps 100 --methods vicreg sie simclr
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("WANDB_SILENT", "true")  # the offline wandb run is still written
# Idle OpenMP threads sleep instead of spinning: on a busy 2-core machine spinning threads
# slowed training ~30× here. It must be set before torch starts its thread pool.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from sslequi.study import (  # noqa: E402
    RECIPES,
    WITH_PREDICTOR,
    Budget,
    ensure_rendered,
    headline_table,
    protocol_line,
    run_study,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("data/render3d_small"))
    parser.add_argument("--out", type=Path, default=Path("runs/demo"))
    parser.add_argument("--methods", nargs="+", default=["vicreg", "sie"], choices=list(RECIPES))
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--probe-epochs", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    budget = Budget(args.steps, args.batch_size, args.seed, args.probe_epochs)
    ensure_rendered(args.root, "small")
    runs = run_study(
        {name: RECIPES[name] for name in args.methods}, args.root, args.out, budget, WITH_PREDICTOR
    )
    print("\n" + headline_table({r.name: r.run_dir for r in runs}))
    print(f"\nProtocol: {protocol_line(budget, 'built-in 3D benchmark, small preset')}")
    for run in runs:
        print(
            f"  {run.name}: pretrain {run.pretrain_s:.0f} s, eval {run.eval_s:.0f} s, {run.run_dir}"
        )
    print(f"Full table with protocol columns: {args.out / 'comparison.md'} (+ .csv, .png)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
