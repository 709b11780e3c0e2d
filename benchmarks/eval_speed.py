"""Rotation probe on cached features vs the paper protocol (live re-embedding each epoch).

Same method, head, optimiser, epochs, seed and per-epoch pair draws on both paths (eval-mode
BatchNorm), on a built-in 3D set (``synthetic`` by default; any registered object dataset
through Hydra-style overrides). Prints both R² definitions for each path, the wall-clock of
each (image loading included on both sides: extraction for the cache, preloading for the
live path) and the ratios of wall-clock and of process CPU time (the latter is robust to
other load on a shared machine). Target (issue 5): cached ≥ 20× faster, R² within ±0.01.

    python benchmarks/eval_speed.py
    python benchmarks/eval_speed.py --epochs 300 --run runs/x/single/y
    python benchmarks/eval_speed.py dataset.n_objects=512 backbone=resnet18_tiny
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir

from sslequi.build import build_dataset, build_method
from sslequi.cli.pretrain import configs_dir
from sslequi.config import register_configs, resolve_config
from sslequi.evaluation.protocol import HeadTraining
from sslequi.evaluation.runner import EvalConfig, Evaluation, RunIdentity

DEFAULTS = [
    "method=vicreg",
    "dataset=synthetic",
    "dataset.n_objects=128",
    "dataset.n_val_objects=32",
    "dataset.views_per_object=8",
    "dataset.resolution=32",
    "backbone=resnet18_cifar",
    "backbone.width_multiplier=0.5",
]


def build(args: argparse.Namespace) -> tuple[torch.nn.Module, dict[str, object], str]:
    if args.run:
        from sslequi.train.checkpoint import load_method

        loaded = load_method(args.run)
        resolved, method = loaded.config, loaded.method
    else:
        register_configs()
        with initialize_config_dir(str(configs_dir()), version_base="1.3"):
            cfg = compose("pretrain", overrides=DEFAULTS + list(args.overrides))
        resolved = resolve_config(cfg)
        torch.manual_seed(0)
        method = build_method(resolved)  # random init: the timing does not depend on weights
    datasets = {split: build_dataset(resolved.dataset, split, 2) for split in ("train", "val")}
    label = f"{resolved.method.name} / {resolved.backbone.name} / {resolved.dataset.name}"
    return method, datasets, label  # type: ignore[return-value]


def run_path(
    method: torch.nn.Module, datasets: dict[str, object], mode: str, args: argparse.Namespace
) -> tuple[dict[str, tuple[float, float | None]], float, float, float]:
    cfg = EvalConfig(probes=["rotation"], parts=["full"], mode=mode, progress=False)
    cfg.cache.enabled = False
    cfg.device = args.device
    cfg.probe.rotation = HeadTraining(head="mlp", epochs=args.epochs, batch_size=args.batch_size)
    evaluation = Evaluation(method, datasets, cfg, RunIdentity(run="bench"), None)
    start, cpu_start = time.perf_counter(), time.process_time()
    if mode == "cached":
        evaluation.features("train")
        evaluation.features("val")
    else:
        evaluation.preload_images()
    prepared = time.perf_counter() - start
    rows = evaluation.run()
    total = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    scores = {r.metric: (r.value, r.floor) for r in rows if r.split == "val"}
    return scores, prepared, total, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--run", type=Path, default=None, help="evaluate a trained run instead")
    parser.add_argument("overrides", nargs="*", help="pretrain-config overrides (no --run)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    method, datasets, label = build(args)
    n_train, n_val = len(datasets["train"]), len(datasets["val"])  # type: ignore[arg-type]
    views = datasets["train"].views_of(0).images.shape[0]  # type: ignore[attr-defined]
    print(
        f"{label}: {n_train} train / {n_val} val objects × {views} views; rotation probe, "
        f"MLP(2d-1024-1024-4), Adam 1e-3, {args.epochs} epochs, batch {args.batch_size}"
    )
    for dataset in datasets.values():  # render/decode every image once before timing
        for index in range(len(dataset)):  # type: ignore[arg-type]
            dataset.views_of(index)  # type: ignore[attr-defined]
    cached, cached_prep, cached_total, cached_cpu = run_path(method, datasets, "cached", args)
    live, live_prep, live_total, live_cpu = run_path(method, datasets, "live", args)
    print(f"{'path':<8}{'R²_global':>11}{'R²_pc':>9}{'prepare s':>11}{'wall s':>9}{'cpu s':>9}")
    for name, scores, prep, total, cpu in (
        ("cached", cached, cached_prep, cached_total, cached_cpu),
        ("live", live, live_prep, live_total, live_cpu),
    ):
        print(
            f"{name:<8}{scores['r2_global'][0]:>11.4f}{scores['r2_per_component'][0]:>9.4f}"
            f"{prep:>11.1f}{total:>9.1f}{cpu:>9.1f}"
        )
    gap = max(abs(cached[m][0] - live[m][0]) for m in ("r2_global", "r2_per_component"))
    print(
        f"constant-predictor floors on val: R²_global {cached['r2_global'][1]:.3f}, "
        f"R²_pc {cached['r2_per_component'][1]:.3f}"
    )
    print(
        f"speed-up cached vs live: {live_total / cached_total:.1f}× wall-clock, "
        f"{live_cpu / cached_cpu:.1f}× CPU time (target ≥ 20×); "
        f"max |ΔR²| = {gap:.4f} (target ≤ 0.01)"
    )


if __name__ == "__main__":
    main()
