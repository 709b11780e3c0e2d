"""A method study on the built-in 3D benchmark: render, pretrain several methods under one
budget, evaluate them with one protocol, and print one headline table.

The README demo (``launch/demo.py``) and the CPU comparison (``benchmarks/compare_3d.py``)
are thin scripts over this module, so both report numbers the same way.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from sslequi.evaluation.results import ResultRow, compare, latest, load_results

# The CPU recipes (configs/experiment/<recipe>.yaml) of the methods a study can compare.
RECIPES: dict[str, str] = {
    "vicreg": "vicreg_3diebench_cpu",
    "sie": "sie_3diebench_cpu",
    "simclr": "simclr_3diebench_cpu",
    "equimod": "equimod_3diebench_cpu",
    "esimclr": "esimclr_3diebench_cpu",
}
WITH_PREDICTOR = ("sie", "equimod")  # scored with MRR / H@k as well

SPLIT_FILES = ("train_images.npy", "val_images.npy", "train_labels.npy", "val_labels.npy")

# Headline columns: (probe, metric, label). The full table (every part and protocol column)
# is what ``compare`` writes.
HEADLINE: tuple[tuple[str, str, str], ...] = (
    ("linear", "top1", "top-1"),
    ("rotation", "r2_global", "rot R² global"),
    ("rotation", "r2_per_component", "rot R² per-comp."),
    ("color", "r2_global", "colour R² global"),
    ("mrr", "mrr", "MRR"),
    ("mrr", "hit@1", "H@1"),
)


@dataclass(frozen=True)
class Budget:
    """What every method in a study gets."""

    steps: int
    batch_size: int
    seed: int
    probe_epochs: int


@dataclass(frozen=True)
class StudyRun:
    """One pretrained and evaluated method."""

    name: str
    run_dir: Path
    pretrain_s: float
    eval_s: float


def ensure_rendered(root: Path, preset: str = "small", workers: int = 2) -> None:
    """Render ``preset`` into ``root`` unless a complete set (all split files) is there."""
    from sslequi.data.render.generate import RenderConfig, generate

    if all((root / name).is_file() for name in SPLIT_FILES):
        return
    if root.exists() and any(root.iterdir()):
        raise FileExistsError(
            f"{root} exists but has no complete split files (an interrupted render?); "
            "delete it or point --root elsewhere"
        )
    print(f"rendering the '{preset}' built-in 3D benchmark into {root} …", flush=True)
    generate(RenderConfig.from_preset(preset, root, workers=workers))


def pretrain_recipe(
    recipe: str, root: Path, run_dir: Path, budget: Budget, extra: tuple[str, ...] = ()
) -> float:
    """Pretrain with experiment ``recipe`` on the rendered ``root``; return wall seconds."""
    from sslequi.cli.pretrain import compose_config
    from sslequi.train.run import pretrain

    overrides = [
        f"experiment={recipe}",
        f"dataset.root={root}",
        f"train.steps={budget.steps}",
        f"train.batch_size={budget.batch_size}",
        f"seed={budget.seed}",
        f"run_dir={run_dir}",
        "train.device=cpu",
        "train.resume=never",
        *extra,
    ]
    cfg = compose_config(overrides)
    start = time.perf_counter()
    pretrain(cfg)
    return time.perf_counter() - start


def evaluate(run_dir: Path, probes: list[str], budget: Budget) -> float:
    """Run the evaluation suite's ``probes`` on ``run_dir``; return wall seconds."""
    from sslequi.evaluation.runner import eval_config_from_dict, evaluate_run

    early = {"early_stopping": True, "epochs": budget.probe_epochs}
    cfg = eval_config_from_dict(
        {
            "run": str(run_dir),
            "probes": probes,
            "device": "cpu",
            "wandb": False,
            "seed": budget.seed,
            "probe": {"linear": {"epochs": budget.probe_epochs}, "rotation": early, "color": early},
        }
    )
    start = time.perf_counter()
    evaluate_run(cfg, progress_print=lambda text: print(text, flush=True))
    return time.perf_counter() - start


def _headline_row(rows: list[ResultRow], probe: str, metric: str) -> ResultRow | None:
    # Predictor metrics live on the equivariant part; probes read the full representation.
    preferred = "equivariant" if probe == "mrr" else "full"
    matches = [
        r
        for r in rows
        if r.probe == probe and r.metric == metric and r.protocol.part in ("full", "equivariant")
    ]
    matches.sort(key=lambda r: r.protocol.part != preferred)
    return matches[0] if matches else None


def headline_table(runs: dict[str, Path]) -> str:
    """Val-split headline numbers per method as Markdown, with floors / chance below."""
    header = ["method", *[label for _, _, label in HEADLINE]]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    floors: dict[str, str] = {}
    for name, run_dir in runs.items():
        rows = [r for r in latest(load_results(run_dir)) if r.split == "val"]
        cells = [name]
        for probe, metric, label in HEADLINE:
            row = _headline_row(rows, probe, metric)
            cells.append("–" if row is None else f"{row.value:.3f}")
            if row is not None and row.floor is not None:
                floors[label] = f"{row.floor:.3f}"
        lines.append("| " + " | ".join(cells) + " |")
    if floors:
        lines += [
            "",
            "Floors (constant predictor) / chance: "
            + ", ".join(f"{k} {v}" for k, v in floors.items()),
        ]
    return "\n".join(lines)


def run_study(
    recipes: dict[str, str],
    root: Path,
    out: Path,
    budget: Budget,
    with_predictor: tuple[str, ...] = (),
    extra: tuple[str, ...] = (),
) -> list[StudyRun]:
    """Pretrain and evaluate each ``name → recipe``; write the full comparison under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    runs: list[StudyRun] = []
    for name, recipe in recipes.items():
        run_dir = out.resolve() / name
        print(f"\n=== {name}: pretraining {budget.steps} steps (recipe {recipe}) ===", flush=True)
        pretrain_s = pretrain_recipe(recipe, root.resolve(), run_dir, budget, extra)
        probes = ["linear", "rotation", "color"] + (["mrr"] if name in with_predictor else [])
        print(f"=== {name}: evaluating {', '.join(probes)} ===", flush=True)
        eval_s = evaluate(run_dir, probes, budget)
        runs.append(StudyRun(name, run_dir, pretrain_s, eval_s))
    compare([r.run_dir for r in runs], out=out / "comparison", echo=False)
    return runs


def protocol_line(budget: Budget, data: str) -> str:
    """The protocol every number of a study was measured under, dated."""
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"{stamp}; {data}; the `<method>_3diebench_cpu` recipes (ResNet-18 width 1/8, 64-d, "
        f"64 px, Adam 1e-3); batch {budget.batch_size}; {budget.steps} steps; seed "
        f"{budget.seed}; probes on frozen eval-mode features: linear {budget.probe_epochs} "
        f"epochs, rotation/colour MLP ≤ {budget.probe_epochs} epochs early-stopped on held-out "
        "training objects; val split."
    )
