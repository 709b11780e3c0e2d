"""seq-JEPA recipes (configs/experiment/seqjepa_*) against methods.md §9.1-9.4 and the
register §0.7 items 9-12; the ``_cpu`` variants compose, resolve, build and train."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from sslequi.build import build_method
from sslequi.config import resolve_config
from sslequi.types import ACTION_DIMS
from tests.methods.conftest import TinyBackbone
from tests.methods.test_recipes import _check, _compose, _value

# §9.1 model, register items 9 (AdamW 4e-4, wd 1e-3) and 10 (warmup then cosine)
HARNESS = {
    "method.name": "seqjepa",
    "method.action_conditioning": True,
    "method.action_embed_dim": 128,
    "method.num_layers": 3,
    "method.num_heads": 4,
    "method.ffn_ratio": 4,
    "method.dropout": 0.1,
    "method.predictor_hidden": 1024,
    "method.base_momentum": 0.996,
    "method.momentum_schedule": "epoch_cosine",
    "backbone.name": "resnet18",
    "backbone.style": "torchvision",
    "backbone.zero_init_residual": True,
    "optim.name": "adamw",
    "optim.lr": 4e-4,
    "optim.weight_decay": 1e-3,
    "optim.schedule": "warmup_cosine",
    "optim.warmup_epochs": 20.0,
}
# §9.3-9.4: 3DIEBench 128 px, no augmentation, batch 512, 1000 epochs (script; item 12)
THREEDIE = {
    **HARNESS,
    "dataset.name": "3diebench",
    "dataset.resolution": 128,
    "augment.name": "none",
    "backbone.stem": "imagenet",
    "train.batch_size": 512,
}
RECIPES: dict[str, dict[str, Any]] = {
    "seqjepa_3diebench": {
        **THREEDIE,
        "method.observed_views": 3,
        "method.action": "rotation_quat",
        "train.epochs": 1000,
    },
    # §9.5 item 5 / HF checkpoint: rot + colour, M_tr = 4, 2000 epochs (author)
    "seqjepa_3diebench_rotcolor": {
        **THREEDIE,
        "method.observed_views": 4,
        "method.action": "rot_color",
        "train.epochs": 2000,
    },
    # §0.3(a) last row: the ablation without action conditioning
    "seqjepa_uncond_3diebench": {
        **THREEDIE,
        "method.observed_views": 3,
        "method.action": "rotation_quat",
        "method.action_conditioning": False,
        "train.epochs": 1000,
    },
    # §9.3-9.4 CIFAR-100 (README): CIFAR stem, 32 px, batch 256, 2000 epochs, 9-d actions
    # L2-normalised over the sequence then differenced
    "seqjepa_cifar100": {
        **HARNESS,
        "dataset.name": "cifar100",
        "dataset.resolution": 32,
        "augment.name": "seqjepa",
        "backbone.stem": "cifar",
        "method.observed_views": 3,
        "method.action": "aug_params_9d",
        "actions.normalize_per_sequence": True,
        "train.batch_size": 256,
        "train.epochs": 2000,
    },
    # §9.3-9.4 STL-10 PLS (script_pls.sh): 5 saccades, fovea 32, batch 512, 2000 epochs
    "seqjepa_stl10_pls": {
        **HARNESS,
        "dataset.name": "stl10_pls",
        "dataset.fovea": 32,
        "dataset.resolution": 32,
        "dataset.ior_radius": 16,
        "dataset.train_split": "unlabeled",
        "augment.name": "none",
        "backbone.stem": "cifar",
        "method.observed_views": 4,
        "method.action": "fixation_offset",
        "train.batch_size": 512,
        "train.epochs": 2000,
    },
}
CPU_VARIANTS = {f"{name}_cpu": name for name in RECIPES}
TESTED_RECIPES: set[str] = set(RECIPES) | set(CPU_VARIANTS)

# The CPU study scale (configs/experiment/_cpu_3d.yaml) and the 2D CPU scale (_cpu_cifar10).
CPU_3D = {
    "backbone.width_multiplier": 0.25,
    "backbone.stem": "imagenet",
    "dataset.name": "3diebench",
    "dataset.resolution": 64,
    "train.batch_size": 128,
    "train.steps": 300,
    "optim.lr": 3e-3,
}
CPU_2D = {"backbone.name": "resnet18_tiny", "train.batch_size": 64, "train.steps": 300}
SCALE_KEYS = ("dataset.resolution", "train.", "backbone.", "optim.lr", "optim.warmup")


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_recipe_matches_reference(recipe: str) -> None:
    _check(_compose(recipe), RECIPES[recipe], recipe)


@pytest.mark.parametrize("cpu_recipe", sorted(CPU_VARIANTS))
def test_cpu_variant_keeps_the_method_and_builds(cpu_recipe: str) -> None:
    paper = CPU_VARIANTS[cpu_recipe]
    cfg = _compose(cpu_recipe)
    kept = {k: v for k, v in RECIPES[paper].items() if not k.startswith(SCALE_KEYS)}
    is_3d = "3diebench" in paper
    _check(cfg, {**kept, **(CPU_3D if is_3d else CPU_2D)}, cpu_recipe)
    resolved = resolve_config(cfg)
    with torch.device("meta"):
        method = build_method(resolved)
    assert method.feature_dim == (128 if is_3d else 64)
    assert method.spec().num_views == _value(cfg, "method.observed_views") + 1
    assert method.spec().actions == (_value(cfg, "method.action"),)


def test_study_discovers_the_3d_cpu_rows() -> None:
    from sslequi.study import discover_recipes

    found = discover_recipes()
    assert found["seqjepa"] == "seqjepa_3diebench_cpu"
    assert found["seqjepa_uncond"] == "seqjepa_uncond_3diebench_cpu"


@pytest.mark.parametrize("cpu_recipe", sorted(CPU_VARIANTS))
def test_cpu_variant_trains_a_few_steps_at_tiny_scale(cpu_recipe: str) -> None:
    """The recipe's method (its action encoding, M) takes optimiser steps on a tiny backbone."""
    resolved = resolve_config(_compose(cpu_recipe))
    config = resolved.method
    config.action_embed_dim, config.predictor_hidden, config.online_probe_hidden = 16, 32, 16
    from sslequi.methods.seqjepa import SeqJEPA
    from tests.methods.conftest import spec_batch

    torch.manual_seed(0)
    method = SeqJEPA(config, TinyBackbone(16), 16)
    optimizer = torch.optim.AdamW(method.parameters(), lr=resolved.optim.lr)
    assert ACTION_DIMS[config.action] == method.action_dim
    target_before = [p.clone() for p in method.target_backbone.parameters()]
    for step in range(3):
        output = method(spec_batch(method.spec(), batch_size=6, seed=step))
        optimizer.zero_grad()
        output.loss.backward()
        optimizer.step()
        method.on_step_end(step + 1, 3)
        assert torch.isfinite(output.loss)
    moved = [
        not torch.equal(a, b)
        for a, b in zip(target_before, method.target_backbone.parameters(), strict=True)
    ]
    assert any(moved)  # the EMA target followed the trained encoder


def test_warmup_constant_schedule_reproduces_the_code() -> None:
    """Register item 10: linear warmup, then the peak rate to the end (no cosine)."""
    from sslequi.config import Schedule
    from sslequi.train.optim import LRSchedule

    schedule = LRSchedule(
        total_steps=100, warmup_steps=20, schedule=Schedule.warmup_constant, final_ratio=0.0
    )
    assert schedule(0) == pytest.approx(1 / 20) and schedule(9) == pytest.approx(10 / 20)
    assert schedule(20) == schedule(60) == schedule(99) == 1.0
    cfg = _compose("seqjepa_3diebench")
    cfg.optim.schedule = "warmup_constant"
    assert resolve_config(cfg).optim.schedule is Schedule.warmup_constant
