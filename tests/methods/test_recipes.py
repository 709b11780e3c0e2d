"""Paper recipes (configs/experiment) against the reference values of
``shared/reference/methods.md``; CPU variants compose, resolve and build.

Each expected value cites its section. Values are read from the Hydra composition of
``pretrain.yaml`` + ``experiment=<recipe>``, exactly as ``sslequi-pretrain`` composes them.
"""

from __future__ import annotations

import importlib.util
from enum import Enum
from pathlib import Path
from typing import Any

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, ListConfig, OmegaConf

from sslequi.config import register_configs, resolve_config
from sslequi.registry import DATASETS

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"

# methods.md §2.4 (SIE README command; register §0.7 items 1-3), §2.1 shapes
SIE_HARNESS = {
    "backbone.style": "vicreg",  # §1.3 VICReg-style ResNet-18
    "backbone.zero_init_residual": True,
    "dataset.name": "3diebench",
    "dataset.resolution": 256,
    "augment.name": "none",  # §2.4: no augmentation
    "optim.name": "adam",
    "optim.lr": 1e-3,  # item 2
    "optim.weight_decay": 1e-6,
    "optim.schedule": "constant",
    "optim.warmup_steps": 0,  # --warmup-* unused
    "optim.warmup_epochs": 0.0,
    "train.batch_size": 1024,
    "train.epochs": 2000,
    "train.amp": True,  # §2.4: AMP = autocast + GradScaler (float16)
    "train.amp_dtype": "float16",
}
SIE_LOSS = {
    "method.projector": "2048-2048-2048",  # item 3
    "method.equi_dim": 256,
    "method.sim_coeff": 10.0,
    "method.equi_factor": 0.45,  # item 1
    "method.std_coeff": 10.0,
    "method.cov_coeff": 1.0,
    "method.predictor.hypernetwork": "linear",
    # §2.1 / §1.5: W(g) = Σ g_k A_k, one linear layer, no bias, no ReLU
    "method.predictor.type": "hypernetwork",
    "method.predictor.hidden": [],
    "method.predictor.relu": False,
    "method.predictor.bias_pred": False,
    "method.predictor.bias_hypernet": False,
    "method.predictor.init": "torch_default",  # nn.Linear default (the _cpu recipes differ)
    "method.cov_denominator": "actual",  # §0.7 item 4
}
# methods.md §7.2-7.4 (E-SSL CIFAR-10, README commands)
ESSL_CIFAR = {
    "backbone.stem": "cifar",
    "dataset.name": "cifar10",
    "augment.name": "essl_cifar",
    "optim.name": "sgd",
    "optim.momentum": 0.9,
    "optim.weight_decay": 5e-4,
    "optim.exclude_bias_norm_from_wd": False,  # SGD(main_branch.parameters(), wd): every param
    "optim.lr_scaling": "linear_per_256",
    "optim.schedule": "warmup_cosine",
    "optim.warmup_epochs": 10.0,
    "optim.warmup_from_zero": True,  # §7.4 adjust_learning_rate: base · step / warmup
    "optim.schedule_granularity": "step",  # §7.4 per-step cosine
    "optim.final_lr_ratio": 0.0,  # cosine to 0
    "train.batch_size": 512,
    "train.epochs": 800,
    "train.amp": False,  # README commands: no --fp16
}
# §7.3 E-SSL CIFAR projector Lin(512, 2048, no bias)-BN-ReLU-Lin(2048, 2048, no bias)-BN(affine=False)
ESSL_CIFAR_SIMCLR = {
    "projector": "2048-2048",
    "temperature": 0.5,  # §7.1
    "negatives": "cross_view",  # §1.2, register item 14
    "projector_hidden_bias": False,
    "projector_final_bn": "no_affine",
}
# §7.3 CIFAR SimSiam heads; §7.4 the predictor's SGD is never scheduled nor warmed up
ESSL_CIFAR_SIMSIAM = {
    "projector_hidden": 2048,
    "projector_dim": 2048,
    "projector_layers": 2,
    "predictor_hidden": 512,
    "fix_predictor_lr": True,
}
# §7.3-7.4 ImageNet harness: torchvision ResNet-50 (zero_init_residual), fp16 + GradScaler,
# 224 px views + 96 px rotation view, scale (0.05, 0.14)
ESSL_IMAGENET = {
    "backbone.name": "resnet50",
    "backbone.style": "torchvision",
    "backbone.zero_init_residual": True,
    "dataset.name": "imagefolder",
    "dataset.resolution": 224,
    "augment.name": "essl_imagenet",
    "augment.views.0.ops.0.interpolation": "bicubic",  # §7.4 RRC 224 bicubic
    "augment.views.1.ops.0.interpolation": "bicubic",
    "augment.rotated_view.ops.0.scale": [0.05, 0.14],  # rotation view: default bilinear
    "dataset.full_image_crops": True,  # §7.4 RRC on the full decoded image
    "method.rotated_size": 96,
    "method.rotated_scale": [0.05, 0.14],
    "method.head_hidden": 2048,
    "train.amp": True,
    "train.amp_dtype": "float16",
}

