"""A method study on the built-in 3D benchmark: render, pretrain several methods under one
budget and several seeds, evaluate them with one protocol, and print one headline table.

The README demo (``launch/demo.py``) and the CPU comparison (``benchmarks/compare_3d.py``)
are thin scripts over this module, so both report numbers the same way. The methods are
the ``configs/experiment/<method>_3diebench_cpu.yaml`` recipes, discovered on disk: a new
method adds a row by adding a recipe. Run directories are ``OUT/<method>/`` for a method
run with one seed and ``OUT/<method>_s<seed>/`` for several.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sslequi.evaluation.results import ResultRow, compare, latest, load_results

RECIPE_SUFFIX = "_3diebench_cpu"
CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
# Scored over every seed of a study; every other discovered recipe runs on the first seed
# only and its row is marked.
MULTI_SEED = (
    "sie",
    "vicreg",
    "simclr",
    "esimclr",
    "equimod",
    "seqjepa",
    "seqjepa_uncond",
    "equicaps",
    "capsie",
)
DEFAULT_SEEDS = (0, 1, 2)
STUDY_PROBES = ("linear", "rotation", "color", "rot90")

SPLIT_FILES = ("train_images.npy", "val_images.npy", "train_labels.npy", "val_labels.npy")

# Headline columns: (probe, metric, part, label). ``part`` "full" reads the whole
# representation; the full table (every part and protocol column) is what ``compare`` writes.
HEADLINE: tuple[tuple[str, str, str, str], ...] = (
    ("linear", "top1", "full", "top-1"),
    ("rotation", "r2_global", "full", "rot R² global"),
    ("rotation", "r2_per_component", "full", "rot R² per-comp."),
    ("color", "r2_global", "full", "colour R² global"),
    ("rot90", "accuracy", "full", "rot90 acc."),
    ("mrr", "mrr", "equivariant", "MRR"),
    ("mrr", "hit@1", "equivariant", "H@1"),
)


def discover_recipes(config_dir: Path = CONFIG_DIR) -> dict[str, str]:
    """``method → recipe`` for every ``experiment/<method>_3diebench_cpu.yaml``, sorted."""
    found = sorted((config_dir / "experiment").glob(f"*{RECIPE_SUFFIX}.yaml"))
    return {path.stem[: -len(RECIPE_SUFFIX)]: path.stem for path in found}


def has_aggregate(recipe: str) -> bool:
    """Whether the recipe's method aggregates a sequence of views (seq-JEPA's z_AGG): its
    runs are also scored by the ``agg_linear`` probe."""
    from sslequi.cli.pretrain import compose_config
    from sslequi.config import resolve_config
    from sslequi.registry import METHODS

    resolved = resolve_config(compose_config([f"experiment={recipe}"]))
    return callable(getattr(METHODS.entry(resolved.method.name).obj, "aggregate", None))


def has_predictor(recipe: str) -> bool:
    """Whether the recipe's method has a transformation-conditioned predictor (MRR / H@k)."""
    from sslequi.cli.pretrain import compose_config
    from sslequi.config import resolve_config
    from sslequi.registry import METHODS

    resolved = resolve_config(compose_config([f"experiment={recipe}"]))
    entry = METHODS.entry(resolved.method.name)
    return getattr(entry.obj, "predictor_action", None) is not None


@dataclass(frozen=True)
class Budget:
    """What every method in a study gets. The probe fields shorten every trained probe
    head (None: the evaluation protocol's own settings); each row's protocol records the
    epochs, minimum and actual steps its head ran."""

    steps: int
    batch_size: int
    seed: int
    probe_epochs: int | None = None  # epochs of every trained probe head
    probe_min_steps: int | None = None  # the small-set protocol's minimum steps S per head

    def __post_init__(self) -> None:
        if self.probe_epochs is not None and self.probe_epochs < 1:
            raise ValueError(f"probe epochs must be ≥ 1, got {self.probe_epochs}")
        if self.probe_min_steps is not None and self.probe_min_steps < 0:
            raise ValueError(f"probe min steps must be ≥ 0, got {self.probe_min_steps}")


