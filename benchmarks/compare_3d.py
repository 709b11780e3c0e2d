"""CPU-scale comparison on the built-in 3D benchmark (issue 6): VICReg, SimCLR, SIE, EquiMod and
E-SimCLR with the same small backbone, image size, batch and step budget, evaluated with the
evaluation suite, one table out.

Protocol (what every method gets; printed and saved with the table):
- data: ``sslequi-data render3d --preset small`` (12 classes × 40 objects × 12 views, 64 px),
  rendered into ``--root`` if it is missing; two distinct renders per object, no 2D
  augmentation (the 3DIEBench protocol);
- pretraining: the ``<method>_3diebench_cpu`` recipes (configs/experiment): ResNet-18 at width
  1/8 (64-d features, ImageNet stem), 64 px, Adam 1e-3 constant, batch ``--batch-size``, ``--steps`` steps,
  seed ``--seed``; method coefficients as in the paper recipes (SIE 10/0.45/10/1, VICReg
  10/10/1, SimCLR τ 0.1, EquiMod SimCLR flavour τ 0.1, E-SimCLR = that SimCLR + 0.4 ×
  rotation CE on a half-size crop of view 1);
- evaluation (``sslequi.evaluation``): linear top-1 on the full representation; rotation
  (relative quaternion from the pair of features, MLP) and colour probes with both R²
  definitions and their constant floors, early-stopped on a held-out slice of the
  *training* objects; MRR / H@k for methods with a predictor; parts as each method declares.

Run: ``python benchmarks/compare_3d.py [--steps 300] [--root data/render3d_small] [--out runs/compare_3d]``.
A benchmark, not a test: it takes about ``len(methods) × (pretrain + eval)`` minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

RECIPES: dict[str, str] = {
    "vicreg": "vicreg_3diebench_cpu",
    "simclr": "simclr_3diebench_cpu",
    "sie": "sie_3diebench_cpu",
    "equimod": "equimod_3diebench_cpu",
    "esimclr": "esimclr_3diebench_cpu",
}
WITH_PREDICTOR = ("sie", "equimod")
CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"


@dataclass
class Budget:
    steps: int
    batch_size: int
    seed: int
    probe_epochs: int


def render_if_missing(root: Path) -> None:
    """Render the ``small`` preset into ``root`` unless it is already there."""
    if root.is_dir() and any(root.iterdir()):
        return
    print(f"rendering the small 3D benchmark into {root} …", flush=True)
    command = ["sslequi-data", "render3d", "--preset", "small", "--out", str(root)]
    subprocess.run(command, check=True)


def pretrain_one(
    name: str, root: Path, out: Path, budget: Budget, extra: list[str]
) -> tuple[Path, float]:
    """Pretrain ``name`` with its CPU recipe; return the run directory and wall seconds."""
    from hydra import compose, initialize_config_dir

    from sslequi.config import register_configs
    from sslequi.train.run import pretrain

    register_configs()
    run_dir = out / name
    overrides = [
        f"experiment={RECIPES[name]}",
        f"dataset.root={root}",
        f"train.steps={budget.steps}",
        f"train.batch_size={budget.batch_size}",
        f"seed={budget.seed}",
        f"run_dir={run_dir}",
        "train.device=cpu",
        "train.resume=never",
        "logger.mode=disabled",
        *extra,
    ]
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        cfg = compose("pretrain", overrides=overrides)
    start = time.perf_counter()
    path = pretrain(cfg)
    return Path(path), time.perf_counter() - start


def evaluate_one(name: str, run_dir: Path, budget: Budget) -> float:
    """Run the evaluation suite on ``run_dir``; return wall seconds."""
    from sslequi.evaluation.runner import eval_config_from_dict, evaluate_run

    probes = ["linear", "rotation", "color"] + (["mrr"] if name in WITH_PREDICTOR else [])
    early = {"early_stopping": True, "epochs": budget.probe_epochs}
    cfg = eval_config_from_dict(
        {
            "run": str(run_dir),
            "probes": probes,
            "device": "cpu",
            "wandb": False,
            "seed": budget.seed,
            "probe": {
                "linear": {"epochs": budget.probe_epochs},
                "rotation": early,
                "color": early,
            },
        }
    )
    start = time.perf_counter()
    evaluate_run(cfg, progress_print=lambda text: print(text, flush=True))
    return time.perf_counter() - start


def summary_table(run_dirs: dict[str, Path]) -> str:
    """Headline numbers per method (full representation, val split) as Markdown."""
    from sslequi.evaluation.results import latest, load_results

    wanted = [
        ("linear", "top1", "top-1"),
        ("rotation", "r2_global", "rot R² global"),
        ("rotation", "r2_per_component", "rot R² per-comp."),
        ("color", "r2_global", "colour R² global"),
        ("mrr", "mrr", "MRR"),
        ("mrr", "hit@1", "H@1"),
    ]
    header = ["method", *[label for _, _, label in wanted]]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    floors: dict[str, str] = {}
    for name, run_dir in run_dirs.items():
        rows = [r for r in latest(load_results(run_dir)) if r.split == "val"]
        cells = [name]
        for probe, metric, label in wanted:
            match = [
                r
                for r in rows
                if r.probe == probe
                and r.metric == metric
                and r.protocol.part in ("full", "equivariant")
            ]
            # predictor metrics live on the equivariant part; probes read the full representation
            match.sort(
                key=lambda r: r.protocol.part != ("equivariant" if probe == "mrr" else "full")
            )
            if not match:
                cells.append("–")
                continue
            row = match[0]
            cells.append(f"{row.value:.3f}")
            if row.floor is not None:
                floors[label] = f"{row.floor:.3f}"
        lines.append("| " + " | ".join(cells) + " |")
    if floors:
        lines.append("")
        lines.append(
            "Constant-predictor floors / chance: "
            + ", ".join(f"{k} {v}" for k, v in floors.items())
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--root", type=Path, default=Path("data/render3d_small"), help="rendered small preset"
    )
    parser.add_argument("--out", type=Path, default=Path("runs/compare_3d"))
    parser.add_argument("--methods", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    parser.add_argument("--steps", type=int, default=300, help="optimizer steps per method")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--probe-epochs", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument(
        "overrides",
        nargs="*",
        help="extra Hydra overrides for every method, e.g. backbone.stem=cifar",
    )
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)  # 1: no oversubscription stalls on shared CPUs
    budget = Budget(args.steps, args.batch_size, args.seed, args.probe_epochs)
    render_if_missing(args.root)
    args.out.mkdir(parents=True, exist_ok=True)
    run_dirs: dict[str, Path] = {}
    timings: dict[str, dict[str, float]] = {}
    for name in args.methods:
        print(
            f"\n=== {name}: pretraining {budget.steps} steps (recipe {RECIPES[name]}) ===",
            flush=True,
        )
        run_dir, train_s = pretrain_one(
            name, args.root.resolve(), args.out.resolve(), budget, args.overrides
        )
        print(f"=== {name}: evaluating {run_dir} ===", flush=True)
        eval_s = evaluate_one(name, run_dir, budget)
        run_dirs[name] = run_dir
        timings[name] = {"pretrain_s": round(train_s, 1), "eval_s": round(eval_s, 1)}

    from sslequi.evaluation.results import compare

    compare(list(run_dirs.values()), out=args.out / "comparison", echo=False)
    table = summary_table(run_dirs)
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    protocol = (
        f"{stamp}; small preset (12 classes × 40 objects × 12 views, 64 px); "
        f"ResNet-18 width 1/8, ImageNet stem (64-d); Adam 1e-3; batch {budget.batch_size}; "
        f"{budget.steps} steps; seed {budget.seed}; probes: linear {budget.probe_epochs} ep, "
        f"rotation/colour MLP ≤ {budget.probe_epochs} ep early-stopped on held-out train objects; "
        "val split." + (f" Overrides: {' '.join(args.overrides)}." if args.overrides else "")
    )
    text = f"{table}\n\nProtocol: {protocol}\n"
    print("\n" + text)
    (args.out / "summary.md").write_text(text)
    (args.out / "timings.json").write_text(json.dumps(timings, indent=2))
    print(f"full table (every probe, part and protocol column): {args.out / 'comparison.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
