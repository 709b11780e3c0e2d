"""CPU-scale 2D study: CARE against SimCLR on the built-in renders read as 2D images, every
``*_render2d_cpu`` recipe under one budget and several seeds, one table out (a thin script
over ``sslequi.study``, with ``benchmarks/compare_3d.py``'s seeds and summary conventions).

Protocol (the study budget): ``sslequi-data render3d --preset small`` (12 classes × 40
objects × 12 views, rendered into ``--root`` if missing) read by the ``render2d`` adapter:
every view of an object is one image with its class label, the objects' train/val split
kept (4,608 / 1,152 images), at 32 px. The ``<method>_render2d_cpu`` recipes: ResNet-18 at
width 1/8 with the CIFAR stem (64-d), CARE's InfoNCE views (and for CARE its chunk-shared
equivariance views, chunks of 16, λ 0.3), head 64 → 128 → 128, NT-Xent τ 0.5, Adam 3e-3; RotNet
(``rotnet_render2d_cpu``): the same backbone, every image in its four rotations, SGD 0.1
with §12's LR table; 300 steps × batch 64, one torch thread per run; seeds 0, 1, 2. Probes on
frozen eval-mode features: linear top-1 (size-chosen protocol, docs/evaluation.md), kNN,
4-fold rotation accuracy (rot90, evaluation.md §8), and the orthogonality probe (Procrustes
residual and Gram mismatch per augmentation family of CARE's group, on the backbone and the
unit projector output; floor = rows permuted).

    python benchmarks/compare_2d.py                          # care, simclr, rotnet; seeds 0-2
    python benchmarks/compare_2d.py --seeds 0 --steps 100
    python benchmarks/compare_2d.py --stage report           # the table of what is evaluated

A benchmark, not a test: roughly 5 (SimCLR) to 10 (CARE) CPU-minutes per (method, seed).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import sslequi.threads  # noqa: F401, E402  (OpenMP defaults, before torch loads)

os.environ.setdefault("WANDB_SILENT", "true")

from sslequi.evaluation.results import compare  # noqa: E402
from sslequi.study import (  # noqa: E402
    DEFAULT_SEEDS,
    Budget,
    StudyRun,
    add_probe_budget_arguments,
    ensure_rendered,
    group_runs,
    headline_table,
    load_average,
    metric_values,
    probe_overrides,
    run_study,
    shortened_heads,
    study_eval_config,
    timing_summary,
)

RECIPE_SUFFIX = "_render2d_cpu"
CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
MULTI_SEED = ("care", "simclr", "rotnet")
PROBES = ("linear", "knn", "orthogonality", "rot90")
HEADLINE = (
    ("linear", "top1", "full", "top-1"),
    ("knn", "top1", "full", "kNN top-1"),
    ("orthogonality", "residual_all", "projector", "ẑ residual (all)"),
    ("orthogonality", "residual_crop", "projector", "ẑ residual (crop)"),
    ("orthogonality", "residual_color_jitter", "projector", "ẑ residual (jitter)"),
    ("orthogonality", "residual_all", "full", "y residual (all)"),
    ("orthogonality", "gram_mismatch_all", "projector", "ẑ Gram mismatch (all)"),
    ("rot90", "accuracy", "full", "rot90 acc."),
)


def discover_recipes(config_dir: Path = CONFIG_DIR) -> dict[str, str]:
    """``method → recipe`` for every ``experiment/<method>_render2d_cpu.yaml``."""
    found = sorted((config_dir / "experiment").glob(f"*{RECIPE_SUFFIX}.yaml"))
    return {path.stem[: -len(RECIPE_SUFFIX)]: path.stem for path in found}


def _mean(values: Sequence[float]) -> float:
    return statistics.mean(values) if values else float("nan")


def _std(values: Sequence[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else float("nan")


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def evaluate_runs(
    run_dirs: Sequence[Path], seeds: Sequence[int], eval_overrides: dict[str, object]
) -> None:
    """The study's probes on every run directory; wall and CPU seconds go into each run's
    ``study_timing.json`` (as ``sslequi.study`` records them)."""
    from sslequi.evaluation.runner import evaluate_run

    for run_dir, seed in zip(run_dirs, seeds, strict=True):
        print(f"=== {run_dir.name}: evaluating {', '.join(PROBES)} ===", flush=True)
        cfg = study_eval_config(PROBES, seed, run_dir, **eval_overrides)
        start, cpu = time.perf_counter(), _cpu_seconds()
        evaluate_run(cfg, progress_print=lambda text: None)
        path = run_dir / "study_timing.json"
        record = json.loads(path.read_text()) if path.is_file() else {}
        record.update(eval_s=time.perf_counter() - start, eval_cpu_s=_cpu_seconds() - cpu)
        path.write_text(json.dumps(record, indent=2))


def study_checks(groups: dict[str, list[Path]]) -> str:
    """CARE against SimCLR: the projector residual's reduction and the top-1 difference in
    standard deviations of the per-seed difference; RotNet's rot90 accuracy (issue 13)."""
    lines = []
    rotations = metric_values(groups.get("rotnet", []), "rot90", "accuracy")
    if rotations:
        met = "met" if _mean(rotations) >= 0.9 else "not met"
        lines.append(
            f"RotNet rot90 accuracy {_mean(rotations):.3f}"
            + (f" ± {_std(rotations):.3f}" if len(rotations) > 1 else "")
            + f" over {len(rotations)} seed(s) (target ≥ 0.90: {met})"
        )
    care, simclr = groups.get("care", []), groups.get("simclr", [])
    if not (care and simclr):
        return "\n".join(f"- {line}" for line in [*lines, "(CARE vs SimCLR needs both runs)"])
    for part in ("projector", "full"):
        for family in ("all", "crop", "color_jitter", "blur", "flip", "grayscale"):
            metric = f"residual_{family}"
            ours = metric_values(care, "orthogonality", metric, part)
            base = metric_values(simclr, "orthogonality", metric, part)
            if not (ours and base):
                continue
            ratio = _mean(ours) / _mean(base)
            target = ""
            if part == "projector" and family == "all":
                target = f" (target ≥ 20 %: {'met' if ratio <= 0.8 else 'not met'})"
            lines.append(
                f"{part} residual ({family}): CARE {_mean(ours):.3f} ± {_std(ours):.3f}, "
                f"SimCLR {_mean(base):.3f} ± {_std(base):.3f}; CARE/SimCLR {ratio:.2f}, "
                f"CARE {1 - ratio:+.0%} below{target}"
            )
    top_care = metric_values(care, "linear", "top1")
    top_simclr = metric_values(simclr, "linear", "top1")
    paired = [a - b for a, b in zip(top_care, top_simclr, strict=False)]
    if paired:
        spread = _std(paired)
        text = f"top-1: CARE {_mean(top_care):.3f}, SimCLR {_mean(top_simclr):.3f}; difference "
        text += f"{_mean(paired):+.3f} (std of the per-seed difference {spread:.3f}"
        if spread == spread and spread > 0:
            text += f", {_mean(paired) / spread:+.1f} stds; target: not below by more than 2"
        lines.append(text + ")")
    return "\n".join(f"- {line}" for line in lines)


