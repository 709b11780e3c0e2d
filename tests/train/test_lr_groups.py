"""Per-parameter-group schedules, warmup start and schedule granularity (issue 11).

methods.md §7.4: SimSiam's predictor keeps a fixed rate on ImageNet (``--fix-pred-lr``) and
is never scheduled nor warmed up on CIFAR; E-SSL's warmup starts at 0
(``lr = base · step / warmup_steps``); the SimSiam ImageNet cosine moves once per epoch
(``init_lr · ½(1 + cos(π · epoch / epochs))``).
"""

from __future__ import annotations

import math

import pytest
import torch

from sslequi.config import OptimConfig, OptimizerName, Schedule, ScheduleGranularity
from sslequi.methods.base import LRGroup
from sslequi.methods.essl import ESSL, ESSLConfig
from sslequi.methods.simsiam import SimSiam, SimSiamConfig
from sslequi.train.optim import LRSchedule, make_optimizer, make_scheduler, param_groups


def _tiny_backbone() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 8))


def _simsiam(fix: bool) -> SimSiam:
    config = SimSiamConfig(
        projector_hidden=8, projector_dim=8, projector_layers=2, predictor_hidden=4,
        fix_predictor_lr=fix,
    )  # fmt: skip
    return SimSiam(config, _tiny_backbone(), 8)


def _lrs_over(method: torch.nn.Module, steps: int) -> dict[str, list[float]]:
    """The rate of each group at steps 0..steps-1 of a 2-step warmup + cosine over 6."""
    config = OptimConfig(name=OptimizerName.sgd, exclude_bias_norm_from_wd=True)
    optimizer = make_optimizer(param_groups(method, config, 0.4, None), config)
    scheduler = make_scheduler(optimizer, LRSchedule(6, 2, Schedule.warmup_cosine, 0.0))
    seen: dict[str, list[float]] = {g["name"]: [] for g in optimizer.param_groups}
    for _ in range(steps):
        for group in optimizer.param_groups:
            seen[group["name"]].append(group["lr"])
        optimizer.step()
        scheduler.step()
    return seen


def test_fixed_predictor_group_keeps_the_peak_rate() -> None:
    seen = _lrs_over(_simsiam(fix=True), 6)
    assert set(seen) == {"method", "method_no_wd", "predictor", "predictor_no_wd"}
    for name in ("predictor", "predictor_no_wd"):
        assert seen[name] == pytest.approx([0.4] * 6)  # no warmup, no cosine
    assert seen["method"][0] == pytest.approx(0.2)  # warmup (k + 1)/W
    assert seen["method"][5] < 0.4 * 0.2  # cosine towards 0
    # Off (today's behaviour): the predictor follows the schedule with everything else.
    assert set(_lrs_over(_simsiam(fix=False), 1)) == {"method", "method_no_wd"}


def test_fixed_group_holds_exactly_the_predictor_parameters() -> None:
    method = _simsiam(fix=True)
    config = OptimConfig(name=OptimizerName.sgd, weight_decay=5e-4)
    groups = {g["name"]: g for g in param_groups(method, config, 0.1, None)}
    predictor = {id(p) for p in method.predictor.parameters()}
    assert {id(p) for p in groups["predictor"]["params"]} == predictor  # type: ignore[union-attr]
    assert not predictor & {id(p) for p in groups["method"]["params"]}  # type: ignore[union-attr]
    assert groups["predictor"]["weight_decay"] == 5e-4 and groups["predictor"]["fixed_lr"]


def test_essl_forwards_the_base_groups_and_schedules_its_rotation_head() -> None:
    config = ESSLConfig(
        base="simsiam",
        base_overrides={
            "projector_hidden": 8, "projector_dim": 8, "projector_layers": 2,
            "predictor_hidden": 4, "fix_predictor_lr": True,
        },
        head_hidden=8, head_second_relu=False,
    )  # fmt: skip
    method = ESSL(config, _tiny_backbone(), 8)
    assert method.lr_groups() == [LRGroup("predictor", ("base.predictor",), fixed=True)]
    groups = {g["name"]: g for g in param_groups(method, OptimConfig(), 0.1, None)}
    fixed = {id(p) for p in groups["predictor"]["params"]}  # type: ignore[union-attr]
    assert fixed == {id(p) for p in method.base.predictor.parameters()}
    head = {id(p) for p in method.rotation_head.parameters()}
    assert head <= {id(p) for p in groups["method"]["params"]}  # type: ignore[union-attr]


def test_a_group_naming_no_parameters_fails() -> None:
    class Bad(torch.nn.Linear):
        def lr_groups(self) -> list[LRGroup]:
            return [LRGroup("predictor", ("nothing_here",))]

    with pytest.raises(ValueError, match="predictor"):
        param_groups(Bad(2, 2), OptimConfig(), 0.1, None)


def test_warmup_from_zero_matches_essl_adjust_learning_rate() -> None:
    """E-SSL: lr = base · step / warmup_steps, then cosine over the remaining steps."""
    total, warmup = 20, 5
    ours = LRSchedule(total, warmup, Schedule.warmup_cosine, 0.0, warmup_from_zero=True)
    for step in range(total):
        if step < warmup:
            reference = step / warmup
        else:
            reference = 0.5 * (1 + math.cos(math.pi * (step - warmup) / (total - warmup)))
        assert ours(step) == pytest.approx(reference), step
    assert ours(0) == 0.0
    assert LRSchedule(total, warmup, Schedule.warmup_cosine, 0.0)(0) == pytest.approx(0.2)


def test_epoch_granularity_matches_simsiam_adjust_learning_rate() -> None:
    """SimSiam ImageNet: init_lr · ½(1 + cos(π · epoch / epochs)), constant within an epoch."""
    epochs, per_epoch = 4, 3
    ours = LRSchedule(
        epochs * per_epoch, 0, Schedule.warmup_cosine, 0.0,
        granularity=ScheduleGranularity.epoch, steps_per_epoch=per_epoch,
    )  # fmt: skip
    for step in range(epochs * per_epoch):
        epoch = step // per_epoch
        assert ours(step) == pytest.approx(0.5 * (1 + math.cos(math.pi * epoch / epochs))), step
    per_step = LRSchedule(epochs * per_epoch, 0, Schedule.warmup_cosine, 0.0)
    assert per_step(1) != pytest.approx(ours(1))
