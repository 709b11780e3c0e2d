"""CARE and its baselines' recipes (methods.md §8, register items 15-17) against the
reference values; ``_cpu`` variants compose, resolve, build and train a few steps on tiny
data; ``sslequi-pretrain method=care`` and ``method=moco`` run from their own defaults."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torchvision.io import write_jpeg

from sslequi.build import build_method
from sslequi.cli.pretrain import compose_config
from sslequi.config import resolve_config
from sslequi.train.run import pretrain
from tests.data.test_pls import write_tiny_stl
from tests.methods.test_recipes import _check, _compose, _value

# §8.4-8.5: the CARE CIFAR/STL harness (ResNet-50 CIFAR stem, 32 px, Adam 1e-3, wd 1e-6,
# no schedule, batch 256, 400 epochs)
CIFAR_HARNESS: dict[str, Any] = {
    "backbone.name": "resnet50",
    "backbone.stem": "cifar",
    "dataset.resolution": 32,
    "optim.name": "adam",
    "optim.lr": 1e-3,
    "optim.weight_decay": 1e-6,
    "optim.schedule": "constant",
    "train.batch_size": 256,
    "train.epochs": 400,
}
# §8.1, §8.4: NT-Xent tau 0.5 on a 2048 -> 512 -> 128 head
CARE_SIMCLR = {
    "method.name": "care",
    "method.base": "simclr",
    "method.temperature": 0.5,
    "method.projector_hidden": 512,
    "method.projector_dim": 128,
    "method.loss_subtype": "infonce",
    "augment.name": "care",
    "augment.independent_chunks": True,  # register item 15, paper reading
}
SIMCLR_BASELINE = {
    "method.name": "simclr",
    "method.projector": "512-128",
    "method.temperature": 0.5,
    "method.negatives": "all",
    "augment.name": "care_infonce",
}
# §8.2 STL-10 and §8.5: SGD lr 0.06, momentum 0 as coded (item 17), wd 5e-4, warmup 10 + cosine
STL_OPTIM = {
    "dataset.name": "stl10",
    "dataset.train_split": "train+unlabeled",
    "optim.name": "sgd",
    "optim.lr": 0.06,
    "optim.momentum": 0.0,
    "optim.weight_decay": 5e-4,
    "optim.warmup_epochs": 10.0,
    "optim.schedule": "warmup_cosine",
}
# §8.4-8.5 ImageNet-100: ResNet-50, SGD 0.4 momentum 0.9 wd 1e-4, per-epoch cosine, batch 256,
# 200 epochs; tau 0.2; MoCo-v2-sized head 2048 -> 2048 -> 128
IN100 = {
    "backbone.name": "resnet50",
    "backbone.stem": "imagenet",
    "dataset.name": "imagenet100",
    "optim.name": "sgd",
    "optim.lr": 0.4,
    "optim.momentum": 0.9,
    "optim.weight_decay": 1e-4,
    "optim.schedule_granularity": "epoch",
    "train.batch_size": 256,
    "train.epochs": 200,
}
CARE_IN100 = {
    "method.name": "care",
    "method.temperature": 0.2,
    "method.projector_hidden": 2048,
    "method.projector_dim": 128,
    "method.equivariance_weight": 0.005,  # §8.2
    "method.equivariant_images": 128,  # §8.2 --equivariant-batch-size
    "augment.name": "care_imagenet100",
    "augment.chunk_size": 8,  # §8.2: Gram blocks of 8
}
MOCO_V2 = {  # §8.4: key momentum 0.99 (script), queue 65,536, shuffle-BN
    "queue_size": 65536,
    "momentum": 0.99,
    "shuffle_bn": True,
    "sync_bn": False,  # item 16: the same setting for method and baseline
}

RECIPES: dict[str, dict[str, Any]] = {
    "care_cifar10": {
        **CIFAR_HARNESS,
        **CARE_SIMCLR,
        "dataset.name": "cifar10",
        "method.equivariance_weight": 0.03,  # §8.2
        "augment.chunk_size": 16,  # §8.2: K 16 at batch 256
    },
    "care_cifar100": {
        **CIFAR_HARNESS,
        **CARE_SIMCLR,
        "dataset.name": "cifar100",
        "method.equivariance_weight": 0.001,
        "augment.chunk_size": 64,  # K 4
    },
    "care_stl10": {
        **CARE_SIMCLR,
        **STL_OPTIM,
        "dataset.resolution": 32,  # §5.1: CARE trains STL-10 at 32 px
        "method.equivariance_weight": 0.01,
        "augment.chunk_size": 32,  # K 8
        "train.batch_size": 256,
    },
    "simclr_care_cifar10": {**CIFAR_HARNESS, **SIMCLR_BASELINE, "dataset.name": "cifar10"},
    "simclr_care_cifar100": {**CIFAR_HARNESS, **SIMCLR_BASELINE, "dataset.name": "cifar100"},
    "simclr_care_stl10": {**SIMCLR_BASELINE, **STL_OPTIM, "dataset.resolution": 32},
    "care_imagenet100_simclr": {
        **IN100,
        **CARE_IN100,
        "method.base": "simclr",
        "method.base_overrides.gather_distributed": False,  # §1.4: per-GPU InfoNCE
    },
    "care_imagenet100_moco": {
        **IN100,
        **CARE_IN100,
        "method.base": "moco",
        **{f"method.base_overrides.{k}": v for k, v in MOCO_V2.items()},
    },
    "simclr_care_imagenet100": {
        **IN100,
        "method.name": "simclr",
        "method.projector": "2048-128",
        "method.temperature": 0.2,
        "method.gather_distributed": False,
        "augment.name": "care_imagenet100_infonce",
    },
    "moco_imagenet100": {
        **IN100,
        "method.name": "moco",
        "method.temperature": 0.2,
        "method.projector_hidden": 2048,
        "method.projector_dim": 128,
        **{f"method.{k}": v for k, v in MOCO_V2.items()},
        "augment.name": "care_imagenet100_infonce",
    },
}
CPU_VARIANTS = {f"{name}_cpu": name for name in RECIPES}
# the 2D CPU study's rows (benchmarks/compare_2d.py): a CPU recipe on render2d, Adam 3e-3
STUDY_ROWS = {
    "care_render2d_cpu": "care_cifar10_cpu",
    "simclr_render2d_cpu": "simclr_care_cifar10_cpu",
}
# the study's RotNet row: rotnet_cifar10_cpu (its SGD LR table, methods.md §12) on render2d
ROTNET_ROW = "rotnet_render2d_cpu"
TESTED_RECIPES: set[str] = set(RECIPES) | set(CPU_VARIANTS) | set(STUDY_ROWS) | {ROTNET_ROW}
# the harness's CPU scale; everything else is the recipe's
SCALE_KEYS = (
    "backbone.",
    "dataset.resolution",
    "train.batch_size",
    "train.epochs",
    "method.projector",
    "method.equivariant_images",
    "optim.warmup_epochs",  # the CPU mixin warms up over 10 steps instead
)


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_recipe_matches_reference(recipe: str) -> None:
    _check(_compose(recipe), RECIPES[recipe], recipe)


@pytest.mark.parametrize("cpu_recipe", sorted(CPU_VARIANTS))
def test_cpu_variant_keeps_the_recipe_and_builds(cpu_recipe: str) -> None:
    recipe = CPU_VARIANTS[cpu_recipe]
    cfg = _compose(cpu_recipe)
    kept = {k: v for k, v in RECIPES[recipe].items() if not k.startswith(SCALE_KEYS)}
    scale = {"backbone.name": "resnet18_tiny", "train.batch_size": 64, "train.steps": 300}
    _check(cfg, {**kept, **scale}, cpu_recipe)
    assert _value(cfg, "dataset.resolution") == (64 if "imagenet100" in recipe else 32)
    resolved = resolve_config(cfg)
    with torch.device("meta"):
        method = build_method(resolved)
    assert method.feature_dim == 64
    if resolved.method.name == "care":
        assert method.spec().chunk_shared_params and method.spec().num_views == 4


# ----------------------------------------------------------------------------- tiny data


def _write_cifar(root: Path, hundred: bool) -> None:
    rng = np.random.default_rng(0)
    folder = root / ("cifar-100-python" if hundred else "cifar-10-batches-py")
    folder.mkdir(parents=True)
    key = b"fine_labels" if hundred else b"labels"
    files = (
        [("train", 16), ("test", 8)]
        if hundred
        else [*[(f"data_batch_{i}", 4) for i in range(1, 6)], ("test_batch", 8)]
    )
    for name, n in files:
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 100 if hundred else 10, n)]
        with (folder / name).open("wb") as handle:
            pickle.dump({b"data": data, key: labels}, handle)
    meta = ("meta", b"fine_label_names") if hundred else ("batches.meta", b"label_names")
    (folder / meta[0]).write_bytes(pickle.dumps({meta[1]: []}))


def _write_image_tree(root: Path) -> None:
    gen = torch.Generator().manual_seed(0)
    for split in ("train", "val"):
        for cls in ("n01", "n02"):
            folder = root / "imagenet" / split / cls
            folder.mkdir(parents=True)
            for i in range(8 if split == "train" else 2):
                image = torch.randint(0, 256, (3, 72, 80), generator=gen, dtype=torch.uint8)
                write_jpeg(image, str(folder / f"{i}.JPEG"))


def _tiny_data(recipe: str, root: Path) -> list[str]:
    """Write the recipe's dataset in miniature; the overrides that point at it."""
    if "cifar" in recipe:
        _write_cifar(root, hundred="cifar100" in recipe)
    elif "stl10" in recipe:
        write_tiny_stl(root, counts=(4, 4, 12))
    else:
        _write_image_tree(root)
        return [  # the same ImageFolder reader without the 100-class list
            "dataset.name=imagefolder",
            f"dataset.root={root / 'imagenet'}",
            "dataset.class_list=''",
            "dataset.num_classes=2",
        ]
    return [f"dataset.root={root}"]


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