def add_probe_budget_arguments(parser: argparse.ArgumentParser) -> None:
    """``--probe-epochs`` and ``--probe-min-steps``, the study scripts' ``Budget`` probe fields."""
    parser.add_argument(
        "--probe-epochs",
        type=int,
        default=None,
        help="epochs of every trained probe head (default: each probe's own; a quick check, "
        "not the study protocol; recorded in each result row's protocol)",
    )
    parser.add_argument(
        "--probe-min-steps",
        type=int,
        default=None,
        help="the small-set protocol's minimum optimiser steps per probe head (default 600; "
        "recorded in each result row's protocol)",
    )


def shortened_heads(budget: Budget) -> str:
    """`` (probe heads shortened: …)`` for a protocol line, or ``""`` at the protocol's own."""
    shortened = [
        f"{name} {value}"
        for name, value in (("epochs", budget.probe_epochs), ("min steps", budget.probe_min_steps))
        if value is not None
    ]
    return f" (probe heads shortened: {', '.join(shortened)})" if shortened else ""


def probe_overrides(budget: Budget, probes: Sequence[str]) -> dict[str, Any]:
    """EvalConfig overrides for ``budget``'s probe fields (``{}`` when both are None)."""
    from sslequi.evaluation.protocol import HeadTraining, ProbeSettings

    probe: dict[str, Any] = {}
    if budget.probe_epochs is not None:
        defaults = ProbeSettings()
        for name in probes:
            if isinstance(getattr(defaults, name, None), HeadTraining):
                probe[name] = {"epochs": budget.probe_epochs}
    if budget.probe_min_steps is not None:
        steps = budget.probe_min_steps
        probe["small_set"] = {"min_steps": steps, "linear_min_steps": steps}
    return {"probe": probe} if probe else {}


@dataclass(frozen=True)
class StudyEntry:
    """One (method, seed) to pretrain and evaluate."""

    name: str
    recipe: str
    seed: int
    run_dir: Path
    single_seed: bool  # a marked row: run on one seed where others run on several
    with_predictor: bool


@dataclass(frozen=True)
class StudyRun:
    """One pretrained and evaluated method: wall and CPU seconds of each stage."""

    name: str
    seed: int
    run_dir: Path
    pretrain_s: float
    eval_s: float
    pretrain_cpu_s: float = 0.0
    eval_cpu_s: float = 0.0


def plan_study(
    recipes: dict[str, str],
    out: Path,
    seeds: Sequence[int],
    multi_seed: Sequence[str] = MULTI_SEED,
    with_predictor: Sequence[str] | None = None,
) -> list[StudyEntry]:
    """Every (method, seed) of a study, in order; methods outside ``multi_seed`` get one seed."""
    if not seeds:
        raise ValueError("a study needs at least one seed")
    entries: list[StudyEntry] = []
    for name, recipe in recipes.items():
        several = name in multi_seed and len(seeds) > 1
        predictor = has_predictor(recipe) if with_predictor is None else name in with_predictor
        for seed in seeds if several else seeds[:1]:
            run_dir = out.resolve() / (f"{name}_s{seed}" if several else name)
            entries.append(
                StudyEntry(name, recipe, seed, run_dir, not several and len(seeds) > 1, predictor)
            )
    return entries


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


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def pretrain_recipe(
    recipe: str,
    root: Path,
    run_dir: Path,
    budget: Budget,
    extra: tuple[str, ...] = (),
    resume: str = "never",
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
        f"train.resume={resume}",
        *extra,
    ]
    cfg = compose_config(overrides)
    start = time.perf_counter()
    pretrain(cfg)
    return time.perf_counter() - start


def study_eval_config(
    probes: Sequence[str], seed: int, run_dir: Path | None = None, **overrides: Any
) -> Any:
    """The study's ``EvalConfig``: every declared part, the size-chosen probe protocol."""
    from sslequi.evaluation.runner import eval_config_from_dict

    values: dict[str, Any] = {
        "probes": list(probes),
        "device": "cpu",
        "wandb": True,  # the numbers also go into the run's own wandb run (if it has one)
        "seed": seed,
        "progress": False,
    }
    if run_dir is not None:
        values["run"] = str(run_dir)
    values.update(overrides)
    return eval_config_from_dict(values)