RECIPES: dict[str, dict[str, Any]] = {
    "sie_3diebench": {**SIE_HARNESS, **SIE_LOSS, "method.name": "sie", "method.pred_var": True},
    "sie_nopvar_3diebench": {
        **SIE_HARNESS,
        **SIE_LOSS,
        "method.name": "sie_nopvar",
        "method.pred_var": False,
    },  # §2.3
    "sie_rotcolor_3diebench": {**SIE_HARNESS, **SIE_LOSS, "method.name": "sie_rotcolor"},  # §2.3
    "sie_onlyequi_3diebench": {
        **SIE_HARNESS,
        **SIE_LOSS,
        "method.name": "sie_onlyequi",
        "method.only_equi": True,
    },
    # §2.7 / §14: SIE-code baselines
    "vicreg_3diebench": {
        **SIE_HARNESS,
        "method.name": "vicreg",
        "method.sim_coeff": 10.0,
        "method.std_coeff": 10.0,
        "method.cov_coeff": 1.0,
        "method.projector": "2048-2048-2048",
    },
    "simclr_3diebench": {
        **SIE_HARNESS,
        "method.name": "simclr",
        "method.projector": "2048-2048-2048",  # §2.7 single projector 512 → mlp
        "method.projector_hidden_bias": True,  # SIE Projector: Linear(bias) → BN → ReLU
        "method.projector_final_bn": "none",  # last Linear without bias, no BN
        "method.temperature": 0.1,
        "method.negatives": "all",  # NT-Xent on the gathered [z; z′] (§1.2)
        "method.gather_distributed": True,  # §1.4
    },
    "vicreg_partinv_3diebench": {
        **SIE_HARNESS,
        "method.name": "vicreg_partinv",
        "method.equi_dim": 256,
        "method.sim_coeff": 10.0,
    },  # §2.3
    "equimod_3diebench": {
        **SIE_HARNESS,
        "method.name": "equimod",
        "method.flavour": "simclr",
        "method.temperature": 0.1,
        "method.projector": "2048-2048-2048",
        # §3: SimCLREquiMod multiplies by --equi-factor; README.md rule 3: the README
        # command's 0.45 (not the argparse default 4.5)
        "method.equi_weight": 0.45,
    },  # §3
    "equimod_vicreg_3diebench": {
        **SIE_HARNESS,
        "method.name": "equimod",
        "method.flavour": "vicreg",
        "method.sim_coeff": 10.0,
        "method.std_coeff": 10.0,
        "method.cov_coeff": 1.0,
        "method.equi_weight": 0.45,  # §3 VICRegEquiMod × --equi-factor (README command)
    },
    "sen_3diebench": {**SIE_HARNESS, "method.name": "sen", "method.temperature": 0.1},  # §4
    "augself_3diebench": {
        **SIE_HARNESS,
        "method.name": "augself",
        "method.temperature": 0.1,
        "method.ec_weight": 1.0,
    },  # §5
    "esimclr_3diebench": {
        **SIE_HARNESS,
        "method.name": "essl",
        "method.base": "simclr",
        "method.rotation_weight": 0.4,
        "method.rotated_scale": [0.2, 1.0],
    },  # issue 6 precision
    # §6, §9.4 (seq-JEPA harness; register items 9-10)
    "vicreg_traj_3diebench": {
        "method.name": "vicreg_traj",
        "method.sim_coeff": 25.0,
        "method.std_coeff": 25.0,
        "method.cov_coeff": 1.0,
        "method.alpha": 1.0,
        "backbone.style": "torchvision",
        "dataset.resolution": 128,
        "optim.name": "adamw",
        "optim.lr": 4e-4,
        "optim.weight_decay": 1e-3,
        "optim.warmup_epochs": 20.0,
        "train.batch_size": 512,
        "train.epochs": 1000,
    },
    # §7.1, §7.4: baseline --lr 0.03, E-variant --lr 0.06 (doubled), lambda 0.4, tau 0.5
    "simclr_cifar10": {
        **ESSL_CIFAR,
        "method.name": "simclr",
        **{f"method.{k}": v for k, v in ESSL_CIFAR_SIMCLR.items()},
        "optim.lr": 0.03,
    },
    "esimclr_cifar10": {
        **ESSL_CIFAR,
        "method.name": "essl",
        "method.base": "simclr",
        **{f"method.base_overrides.{k}": v for k, v in ESSL_CIFAR_SIMCLR.items()},
        "method.rotation_weight": 0.4,
        "method.rotated_size": 16,
        "method.rotated_scale": [0.2, 1.0],
        "method.head_hidden": 2048,
        "method.head_second_relu": True,  # §7.3 SimCLR head
        "method.head_bottleneck": None,
        "optim.lr": 0.06,
    },
    "simsiam_cifar10": {
        **ESSL_CIFAR,
        "method.name": "simsiam",
        **{f"method.{k}": v for k, v in ESSL_CIFAR_SIMSIAM.items()},
        "optim.lr": 0.03,
    },
    "esimsiam_cifar10": {
        **ESSL_CIFAR,
        "method.name": "essl",
        "method.base": "simsiam",
        **{f"method.base_overrides.{k}": v for k, v in ESSL_CIFAR_SIMSIAM.items()},
        "method.rotation_weight": 0.4,
        "method.rotated_size": 16,
        "method.rotated_scale": [0.2, 1.0],
        "method.head_hidden": 2048,
        "method.head_second_relu": False,  # §7.3 CIFAR SimSiam head
        "method.head_bottleneck": None,
        "optim.lr": 0.06,
    },
    "evicreg_cifar10": {
        **ESSL_CIFAR,
        "method.name": "essl",
        "method.base": "vicreg",
        "method.rotation_weight": 0.4,
    },
    # §7.1-7.4 ImageNet
    "esimclr_imagenet": {
        **ESSL_IMAGENET,
        "method.name": "essl",
        "method.base": "simclr",
        "method.base_overrides.projector": "2048-2048-128",
        "method.base_overrides.temperature": 0.2,
        "method.base_overrides.negatives": "cross_view",  # infoNCE on gathered z1 @ z2.T
        "method.base_overrides.gather_distributed": True,  # §1.4
        "method.base_overrides.projector_hidden_bias": False,  # §7.3
        "method.base_overrides.projector_final_bn": "affine",  # §7.3 last BN affine
        "method.rotation_weight": 0.4,
        "method.head_second_relu": True,
        "method.head_bottleneck": 128,
        "optim.name": "lars",
        "optim.lr": 4.8,
        "optim.lr_scaling": "none",
        "optim.weight_decay": 1e-6,
        "optim.momentum": 0.9,
        "optim.exclude_bias_norm_from_wd": True,  # §7.4 wd and adaptation skip 1-D params
        "optim.lars_trust_ratio": "update_norm",  # the code's LARS: η‖p‖/‖g + λp‖
        "optim.trust_coefficient": 0.001,  # η
        "optim.schedule": "warmup_cosine",
        "optim.warmup_epochs": 10.0,
        "optim.warmup_from_zero": True,
        "optim.schedule_granularity": "step",
        "optim.final_lr_ratio": 0.001,
        "train.batch_size": 4096,
        "train.epochs": 800,
    },
    "esimsiam_imagenet": {
        **ESSL_IMAGENET,
        "method.name": "essl",
        "method.base": "simsiam",
        "method.base_overrides.projector_hidden": 2048,
        "method.base_overrides.projector_dim": 2048,
        "method.base_overrides.projector_layers": 3,
        "method.base_overrides.predictor_hidden": 512,
        "method.base_overrides.fix_predictor_lr": True,  # §7.4 --fix-pred-lr
        "method.rotation_weight": 0.08,
        "method.head_second_relu": True,  # ImageNet builder: Lin-LN-ReLU-Lin-LN-ReLU-...
        "method.head_bottleneck": 256,  # ...-Lin(2048, 256)-LN-Lin(256, 4)
        "optim.name": "sgd",
        "optim.lr": 0.05,
        "optim.lr_scaling": "linear_per_256",
        "optim.weight_decay": 1e-4,
        "optim.exclude_bias_norm_from_wd": False,  # SGD decays every parameter
        "optim.momentum": 0.9,
        "optim.schedule": "warmup_cosine",
        "optim.warmup_epochs": 0.0,
        "optim.schedule_granularity": "epoch",  # §7.4 epoch-wise cosine
        "optim.final_lr_ratio": 0.0,
        "train.batch_size": 512,
        "train.epochs": 100,
    },
}

