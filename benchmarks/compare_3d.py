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
    python benchmarks/compare_3d.py --stage report           # the table of what is evaluated

A benchmark, not a test: about 5 CPU-minutes per (method, seed) for each stage.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

import sslequi.threads  # noqa: F401, E402  (OpenMP defaults, before torch loads)

os.environ.setdefault("WANDB_SILENT", "true")

from sslequi.evaluation.results import load_results  # noqa: E402
from sslequi.study import (  # noqa: E402
    DEFAULT_SEEDS,
    MULTI_SEED,
    Budget,
    add_probe_budget_arguments,
    discover_recipes,
    ensure_rendered,
    group_runs,
    headline_table,
    hypernetwork_change,
    load_average,
    metric_values,
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


def _mean(values: list[float]) -> float:
    return statistics.mean(values) if values else float("nan")


def _std(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else float("nan")


def study_checks(groups: dict[str, list[Path]], reference: dict[str, list[Path]]) -> str:
    """What the study shows, as measured lines: SIE's rotation gap over VICReg (both R²
    definitions, and as a fraction of the independent reference's gap), its equivariant
    part against its invariant part, top-1, the hypernetwork's movement, MRR against
    chance, and E-SimCLR's rot90 accuracy."""
    lines = []
    sie, vicreg = groups.get("sie", []), groups.get("vicreg", [])
    if sie and vicreg:
        for metric in ("r2_global", "r2_per_component"):
            gap = _mean(metric_values(sie, "rotation", metric)) - _mean(
                metric_values(vicreg, "rotation", metric)
            )
            text = f"SIE − VICReg rotation {metric}: {gap:+.3f}"
            ref_sie, ref_vic = reference.get("reference_sie"), reference.get("reference_vicreg")
            if ref_sie and ref_vic:
                ref_gap = _mean(metric_values(ref_sie, "rotation", metric)) - _mean(
                    metric_values(ref_vic, "rotation", metric)
                )
                seeds = min(len(ref_sie), len(ref_vic))
                if ref_gap > 0:
                    text += f" (reference_sie.py, {seeds} seeds: {ref_gap:+.3f}; ours/reference {gap / ref_gap:.2f})"
                else:
                    text += f" (reference_sie.py, {seeds} seeds: {ref_gap:+.3f}, no SIE gap)"
            lines.append(text)
        for metric in ("r2_global", "r2_per_component"):
            equi = _mean(metric_values(sie, "rotation", metric, "equivariant"))
            inv = _mean(metric_values(sie, "rotation", metric, "invariant"))
            lines.append(f"SIE rotation {metric}: equivariant part {equi:.3f}, invariant {inv:.3f}")
        top1 = {
            part: _mean(metric_values(sie, "linear", "top1", part))
            for part in ("full", "invariant", "equivariant")
        }
        lines.append(
            "top-1: SIE full {full:.3f} (invariant {invariant:.3f}, equivariant "
            "{equivariant:.3f}), VICReg {v:.3f}".format(
                **top1, v=_mean(metric_values(vicreg, "linear", "top1"))
            )
        )
        changes = [c for c in (hypernetwork_change(d) for d in sie) if c is not None]
        if changes:
            lines.append(
                "SIE hypernetwork ‖A − A₀‖/‖A₀‖: " + ", ".join(f"{c:.2f}" for c in changes)
            )
        mrr = metric_values(sie, "mrr", "mrr", "equivariant")
        if mrr:
            chance = next(
                r.floor
                for r in load_results(sie[0])
                if r.probe == "mrr" and r.metric == "mrr" and r.floor is not None
            )
            lines.append(
                f"SIE MRR {_mean(mrr):.3f} ± {_std(mrr):.3f} (chance {chance:.3f}; "
                f"{(_mean(mrr) - chance) / _std(mrr):.1f} seed stds above)"
            )
    for name in ("esimclr", "simclr"):
        if name in groups:
            acc = metric_values(groups[name], "rot90", "accuracy")
            lines.append(f"{name} rot90 accuracy {_mean(acc):.3f}")
    minimum = min(
        (_mean(metric_values(dirs, "linear", "top1")), name) for name, dirs in groups.items()
    )
    lines.append(f"lowest top-1: {minimum[1]} {minimum[0]:.3f} (chance 1/12 = 0.083)")
    return "\n".join(f"- {line}" for line in lines)


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
        "--stage",
        choices=("all", "pretrain", "evaluate", "report"),
        default="all",
        help="what to run (report: the table of the runs already evaluated)",
    )
    add_probe_budget_arguments(parser)
    parser.add_argument("--extra", nargs="*", default=[], help="Hydra overrides for every run")
    parser.add_argument(
        "--reference",
        type=Path,
        nargs="*",
        default=[Path("runs/reference_sie"), Path("runs/reference_vicreg")],
        help="benchmarks/reference_sie.py outputs to set beside the harness's rows",
    )
    args = parser.parse_args(argv)

    budget = Budget(
        args.steps, args.batch_size, args.seeds[0], args.probe_epochs, args.probe_min_steps
    )
    ensure_rendered(args.root, "small")
    stages = {"all": ("pretrain", "evaluate"), "report": ()}.get(args.stage, (args.stage,))
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
    if stages and "evaluate" not in stages:
        print(timing_summary(runs))
        return 0
    evaluated = {r.run_dir.resolve() for r in runs if (r.run_dir / "results.json").is_file()}
    groups = {
        name: [d for d in dirs if d.resolve() in evaluated]
        for name, dirs in group_runs(args.out).items()
        if any(d.resolve() in evaluated for d in dirs)
    }
    reference: dict[str, list[Path]] = {}
    for ref in args.reference:
        for run_dir in sorted(ref.glob("reference_*_s*")):  # finished runs, manifest or not
            if (run_dir / "results.json").is_file():
                name = run_dir.name.rsplit("_s", 1)[0]
                reference.setdefault(name, []).append(run_dir)
    table = headline_table({**groups, **reference})
    data = f"built-in 3D benchmark, small preset ({args.root.name}: 12 classes × 40 objects × 12 views, 64 px)"
    conditions = (
        f"{args.jobs} jobs × {args.threads} thread; {before} at start, {load_average()} at end"
    )
    text = (
        f"{table}\n\nProtocol: {protocol_line(budget, data, args.seeds)}\n\n"
        f"What it shows:\n{study_checks(groups, reference)}\n\n"
        f"CPU time per run (mean over seeds):\n{timing_summary(runs)}\n\nConditions: {conditions}\n"
    )
    print("\n" + text)
    (args.out / "summary.md").write_text(text)
    print(f"summary: {args.out / 'summary.md'}")
    print(f"full table (every probe, part and protocol column): {args.out / 'comparison.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