def evaluate(run_dir: Path, probes: Sequence[str], budget: Budget) -> float:
    """Run the evaluation suite's ``probes`` on ``run_dir``; return wall seconds."""
    from sslequi.evaluation.runner import evaluate_run

    cfg = study_eval_config(probes, budget.seed, run_dir, **probe_overrides(budget, probes))
    start = time.perf_counter()
    evaluate_run(cfg, progress_print=lambda text: None)
    return time.perf_counter() - start


def evaluate_in_memory(
    method: Any,
    root: Path,
    out_dir: Path,
    seed: int,
    probes: Sequence[str] = STUDY_PROBES,
    dataset: Any = None,
    **overrides: Any,
) -> list[ResultRow]:
    """Evaluate an in-memory ``Method`` on the rendered ``root`` with the study's protocol and
    write ``out_dir/results.json`` (how ``benchmarks/reference_sie.py`` scores its models).
    ``dataset``: a registered dataset's config to read instead of ``3diebench`` at 64 px
    (``benchmarks/reference_care.py``: ``render2d`` at 32 px); ``overrides``: EvalConfig
    fields (e.g. ``probe={"orthogonality": {...}}``)."""
    from sslequi.build import build_dataset
    from sslequi.data.threedie import ThreeDIEConfig
    from sslequi.evaluation.results import append_results
    from sslequi.evaluation.runner import RunIdentity, evaluate_method

    config = ThreeDIEConfig(root=str(root), resolution=64) if dataset is None else dataset
    datasets = {split: build_dataset(config, split, 2) for split in ("train", "val")}
    identity = RunIdentity(
        run=out_dir.name,
        method=getattr(method.config, "name", type(method).__name__),
        dataset=f"{config.name}@{config.resolution}",
    )
    cfg = study_eval_config(probes, seed, **overrides)
    rows = evaluate_method(method, datasets, cfg, identity)
    out_dir.mkdir(parents=True, exist_ok=True)
    append_results(out_dir, rows)
    return rows


def _run_entry(
    entry: StudyEntry,
    root: Path,
    budget: Budget,
    extra: tuple[str, ...],
    stages: tuple[str, ...],
    probes: tuple[str, ...],
    threads: int,
    resume: str,
) -> StudyRun:
    """Pretrain and/or evaluate one entry in this process (a worker of ``run_study``)."""
    import torch

    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        seeded = replace(budget, seed=entry.seed)
        pretrain_s = eval_s = pretrain_cpu = eval_cpu = 0.0
        if "pretrain" in stages:
            print(f"=== {entry.run_dir.name}: pretraining ({entry.recipe}) ===", flush=True)
            cpu = _cpu_seconds()
            pretrain_s = pretrain_recipe(entry.recipe, root, entry.run_dir, seeded, extra, resume)
            pretrain_cpu = _cpu_seconds() - cpu
        if "evaluate" in stages:
            chosen = list(probes) + (["mrr"] if entry.with_predictor else [])
            chosen += ["agg_linear"] if has_aggregate(entry.recipe) else []
            print(f"=== {entry.run_dir.name}: evaluating {', '.join(chosen)} ===", flush=True)
            cpu = _cpu_seconds()
            eval_s = evaluate(entry.run_dir, chosen, seeded)
            eval_cpu = _cpu_seconds() - cpu
        run = StudyRun(
            entry.name, entry.seed, entry.run_dir, pretrain_s, eval_s, pretrain_cpu, eval_cpu
        )
        _record_timing(run, stages)
        return run
    finally:
        torch.set_num_threads(previous_threads)  # in-process entries leave the caller as it was