# CPU variants: everything that defines the method (loss, coefficients, optimiser) is the
# recipe's; the scale is the harness's (tiny backbone, 64 px on 3D/ImageNet, 32 px CIFAR).
SCALE_KEYS = (
    "dataset.resolution",
    "train.batch_size",
    "train.epochs",
    "backbone.",
    "method.projector",
    "method.equi_dim",
    "method.base_overrides.projector",
    "method.base_overrides.predictor_hidden",
    "method.rotated_size",
    "method.head_hidden",
    "optim.warmup_epochs",
    "method.predictor_hidden",
    "train.amp",  # CPU variants run in fp32
)
CPU_SCALE = {"backbone.name": "resnet18_tiny", "train.batch_size": 64, "train.steps": 300}
# The CPU 3D study (configs/experiment/_cpu_3d.yaml, docs/recipes.md): ResNet-18 at width
# 1/4 (128-d), batch 128, Adam lr 3e-3, norm-preserving hypernetwork init.
CPU_SCALE_3D = {
    "backbone.name": "resnet18",
    "backbone.width_multiplier": 0.25,
    "backbone.stem": "imagenet",
    "train.batch_size": 128,
    "train.steps": 300,
    "optim.lr": 3e-3,
}
SCALE_KEYS_3D = ("optim.lr", "method.predictor.init")


