"""CPU-scale comparison on the built-in 3D benchmark (issue 6): VICReg, SimCLR, SIE, EquiMod and
E-SimCLR with the same small backbone, image size, batch and step budget, evaluated with the
evaluation suite, one table out (a thin script over ``sslequi.study``).

Protocol: ``sslequi-data render3d --preset small`` (12 classes × 40 objects × 12 views,
64 px; rendered into ``--root`` if missing), two distinct renders per object and no 2D
augmentation (the 3DIEBench protocol); the ``<method>_3diebench_cpu`` recipes (ResNet-18 at
width 1/8, ImageNet stem, 64 px, Adam 1e-3 constant; SIE 10/0.45/10/1, VICReg 10/10/1,
SimCLR τ 0.1, EquiMod SimCLR flavour, E-SimCLR = that SimCLR + 0.4 × rotation CE on a
half-size crop of view 1); linear top-1, rotation and colour probes with both R²
definitions and their floors (early-stopped on held-out *training* objects), MRR / H@1
where there is a predictor.

    python benchmarks/compare_3d.py [--steps 300] [--root data/render3d_small] [--out runs/compare_3d]

A benchmark, not a test: about ``len(methods) × (pretrain + eval)`` minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sslequi.study import (
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
    parser.add_argument("--out", type=Path, default=Path("runs/compare_3d"))
    parser.add_argument("--methods", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    parser.add_argument("--steps", type=int, default=300, help="optimizer steps per method")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--probe-epochs", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)  # 1: no oversubscription stalls on shared CPUs
    budget = Budget(args.steps, args.batch_size, args.seed, args.probe_epochs)
    ensure_rendered(args.root, "small")
    runs = run_study(
        {name: RECIPES[name] for name in args.methods},
        args.root,
        args.out,
        budget,
        WITH_PREDICTOR,
        extra=("logger.mode=disabled",),
    )
    table = headline_table({r.name: r.run_dir for r in runs})
    data = "small preset (12 classes × 40 objects × 12 views, 64 px)"
    text = f"{table}\n\nProtocol: {protocol_line(budget, data)}\n"
    print("\n" + text)
    (args.out / "summary.md").write_text(text)
    timings = {
        r.name: {"pretrain_s": round(r.pretrain_s, 1), "eval_s": round(r.eval_s, 1)} for r in runs
    }
    (args.out / "timings.json").write_text(json.dumps(timings, indent=2))
    print(f"full table (every probe, part and protocol column): {args.out / 'comparison.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