def protocol_line(budget: Budget, seeds: Sequence[int], root: Path) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"{stamp}; built-in renders read as 2D images (render2d, {root.name}, 32 px); the "
        "`<method>_render2d_cpu` recipes (ResNet-18 width 1/8, CIFAR stem, 64-d; head "
        "64 → 128 → 128; NT-Xent τ 0.5; CARE λ 0.3, chunks of 16; Adam 3e-3; RotNet: "
        f"linear rotation head, SGD 0.1 with §12's LR table); batch "
        f"{budget.batch_size}; {budget.steps} steps; seeds {', '.join(map(str, seeds))}; "
        "probes on frozen eval-mode features (linear: size-chosen protocol; orthogonality: "
        "CARE's augmentation group, 20 draws per family, n = 2d images per draw, floor = "
        f"rows permuted){shortened_heads(budget)}; val split."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    recipes = discover_recipes()
    parser.add_argument("--root", type=Path, default=Path("data/render3d_small"))
    parser.add_argument("--out", type=Path, default=Path("runs/compare_2d"))
    parser.add_argument("--methods", nargs="+", default=list(recipes), choices=list(recipes))
    parser.add_argument("--seeds", nargs="+", type=int, default=list(DEFAULT_SEEDS))
    parser.add_argument("--steps", type=int, default=300, help="optimizer steps per method")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--jobs", type=int, default=1, help="single-thread runs side by side")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads per run")
    parser.add_argument("--stage", choices=("all", "pretrain", "evaluate", "report"), default="all")
    parser.add_argument("--extra", nargs="*", default=[], help="Hydra overrides for every run")
    parser.add_argument(
        "--orthogonality-parts",
        nargs="+",
        default=["full", "projector"],
        help="representations the orthogonality probe scores",
    )
    parser.add_argument("--preset", default="small", help="render preset if --root is missing")
    add_probe_budget_arguments(parser)
    args = parser.parse_args(argv)

    budget = Budget(
        args.steps, args.batch_size, args.seeds[0], args.probe_epochs, args.probe_min_steps
    )
    ensure_rendered(args.root, args.preset)
    chosen = {name: recipes[name] for name in args.methods}
    before = load_average()
    extra = ("logger.mode=disabled", *args.extra)
    if args.stage in ("all", "pretrain"):
        run_study(
            chosen,
            args.root,
            args.out,
            budget,
            with_predictor=(),
            extra=extra,
            seeds=args.seeds,
            multi_seed=MULTI_SEED,
            jobs=args.jobs,
            stages=("pretrain",),
            threads=args.threads,
        )
    else:  # the manifest of the runs to evaluate or report
        run_study(chosen, args.root, args.out, budget, (), extra, args.seeds, MULTI_SEED, stages=())
    groups = group_runs(args.out)
    manifest = json.loads((args.out / "study.json").read_text())
    if args.stage in ("all", "evaluate"):
        shortened = probe_overrides(budget, PROBES).get("probe", {})
        overrides = {
            "probe": {"orthogonality": {"parts": list(args.orthogonality_parts)}, **shortened}
        }
        dirs = [args.out / entry["run_dir"] for entry in manifest]
        evaluate_runs(dirs, [entry["seed"] for entry in manifest], overrides)
    evaluated = {
        name: [d for d in dirs if (d / "results.json").is_file()] for name, dirs in groups.items()
    }
    evaluated = {name: dirs for name, dirs in evaluated.items() if dirs}
    if not evaluated:
        print("nothing evaluated yet")
        return 0
    compare(
        [d for dirs in evaluated.values() for d in dirs], out=args.out / "comparison", echo=False
    )
    table = headline_table(evaluated, columns=HEADLINE)
    runs = [StudyRun(e["name"], e["seed"], args.out / e["run_dir"], 0.0, 0.0) for e in manifest]
    text = (
        f"{table}\n\nProtocol: {protocol_line(budget, args.seeds, args.root)}\n\n"
        f"What it shows:\n{study_checks(evaluated)}\n\n"
        f"CPU time per run (mean over seeds):\n{timing_summary(runs)}\n\n"
        f"Conditions: {args.jobs} jobs × {args.threads} thread; {before} at start, "
        f"{load_average()} at end\n"
    )
    print("\n" + text)
    (args.out / "summary.md").write_text(text)
    print(f"summary: {args.out / 'summary.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