def _record_timing(run: StudyRun, stages: tuple[str, ...]) -> None:
    path = run.run_dir / "study_timing.json"
    record: dict[str, float] = json.loads(path.read_text()) if path.is_file() else {}
    if "pretrain" in stages:
        record.update(pretrain_s=run.pretrain_s, pretrain_cpu_s=run.pretrain_cpu_s)
    if "evaluate" in stages:
        record.update(eval_s=run.eval_s, eval_cpu_s=run.eval_cpu_s)
    run.run_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2))


def run_study(
    recipes: dict[str, str],
    root: Path,
    out: Path,
    budget: Budget,
    with_predictor: Sequence[str] | None = None,
    extra: tuple[str, ...] = (),
    seeds: Sequence[int] | None = None,
    multi_seed: Sequence[str] = MULTI_SEED,
    jobs: int = 1,
    stages: tuple[str, ...] = ("pretrain", "evaluate"),
    probes: Sequence[str] = STUDY_PROBES,
    threads: int = 1,
    resume: str = "never",
) -> list[StudyRun]:
    """Pretrain and evaluate every (method, seed); write the full comparison under ``out``.

    ``jobs`` > 1 runs single-thread entries side by side in worker processes; no
    ``stages`` only reports the entries already evaluated.
    """
    out.mkdir(parents=True, exist_ok=True)
    entries = plan_study(recipes, out, seeds or (budget.seed,), multi_seed, with_predictor)
    args = (root.resolve(), budget, extra, tuple(stages), tuple(probes), threads, resume)
    if not stages:  # report only: the entries already evaluated
        runs = [
            StudyRun(e.name, e.seed, e.run_dir, 0.0, 0.0)
            for e in entries
            if (e.run_dir / "results.json").is_file()
        ]
    elif jobs > 1:
        with ProcessPoolExecutor(max_workers=jobs, max_tasks_per_child=1) as pool:
            futures = [pool.submit(_run_entry, entry, *args) for entry in entries]
            runs = [future.result() for future in futures]
    else:
        runs = [_run_entry(entry, *args) for entry in entries]
    if "evaluate" in stages or (not stages and runs):
        compare([r.run_dir for r in runs], out=out / "comparison", echo=False)
    _write_manifest(out, entries)
    return runs


def _write_manifest(out: Path, entries: list[StudyEntry]) -> None:
    manifest = [
        {
            "name": e.name,
            "recipe": e.recipe,
            "seed": e.seed,
            "run_dir": e.run_dir.name,
            "single_seed": e.single_seed,
        }
        for e in entries
    ]
    (out / "study.json").write_text(json.dumps(manifest, indent=2))


# ----------------------------------------------------------------------------- tables


def _val_value(rows: list[ResultRow], probe: str, metric: str, part: str) -> ResultRow | None:
    for row in rows:
        if row.probe == probe and row.metric == metric and row.protocol.part == part:
            return row
    return None


def group_runs(out: Path) -> dict[str, list[Path]]:
    """``method → run dirs`` from a study's ``study.json`` (one per seed)."""
    manifest = json.loads((out / "study.json").read_text())
    groups: dict[str, list[Path]] = {}
    for entry in manifest:
        groups.setdefault(entry["name"], []).append(out / entry["run_dir"])
    return groups


