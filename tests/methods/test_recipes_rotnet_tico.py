"""RotNet and TiCo recipes (methods.md §12, §13) against the reference values; the ``_cpu``
variants compose, resolve, build and run end to end (pretrain → evaluate) on tiny data;
``sslequi-pretrain method=rotnet`` and ``method=tico`` run from their own defaults."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from sslequi.build import build_method
from sslequi.cli.pretrain import compose_config
from sslequi.config import OptimConfig, Schedule, resolve_config, validate
from sslequi.evaluation.protocol import HeadTraining
from sslequi.evaluation.runner import EvalConfig, evaluate_run
from sslequi.train.optim import LRSchedule
from sslequi.train.run import pretrain
from tests.methods.test_recipes import _check, _compose, _value
from tests.methods.test_recipes_care import _write_cifar

# methods.md §12 (config/CIFAR10_RotNet_NIN4blocks.py): RandomCrop(32, pad 4) + flip;
# SGD Nesterov, momentum 0.9, wd 5e-4, batch 128 images (512 rotated samples), 200 epochs,
# LR table 0.1 → 0.02 (60) → 0.004 (120) → 0.0008 (160); ResNet-18 CIFAR stem for the NIN
# (substitution, docs/recipes.md).
# the harness's CPU scale (configs/experiment/_cpu_cifar10.yaml)
CPU_SCALE_CIFAR: dict[str, Any] = {
    "backbone.name": "resnet18_tiny",
    "train.batch_size": 64,
    "train.steps": 300,
}
ROTNET_CIFAR10: dict[str, Any] = {
    "method.name": "rotnet",
    "method.head_hidden": [],
    "backbone.name": "resnet18",
    "backbone.stem": "cifar",
    "dataset.name": "cifar10",
    "dataset.resolution": 32,
    "augment.name": "rotnet_cifar",
    "optim.name": "sgd",
    "optim.lr": 0.1,
    "optim.momentum": 0.9,
    "optim.nesterov": True,
    "optim.weight_decay": 5e-4,
    "optim.lr_scaling": "none",
    "optim.schedule": "multistep",
    "optim.lr_milestones": [0.3, 0.6, 0.8],  # epochs 60 / 120 / 160 of 200
    "optim.lr_gamma": 0.2,
    "optim.warmup_epochs": 0.0,
    "train.batch_size": 128,
    "train.epochs": 200,
}

# methods.md §13 (lightly:benchmarks/imagenet/resnet50/tico.py): ResNet-50, projector
# 2048 → 4096 → 256, β 0.9, ρ 8, momentum cosine 0.99 → 1; LARS 0.2 · B/256, momentum 0.9,
# wd 1.5e-6 (none on BN/bias), 10 warmup epochs + cosine (lightly's CosineWarmupScheduler:
# warmup from 0, end 0.001); BYOL views; IN-1k, batch 256, 100 epochs.
TICO_LOSS: dict[str, Any] = {
    "method.name": "tico",
    "method.beta": 0.9,
    "method.rho": 8.0,
    "method.base_momentum": 0.99,
    "method.momentum_schedule": "cosine",
    "method.z_a_branch": "online",
    "augment.name": "byol",
}
TICO_OPTIM: dict[str, Any] = {
    "optim.name": "lars",
    "optim.lr": 0.2,
    "optim.lr_scaling": "linear_per_256",
    "optim.momentum": 0.9,
    "optim.weight_decay": 1.5e-6,
    "optim.exclude_bias_norm_from_wd": True,
    "optim.schedule": "warmup_cosine",
    "optim.warmup_from_zero": True,
    "optim.final_lr_ratio": 0.001,
}
TICO_IMAGENET: dict[str, Any] = {
    **TICO_LOSS,
    **TICO_OPTIM,
    "method.projector_hidden": 4096,
    "method.projector_dim": 256,
    "backbone.name": "resnet50",
    "backbone.stem": "imagenet",
    "dataset.name": "imagefolder",
    "dataset.resolution": 224,
    "optim.warmup_epochs": 10.0,
    "train.batch_size": 256,
    "train.epochs": 100,
}

RECIPES: dict[str, dict[str, Any]] = {
    "rotnet_cifar10": ROTNET_CIFAR10,
    "tico_imagenet": TICO_IMAGENET,
}
# CPU recipes without a paper counterpart: the loss and optimiser of §13 at CPU scale
CPU_ONLY: dict[str, dict[str, Any]] = {
    "tico_cifar10_cpu": {
        **TICO_LOSS,
        **TICO_OPTIM,
        **CPU_SCALE_CIFAR,
        "backbone.stem": "cifar",
        "dataset.name": "cifar10",
        "dataset.resolution": 32,
        "method.projector_hidden": 512,
        "method.projector_dim": 128,
        "optim.warmup_steps": 10,
    },
}
CPU_VARIANTS = {f"{name}_cpu": name for name in ("rotnet_cifar10",)}
TESTED_RECIPES: set[str] = set(RECIPES) | set(CPU_VARIANTS) | set(CPU_ONLY)
SCALE_KEYS = ("backbone.", "train.batch_size", "train.epochs")

TINY = [
    "train.batch_size=8",
    "train.steps=2",
    "train.log_every=1",
    "train.progress=false",
    "train.checkpoint_every_min=0",
    "logger.mode=disabled",
    "optim.warmup_steps=0",
]


@pytest.fixture(autouse=True)
def _quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "disabled")
    torch.set_num_threads(1)


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_recipe_matches_reference(recipe: str) -> None:
    _check(_compose(recipe), RECIPES[recipe], recipe)


@pytest.mark.parametrize("cpu_recipe", sorted(CPU_VARIANTS))
def test_cpu_variant_keeps_the_recipe_and_builds(cpu_recipe: str) -> None:
    recipe = CPU_VARIANTS[cpu_recipe]
    cfg = _compose(cpu_recipe)
    kept = {k: v for k, v in RECIPES[recipe].items() if not k.startswith(SCALE_KEYS)}
    _check(cfg, {**kept, **CPU_SCALE_CIFAR}, cpu_recipe)
    resolved = resolve_config(cfg)
    assert validate(resolved) == 64
    with torch.device("meta"):
        method = build_method(resolved)
    assert method.feature_dim == 64


@pytest.mark.parametrize("cpu_recipe", sorted(CPU_ONLY))
def test_cpu_only_recipe_matches_and_builds(cpu_recipe: str) -> None:
    cfg = _compose(cpu_recipe)
    _check(cfg, CPU_ONLY[cpu_recipe], cpu_recipe)
    resolved = resolve_config(cfg)
    assert validate(resolved) == 64
    with torch.device("meta"):
        method = build_method(resolved)
    assert method.covariance.shape == (128, 128)


def test_paper_recipes_build_at_full_size() -> None:
    """ResNet-50 TiCo (2048 → 4096 → 256) and ResNet-18 RotNet, on the meta device."""
    for recipe, dim in (("tico_imagenet", 2048), ("rotnet_cifar10", 512)):
        resolved = resolve_config(_compose(recipe))
        assert validate(resolved) == dim
        with torch.device("meta"):
            method = build_method(resolved)
        assert method.feature_dim == dim


def test_rotnet_lr_table_by_hand() -> None:
    """§12: 0.1 to epoch 60, 0.02 to 120, 0.004 to 160, 0.0008 to 200 (1 step per epoch)."""
    table = LRSchedule(200, 0, Schedule.multistep, 0.0, milestones=(0.3, 0.6, 0.8), gamma=0.2)
    rates = {epoch: 0.1 * table(epoch) for epoch in (0, 59, 60, 119, 120, 159, 160, 199)}
    expected = {0: 0.1, 59: 0.1, 60: 0.02, 119: 0.02, 120: 0.004, 159: 0.004, 160: 8e-4}
    for epoch, rate in expected.items():
        assert rates[epoch] == pytest.approx(rate)
    assert rates[199] == pytest.approx(8e-4)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"lr_milestones": []}, "needs optim.lr_milestones"),
        ({"lr_milestones": [0.6, 0.3]}, "increasing fractions"),
        ({"lr_milestones": [1.5]}, "increasing fractions"),
        ({"lr_gamma": 0.0}, "lr_gamma"),
    ],
)
def test_bad_lr_tables_fail_at_config_time(overrides: dict[str, Any], message: str) -> None:
    resolved = resolve_config(_compose("rotnet_cifar10_cpu"))
    table = {"schedule": Schedule.multistep, "lr_milestones": [0.3], **overrides}
    resolved.optim = OptimConfig(**table)
    with pytest.raises(ValueError, match=message):
        validate(resolved)


def _evaluate(run: Path, probes: list[str], layers: list[str]) -> list[Any]:
    cfg = EvalConfig(
        run=str(run), probes=probes, layers=layers, progress=False, wandb=False, protocol="paper"
    )
    cfg.probe.rot90 = HeadTraining(head="linear", epochs=2, batch_size=16)
    cfg.probe.linear = HeadTraining(head="linear", epochs=2, batch_size=16)
    cfg.compare_out = str(run / "comparison")
    return evaluate_run(cfg, progress_print=lambda _: None)


def test_rotnet_cpu_recipe_runs_end_to_end(tmp_path: Path) -> None:
    """rotnet_cifar10_cpu pretrains on a tiny CIFAR-10 and is evaluated with the rot90 and
    linear probes on every ResNet stage, the best stage marked."""
    _write_cifar(tmp_path / "data", hundred=False)
    run = tmp_path / "run"
    overrides = ["experiment=rotnet_cifar10_cpu", f"dataset.root={tmp_path / 'data'}", *TINY]
    pretrain(compose_config([*overrides, f"run_dir={run}"]))
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(lines) == 2 and all(torch.isfinite(torch.tensor(x["loss"])) for x in lines)
    assert "terms/rot_acc" in lines[-1]
    rows = _evaluate(run, ["rot90", "linear"], ["all"])
    accuracy = [r for r in rows if r.probe == "rot90" and r.metric == "accuracy"]
    parts = {r.protocol.part for r in accuracy if r.split == "val"}
    assert parts == {"full", "layer1", "layer2", "layer3", "layer4"}
    assert all(0.0 <= r.value <= 1.0 and r.floor == 0.25 for r in accuracy)
    best = [r for r in accuracy if r.split == "val" and r.best_layer]
    assert len(best) == 1 and best[0].value == max(
        r.value for r in accuracy if r.split == "val" and r.protocol.part.startswith("layer")
    )


def test_tico_cpu_recipe_runs_end_to_end(tmp_path: Path) -> None:
    """tico_cifar10_cpu pretrains on a tiny CIFAR-10 (the covariance and the target branch
    move) and is evaluated with the linear and kNN probes."""
    _write_cifar(tmp_path / "data", hundred=False)
    run = tmp_path / "run"
    overrides = ["experiment=tico_cifar10_cpu", f"dataset.root={tmp_path / 'data'}", *TINY]
    pretrain(compose_config([*overrides, f"run_dir={run}"]))
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(lines) == 2 and all(torch.isfinite(torch.tensor(x["loss"])) for x in lines)
    assert {"terms/invariance", "terms/covariance_contrast"} <= set(lines[-1])
    state = torch.load(run / "checkpoints" / "last.pt", map_location="cpu", weights_only=False)
    assert float(state["method"]["covariance"].abs().sum()) > 0
    rows = _evaluate(run, ["linear", "knn"], [])
    top1 = {r.probe: r for r in rows if r.metric == "top1" and r.split == "val"}
    assert set(top1) == {"linear", "knn"} and all(0 <= r.value <= 1 for r in top1.values())


@pytest.mark.parametrize(("method", "augment"), [("rotnet", "rotnet_cifar"), ("tico", "byol")])
def test_method_runs_from_its_own_defaults(method: str, augment: str, tmp_path: Path) -> None:
    """``sslequi-pretrain method=<m>`` on the default dataset (synthetic, in memory): the
    method's config brings its augmentation; only the steps and bookkeeping are set."""
    run = tmp_path / method
    cfg = compose_config(
        [
            f"method={method}",
            "train.steps=2",
            "train.progress=false",
            "logger.mode=disabled",
            f"run_dir={run}",
        ]
    )
    assert cfg.dataset.name == "synthetic" and _value(cfg, "augment.name") == augment
    pretrain(cfg)
    assert '"step": 2' in (run / "metrics.jsonl").read_text()
