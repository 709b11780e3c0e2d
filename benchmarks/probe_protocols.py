"""The paper and small-set probe protocols side by side on data whose answer is known.

On ~350 training objects whose two views' features carry quat(R₁ᵀR₂) plus noise (the
construction of ``tests/evaluation/test_small_set.py``), prints the val R² of closed-form
ridge on the same pairs, of the small-set protocol and of the paper protocol (300 epochs,
one pair per object, last epoch), and the same for pure-noise features (floor). With
``--runs DIR …`` it also reads the rotation R² of trained runs' cached features under both.

    python benchmarks/probe_protocols.py [--runs runs/compare_3d/sie_s0 …]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sslequi.actions import ActionOptions  # noqa: E402
from sslequi.evaluation.probes import (  # noqa: E402
    CachedSource,
    SplitData,
    action_targets,
    fit_probe,
)
from sslequi.evaluation.protocol import HeadTraining, ProbeSettings  # noqa: E402
from sslequi.evaluation.runner import regression_scores  # noqa: E402
from tests.evaluation.test_small_set import NOISE, _ridge_scores, _split  # noqa: E402

CPU = torch.device("cpu")


def protocols(min_steps: int | None = None) -> dict[str, HeadTraining]:
    settings = ProbeSettings()
    if min_steps is not None:
        settings.small_set.min_steps = min_steps
    return {
        "small_set": settings.small_set.apply(settings.rotation, single_view=False),
        "paper": settings.rotation,
    }


def read(
    train: SplitData, val: SplitData, min_steps: int | None = None
) -> dict[str, tuple[float, float, float]]:
    """Protocol → (R² global, R² per-component, CPU s) on the val split."""
    out = {}
    for name, training in protocols(min_steps).items():
        start = time.process_time()
        outcome = fit_probe(train, [val], "regression", 4, 2, training, 0, CPU, progress=False)
        scores = regression_scores(outcome.targets["val"], outcome.predictions["val"], True)
        out[name] = (
            scores["r2_global"][0],
            scores["r2_per_component"][0],
            time.process_time() - start,
        )
    return out


def cached_rotation_splits(run: Path) -> tuple[SplitData, SplitData]:
    """Train/val rotation-probe splits from a run's cached backbone features (full part)."""
    splits = []
    for split in ("train", "val"):
        found = sorted((run / "eval_features").glob(f"{split}-all-*.pt"))
        if not found:
            raise FileNotFoundError(f"{run} has no cached {split} features: run sslequi-eval first")
        payload = torch.load(found[0], map_location="cpu", weights_only=True)
        feats = payload["features"].float()
        targets = action_targets(payload["latents"], "rotation_quat", ActionOptions())
        splits.append(SplitData(split, CachedSource(feats, CPU), targets, *feats.shape[:2]))
    return splits[0], splits[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="*", type=Path, default=[])
    parser.add_argument("--objects", type=int, default=350, help="train objects")
    parser.add_argument("--val-objects", type=int, default=300)
    parser.add_argument("--min-steps", type=int, default=None, help="small-set S (default 600)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    print("| data | reader | val R² global | val R² per-comp. | CPU s |")
    print("|---|---|---|---|---|")
    for label, noise, seeds in (("quat + noise", NOISE, (0, 1)), ("pure noise", None, (2, 3))):
        train = _split("train", args.objects, seeds[0], noise)
        val = _split("val", args.val_objects, seeds[1], noise)
        if noise is not None:
            ridge = _ridge_scores(train, val)
            print(
                f"| {label} | ridge (closed form) | {ridge['r2_global']:.3f} | "
                f"{ridge['r2_per_component']:.3f} | – |"
            )
        for name, (global_r2, per_comp, cpu) in read(train, val, args.min_steps).items():
            print(f"| {label} | {name} | {global_r2:.3f} | {per_comp:.3f} | {cpu:.0f} |")
    for run in args.runs:
        train, val = cached_rotation_splits(run)
        for name, (global_r2, per_comp, cpu) in read(train, val, args.min_steps).items():
            print(f"| {run.name} | {name} | {global_r2:.3f} | {per_comp:.3f} | {cpu:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