def _mean_std(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def headline_table(
    runs: dict[str, Path] | dict[str, list[Path]],
    columns: Sequence[tuple[str, str, str, str]] = HEADLINE,
    split: str = "val",
) -> str:
    """Val-split headline numbers per method (mean ± std over seeds) as Markdown, with the
    floors / chance below. A method evaluated on fewer seeds than the most is marked †."""
    groups = {name: (dirs if isinstance(dirs, list) else [dirs]) for name, dirs in runs.items()}
    most = max(len(dirs) for dirs in groups.values())
    header = ["method", "seeds", *[label for *_, label in columns]]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    floors: dict[str, str] = {}
    for name, dirs in groups.items():
        per_run = [[r for r in latest(load_results(d)) if r.split == split] for d in dirs]
        cells = [name + (" †" if len(dirs) < most else ""), str(len(dirs))]
        for probe, metric, part, label in columns:
            found = [_val_value(rows, probe, metric, part) for rows in per_run]
            values = [row.value for row in found if row is not None]
            cells.append(_mean_std(values) if values else "–")
            floor = next((row.floor for row in found if row and row.floor is not None), None)
            if floor is not None:
                floors[label] = f"{floor:.3f}"
        lines.append("| " + " | ".join(cells) + " |")
    if floors:
        lines += [
            "",
            "Floors (constant predictor) / chance: "
            + ", ".join(f"{k} {v}" for k, v in floors.items()),
        ]
    if most > 1 and any(len(dirs) < most for dirs in groups.values()):
        lines.append(f"† fewer seeds than the {most} of the others (see the seeds column).")
    return "\n".join(lines)


def protocol_line(budget: Budget, data: str, seeds: Sequence[int] | None = None) -> str:
    """The protocol every number of a study was measured under, dated."""
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    seed_text = ", ".join(str(s) for s in (seeds or (budget.seed,)))
    heads = shortened_heads(budget)
    return (
        f"{stamp}; {data}; the `<method>_3diebench_cpu` recipes (ResNet-18 width 1/4, 128-d, "
        f"ImageNet stem, 64 px, Adam 3e-3, ~512-wide projectors per part); batch "
        f"{budget.batch_size}; {budget.steps} steps; seeds {seed_text}; probes on frozen "
        f"eval-mode features under the size-chosen protocol (docs/evaluation.md){heads}; "
        "val split."
    )


def timing_summary(runs: Sequence[StudyRun]) -> str:
    """CPU minutes per stage (mean over a method's runs), from each run's
    ``study_timing.json`` (so an evaluate-only stage still reports pretraining)."""
    by_name: dict[str, list[dict[str, float]]] = {}
    for run in runs:
        path = run.run_dir / "study_timing.json"
        record = json.loads(path.read_text()) if path.is_file() else {}
        by_name.setdefault(run.name, []).append(record)
    lines = []
    for name, records in by_name.items():
        pre = [r["pretrain_cpu_s"] / 60 for r in records if "pretrain_cpu_s" in r]
        ev = [r["eval_cpu_s"] / 60 for r in records if "eval_cpu_s" in r]
        pre_text = f"{statistics.mean(pre):.1f}" if pre else "–"
        ev_text = f"{statistics.mean(ev):.1f}" if ev else "–"
        lines.append(f"{name}: pretrain {pre_text} CPU-min, evaluate {ev_text} CPU-min")
    return "\n".join(lines)


def load_average() -> str:
    """The 1/5/15-minute load averages, for reporting machine conditions."""
    one, five, fifteen = os.getloadavg()
    return f"load {one:.1f}/{five:.1f}/{fifteen:.1f} on {os.cpu_count()} cores"


# ----------------------------------------------------------------------------- checks


def metric_values(
    dirs: Sequence[Path], probe: str, metric: str, part: str = "full", split: str = "val"
) -> list[float]:
    """One value per run directory (latest row of that probe, metric, part and split)."""
    values = []
    for run_dir in dirs:
        rows = [r for r in latest(load_results(run_dir)) if r.split == split]
        row = _val_value(rows, probe, metric, part)
        if row is not None:
            values.append(row.value)
    return values


def hypernetwork_change(run_dir: Path) -> float | None:
    """‖A − A₀‖_F / ‖A₀‖_F of a run's hypernetwork against its seeded initialisation."""
    from sslequi.build import build_method
    from sslequi.config import resolve_config
    from sslequi.train.checkpoint import load_method
    from sslequi.train.trainer import seed_everything

    loaded = load_method(run_dir)
    predictor = getattr(loaded.method, "predictor", None)
    hypernet = getattr(predictor, "hypernet", None)
    if hypernet is None or not hasattr(hypernet, "weight"):
        return None
    config = loaded.config if hasattr(loaded.config, "seed") else resolve_config(loaded.config)
    seed_everything(config.seed)
    initial = build_method(config).predictor.hypernet.weight.detach()  # type: ignore[union-attr]
    trained = hypernet.weight.detach().cpu()
    return float((trained - initial).norm() / initial.norm())
