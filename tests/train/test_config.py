"""Config resolution and every bad-input case of issue 2: each fails before any compute,
with an error naming the problem."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf, open_dict

from sslequi.config import (
    ConfigError,
    OptimizerName,
    Schedule,
    resolve_config,
    run_changing_differences,
    validate,
)
from sslequi.data.base import DatasetConfig
from sslequi.methods.base import MethodConfig
from sslequi.train.optim import LRSchedule, param_groups, scaled_lr
from sslequi.train.run import pretrain


def _no_compute_happened(run_dir: Path) -> None:
    assert not (run_dir / "metrics.jsonl").exists()
    assert not (run_dir / "checkpoints" / "last.pt").exists()


def test_default_config_resolves_to_registered_dataclasses(compose_cfg) -> None:
    resolved = resolve_config(compose_cfg())
    assert type(resolved.method).__name__ == "VICRegConfig"
    assert isinstance(resolved.method, MethodConfig)
    assert isinstance(resolved.dataset, DatasetConfig) and resolved.dataset.resolution == 16
    assert resolved.backbone.name == "resnet18_tiny"
    assert resolved.optim.name is OptimizerName.adam
    assert resolved.container["optim"]["name"] == "adam"  # plain data for config.yaml
    assert validate(resolved) == 64  # the tiny ResNet-18's feature dim, from a meta build


@pytest.mark.parametrize("group", ["method", "dataset", "backbone", "optim"])
def test_unknown_group_choice_lists_alternatives(compose_cfg, group: str) -> None:
    with pytest.raises(ConfigCompositionException, match="Available options"):
        compose_cfg(f"{group}=no_such_thing")


@pytest.mark.parametrize(
    ("node", "available"),
    [("method", "vicreg"), ("dataset", "synthetic"), ("backbone", "resnet18_tiny")],
)
def test_unknown_registered_name_lists_alternatives(compose_cfg, node: str, available: str) -> None:
    cfg = compose_cfg()
    with open_dict(cfg):
        cfg[node]["name"] = "no_such_thing"
    with pytest.raises(ConfigError, match=rf"unknown {node} 'no_such_thing'.*{available}"):
        resolve_config(cfg)


@pytest.mark.parametrize(
    "override", ["optim.lrr=0.1", "method.sim_coef=3", "train.batchsize=3", "dataset.resolutoin=8"]
)
def test_typo_in_override_fails_naming_the_key(compose_cfg, override: str) -> None:
    with pytest.raises(ConfigCompositionException, match=override.split("=")[0].split(".")[-1]):
        compose_cfg(override)


@pytest.mark.parametrize(
    "override",
    ["optim.lr=fast", "train.batch_size=1.5", "optim.schedule=linear", "train.amp=maybe"],
)
def test_wrong_type_in_typed_group_fails_in_hydra(compose_cfg, override: str) -> None:
    with pytest.raises(ConfigCompositionException):
        compose_cfg(override)


@pytest.mark.parametrize(
    ("override", "message"),
    [("method.sim_coeff=strong", "method.sim_coeff"), ("backbone.width_multiplier=wide", "width")],
)
def test_wrong_type_in_registered_node_fails_naming_the_key(
    compose_cfg, override: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        resolve_config(compose_cfg(override))


def test_value_rejected_by_registered_dataclass(compose_cfg) -> None:
    with pytest.raises(ConfigError, match="backbone.stem"):
        resolve_config(compose_cfg("backbone.stem=triangle"))


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("optim.lr=-0.1", "optim.lr must be > 0"),
        ("optim.lr=0", "optim.lr must be > 0"),
        ("train.batch_size=1", "train.batch_size must be ≥ 2"),
        ("optim.weight_decay=-1", "weight_decay"),
        ("optim.final_lr_ratio=2", "final_lr_ratio"),
        ("train.device=tpu", "train.device"),
        ("train.resume=/no/such/checkpoint.pt", "does not exist"),
        ("optim.lr=1e39", "optim.lr and optim.probe_lr must be ≤ 100"),
        ("optim.probe_lr=1000", "optim.lr and optim.probe_lr must be ≤ 100"),
        ("optim.lr=inf", "optim.lr must be a finite number"),
        ("optim.weight_decay=inf", "optim.weight_decay must be a finite number"),
        ("train.grad_clip=nan", "train.grad_clip must be a finite number"),
    ],
)
def test_out_of_range_values_fail_before_compute(
    compose_cfg, tmp_path: Path, override: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        pretrain(compose_cfg(override))
    _no_compute_happened(tmp_path / "run")


def test_augment_recipe_that_cannot_feed_the_method_fails_before_the_run_starts(
    compose_cfg, tmp_path: Path
) -> None:
    """Issue 16, item 12: AugSelf regressing augmentation parameters with augment=none."""
    cfg = compose_cfg("method=augself", "method.action=aug_params_9d", "augment=none")
    with pytest.raises(ConfigError, match=r"augment \(none\).*aug_params_9d.*no random op"):
        pretrain(cfg)
    _no_compute_happened(tmp_path / "run")
    assert not (tmp_path / "run" / "run.json").exists()


def test_equivariant_split_larger_than_feature_dim(compose_cfg, tmp_path: Path) -> None:
    cfg = compose_cfg()
    with open_dict(cfg):
        cfg.method = OmegaConf.create({"name": "sie", "equi_dim": 1000})
    with pytest.raises(ConfigError, match=r"feature dim 64.*equi_dim"):
        pretrain(cfg)
    _no_compute_happened(tmp_path / "run")


def test_unwritable_output_dir(compose_cfg, tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    with pytest.raises(ConfigError, match="output directory"):
        pretrain(compose_cfg(run_dir=blocker / "run"))


def test_read_only_output_dir(compose_cfg, tmp_path: Path) -> None:
    import os

    if os.geteuid() == 0:
        pytest.skip("root ignores directory permissions")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    with pytest.raises(ConfigError, match="not writable"):
        pretrain(compose_cfg(run_dir=locked / "run"))


def test_resume_auto_refuses_a_changed_run(compose_cfg, tmp_path: Path) -> None:
    run_dir = pretrain(compose_cfg("train.steps=2"))
    checkpoint = run_dir / "checkpoints" / "last.pt"
    before = checkpoint.stat().st_mtime_ns
    with pytest.raises(ConfigError, match=r"optim\.lr: 0\.001 → 0\.002"):
        pretrain(compose_cfg("train.steps=2", "optim.lr=0.002"))
    with pytest.raises(ConfigError, match=r"method\.sim_coeff"):
        pretrain(compose_cfg("train.steps=2", "method.sim_coeff=10"))
    assert checkpoint.stat().st_mtime_ns == before  # nothing was recomputed or overwritten
    # Keys that do not change the run may differ; resume=never starts over.
    pretrain(compose_cfg("train.steps=2", "train.log_every=1", "train.num_workers=0"))
    pretrain(compose_cfg("train.steps=2", "optim.lr=0.002", "train.resume=never"))


def test_run_changing_differences_ignores_invariant_keys() -> None:
    old = {"optim": {"lr": 0.1}, "train": {"log_every": 1, "steps": 5}, "logger": {"mode": "x"}}
    new = {"optim": {"lr": 0.1}, "train": {"log_every": 9, "steps": 6}, "logger": {"mode": "y"}}
    assert run_changing_differences(old, new) == ["train.steps: 5 → 6"]


def test_lr_scaling_uses_global_batch(compose_cfg) -> None:
    resolved = resolve_config(compose_cfg("optim=lars", "optim.lr=0.2", "train.batch_size=512"))
    assert scaled_lr(resolved.optim, resolved.train.batch_size) == pytest.approx(0.4)
    resolved = resolve_config(compose_cfg("optim.lr=0.2", "train.batch_size=512"))
    assert scaled_lr(resolved.optim, resolved.train.batch_size) == pytest.approx(0.2)


def test_warmup_cosine_schedule_by_hand() -> None:
    schedule = LRSchedule(
        total_steps=10, warmup_steps=2, schedule=Schedule.warmup_cosine, final_ratio=0.1
    )
    assert schedule(0) == pytest.approx(0.5)
    assert schedule(1) == pytest.approx(1.0)
    assert schedule(2) == pytest.approx(1.0)
    assert schedule(6) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 4 / 8)))
    assert schedule(10) == pytest.approx(0.1)
    constant = LRSchedule(10, 0, Schedule.constant, 0.0)
    assert [constant(k) for k in (0, 5, 9)] == [1.0, 1.0, 1.0]


def test_param_groups_exclude_bias_and_norm(compose_cfg) -> None:
    resolved = resolve_config(
        compose_cfg("optim.weight_decay=0.1", "optim.exclude_bias_norm_from_wd=true")
    )
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    probe = torch.nn.Linear(4, 2)
    groups = {g["name"]: g for g in param_groups(model, resolved.optim, 0.5, probe)}
    assert [p.shape for p in groups["method"]["params"]] == [torch.Size([4, 3])]
    assert (
        len(groups["method_no_wd"]["params"]) == 3 and groups["method_no_wd"]["weight_decay"] == 0
    )
    assert groups["method"]["weight_decay"] == 0.1 and groups["method"]["lr"] == 0.5
    assert groups["probe"]["lr"] == resolved.optim.probe_lr


def test_experiment_choice_names_the_run_and_a_typo_fails(compose_cfg) -> None:
    from hydra.errors import MissingConfigException

    from sslequi.cli.pretrain import configs_dir

    recipes = sorted(p.stem for p in (configs_dir() / "experiment").glob("[!_]*.yaml"))
    if not recipes:
        pytest.skip("no experiment recipes yet")
    cfg = compose_cfg(f"experiment={recipes[0]}", tiny=False)
    assert cfg.experiment == recipes[0]  # runs/<experiment>/... is named by the recipe
    with pytest.raises(MissingConfigException, match="experiment/no_such_recipe"):
        compose_cfg("experiment=no_such_recipe")