@pytest.mark.parametrize("cpu_recipe", sorted(CPU_VARIANTS))
def test_cpu_variant_trains_a_few_steps_at_tiny_scale(cpu_recipe: str, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    overrides = [f"experiment={cpu_recipe}", *_tiny_data(cpu_recipe, tmp_path / "data"), *TINY]
    if "care_" in cpu_recipe and not cpu_recipe.startswith("simclr"):
        overrides.append("augment.chunk_size=4")  # K = 2 chunks of the tiny batch
        if "imagenet100" in cpu_recipe:
            overrides.append("method.equivariant_images=8")
    run = tmp_path / "run"
    pretrain(compose_config([*overrides, f"run_dir={run}"]))
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2 and all('"loss": NaN' not in line for line in lines)
    if cpu_recipe.startswith("care"):
        assert '"terms/equivariance"' in lines[-1]


@pytest.mark.parametrize("method", ["care", "moco"])
def test_pretrain_runs_from_the_methods_own_defaults(method: str, tmp_path: Path) -> None:
    """``sslequi-pretrain method=<m>`` on the default dataset (synthetic, in memory): only
    the step count and the run's bookkeeping are set."""
    torch.set_num_threads(1)
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
    assert cfg.dataset.name == "synthetic"
    assert cfg.augment.name == ("care" if method == "care" else "none")
    pretrain(cfg)
    assert (run / "checkpoints").is_dir() and '"step": 2' in (run / "metrics.jsonl").read_text()


@pytest.mark.parametrize("row", sorted(STUDY_ROWS))
def test_study_rows_keep_their_cpu_recipe_on_render2d(row: str) -> None:
    base = _compose(STUDY_ROWS[row])
    cfg = _compose(row)
    for key in ("augment", "backbone", "train.batch_size", "train.steps"):
        assert _value(cfg, key) == _value(base, key), key
    method, base_method = dict(_value(cfg, "method")), dict(_value(base, "method"))
    if row == "care_render2d_cpu":  # the one retuned value (issue 13 allows the _cpu λ)
        assert (method.pop("equivariance_weight"), base_method.pop("equivariance_weight")) == (
            0.3,
            0.03,
        )
    assert method == base_method
    _check(cfg, {"dataset.name": "render2d", "dataset.resolution": 32, "optim.lr": 3e-3}, row)
    with torch.device("meta"):
        assert build_method(resolve_config(cfg)).feature_dim == 64


def test_rotnet_study_row_keeps_its_cpu_recipe_on_render2d() -> None:
    base = _compose("rotnet_cifar10_cpu")
    cfg = _compose(ROTNET_ROW)
    for key in ("method", "augment", "backbone", "optim", "train.batch_size", "train.steps"):
        assert _value(cfg, key) == _value(base, key), key
    _check(cfg, {"dataset.name": "render2d", "dataset.resolution": 32, "optim.lr": 0.1}, ROTNET_ROW)
    with torch.device("meta"):
        assert build_method(resolve_config(cfg)).feature_dim == 64  # the CARE / SimCLR rows' y