def _compose(recipe: str) -> DictConfig:
    register_configs()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        return compose("pretrain", overrides=[f"experiment={recipe}"])


def _value(cfg: DictConfig, key: str) -> Any:
    value = OmegaConf.select(cfg, key, throw_on_missing=True)
    if isinstance(value, DictConfig | ListConfig):
        return OmegaConf.to_container(value)
    return value.value if isinstance(value, Enum) else value


def _check(cfg: DictConfig, expected: dict[str, Any], recipe: str) -> None:
    for key, want in expected.items():
        got = _value(cfg, key)
        if isinstance(want, float):
            assert got == pytest.approx(want), f"{recipe}: {key} = {got}, reference {want}"
        else:
            assert got == want, f"{recipe}: {key} = {got!r}, reference {want!r}"


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_recipe_matches_reference(recipe: str) -> None:
    _check(_compose(recipe), RECIPES[recipe], recipe)


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_cpu_variant_keeps_the_recipe_and_builds(recipe: str) -> None:
    cfg = _compose(f"{recipe}_cpu")
    is_3d = recipe.endswith("3diebench")
    scale_keys = SCALE_KEYS + (SCALE_KEYS_3D if is_3d else ())
    kept = {k: v for k, v in RECIPES[recipe].items() if not k.startswith(scale_keys)}
    _check(cfg, {**kept, **(CPU_SCALE_3D if is_3d else CPU_SCALE)}, f"{recipe}_cpu")
    resolution = _value(cfg, "dataset.resolution")
    assert resolution == (32 if recipe.endswith("cifar10") else 64)
    if cfg.dataset.name not in DATASETS:
        from sslequi.config import import_components

        import_components()
    resolved = resolve_config(cfg)  # typed: unknown keys and wrong types fail here
    # Build the method on the meta device: validates the split and every head (no compute).
    from sslequi.build import build_method

    with torch.device("meta"):
        method = build_method(resolved)
    assert method.feature_dim == (128 if is_3d else 64)
    assert resolved.method.name == RECIPES[recipe].get("method.name", "essl")


def _family_recipes() -> set[str]:
    """Recipe names tested by the per-family files ``test_recipes_<family>.py``.

    Each such file exports ``TESTED_RECIPES`` (paper recipes and their ``_cpu`` variants)
    and checks them itself; this keeps one method family's table out of another's file.
    """
    names: set[str] = set()
    for path in sorted(Path(__file__).parent.glob("test_recipes_*.py")):
        spec = importlib.util.spec_from_file_location(f"_recipes_{path.stem}", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        tested = getattr(module, "TESTED_RECIPES", None)
        assert tested, f"{path.name} must export TESTED_RECIPES"
        names |= set(tested)
    return names


def test_every_recipe_file_is_tested() -> None:
    files = {p.stem for p in (CONFIG_DIR / "experiment").glob("*.yaml")}
    recipes = {f for f in files if not f.startswith("_")}
    assert recipes == set(RECIPES) | {f"{r}_cpu" for r in RECIPES} | _family_recipes()
