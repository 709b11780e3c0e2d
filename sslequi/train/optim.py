"""Optimizer, parameter groups and learning-rate schedule from ``OptimConfig``.

Parameter groups are data: the method's parameters (split into decay / no-decay when
``exclude_bias_norm_from_wd``), the groups the method declares with ``Method.lr_groups``
(e.g. SimSiam's predictor at a fixed rate, methods.md §7.4), and the online probe's own
group with its own constant rate. The schedule is linear warmup (from one step's rate,
or from 0 with ``warmup_from_zero``) then cosine to ``final_lr_ratio`` (or constant, or
a multistep LR table: × ``lr_gamma`` at each of ``lr_milestones``),
stepped per optimizer step or per epoch (``schedule_granularity``), as a ``LambdaLR`` so
its state is checkpointed; fixed groups and the probe keep their peak rate.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from sslequi.config import (
    LarsTrustRatio,
    LRScaling,
    OptimConfig,
    OptimizerName,
    Schedule,
    ScheduleGranularity,
)
from sslequi.methods.base import LRGroup
from sslequi.train.lars import UpdateNormLARS


def scaled_lr(config: OptimConfig, global_batch: int) -> float:
    """The peak rate: ``lr`` or ``lr × global_batch / 256`` (never from the world size)."""
    if config.lr_scaling is LRScaling.linear_per_256:
        return config.lr * global_batch / 256
    return config.lr


def _declared_group(name: str, declared: list[LRGroup]) -> LRGroup | None:
    for group in declared:
        if any(name == m or name.startswith(m + ".") for m in group.modules):
            return group
    return None


def param_groups(
    method: nn.Module, config: OptimConfig, lr: float, probe: nn.Module | None
) -> list[dict[str, object]]:
    """Groups ``method`` (decay), ``method_no_wd`` (1-D params, if excluded), one (or two,
    ``<name>_no_wd``) per ``LRGroup`` the method declares (``fixed_lr`` set when fixed),
    and ``probe``. A declared module that holds no parameter fails (``ValueError``)."""
    lr_groups = getattr(method, "lr_groups", None)
    declared: list[LRGroup] = list(lr_groups()) if callable(lr_groups) else []
    buckets: dict[tuple[str, bool], list[nn.Parameter]] = {("method", False): []}
    fixed = {group.name: group.fixed for group in declared}
    used: set[str] = set()
    for name, parameter in method.named_parameters():
        if not parameter.requires_grad:
            continue
        group = _declared_group(name, declared)
        group_name = "method" if group is None else group.name
        if group is not None:
            used.add(group.name)
        no_wd = config.exclude_bias_norm_from_wd and parameter.ndim <= 1
        buckets.setdefault((group_name, no_wd), []).append(parameter)
    unused = [g.name for g in declared if g.name not in used]
    if unused:
        raise ValueError(f"lr groups {unused} name modules without trainable parameters")
    groups: list[dict[str, object]] = []
    for (group_name, no_wd), params in buckets.items():
        if not params and group_name != "method":
            continue
        entry: dict[str, object] = {
            "name": f"{group_name}_no_wd" if no_wd else group_name,
            "params": params,
            "lr": lr,
            "weight_decay": 0.0 if no_wd else config.weight_decay,
        }
        if fixed.get(group_name, False):
            entry["fixed_lr"] = True
        groups.append(entry)
    groups.sort(key=lambda g: (g["name"] != "method", g["name"] != "method_no_wd"))
    if probe is not None:
        groups.append(
            {
                "name": "probe",
                "params": list(probe.parameters()),
                "lr": config.probe_lr,
                "weight_decay": config.probe_weight_decay,
            }
        )
    return groups


def make_optimizer(groups: list[dict[str, object]], config: OptimConfig) -> torch.optim.Optimizer:
    """Adam, AdamW, SGD or LARS (lightly's) over ``groups``."""
    lr = float(groups[0]["lr"])  # type: ignore[arg-type]
    if config.name is OptimizerName.adam:
        return torch.optim.Adam(groups, lr=lr, betas=(config.beta1, config.beta2), eps=config.eps)
    if config.name is OptimizerName.adamw:
        return torch.optim.AdamW(groups, lr=lr, betas=(config.beta1, config.beta2), eps=config.eps)
    if config.name is OptimizerName.sgd:
        return torch.optim.SGD(groups, lr=lr, momentum=config.momentum, nesterov=config.nesterov)
    if config.lars_trust_ratio is LarsTrustRatio.update_norm:
        if config.nesterov:
            raise ValueError("optim.lars_trust_ratio=update_norm has no Nesterov variant")
        return UpdateNormLARS(
            groups, lr=lr, momentum=config.momentum, trust_coefficient=config.trust_coefficient
        )
    from lightly.utils.lars import LARS

    return LARS(
        groups,
        lr=lr,
        momentum=config.momentum,
        nesterov=config.nesterov,
        trust_coefficient=config.trust_coefficient,
    )


@dataclass(frozen=True)
class LRSchedule:
    """Multiplier of the peak rate at step k (k = optimizer steps already taken)."""

    total_steps: int
    warmup_steps: int
    schedule: Schedule
    final_ratio: float
    warmup_from_zero: bool = False  # k/W (E-SSL code) instead of (k + 1)/W
    granularity: ScheduleGranularity = ScheduleGranularity.step
    steps_per_epoch: int = 1  # for ``granularity=epoch``
    milestones: tuple[float, ...] = ()  # multistep: fractions of total_steps
    gamma: float = 0.1  # multistep: factor applied at each milestone

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step if self.warmup_from_zero else step + 1) / self.warmup_steps
        if self.schedule in (Schedule.constant, Schedule.warmup_constant):
            return 1.0
        if self.schedule is Schedule.multistep:
            passed = sum(step >= round(m * self.total_steps) for m in self.milestones)
            return self.gamma**passed
        if self.granularity is ScheduleGranularity.epoch:
            epoch_start = step // self.steps_per_epoch * self.steps_per_epoch
            step = max(self.warmup_steps, epoch_start)
        span = max(1, self.total_steps - self.warmup_steps)
        progress = min(1.0, (step - self.warmup_steps) / span)
        return self.final_ratio + (1 - self.final_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def warmup_steps(config: OptimConfig, steps_per_epoch: int) -> int:
    return config.warmup_steps + round(config.warmup_epochs * steps_per_epoch)


def make_scheduler(
    optimizer: torch.optim.Optimizer, schedule: LRSchedule
) -> torch.optim.lr_scheduler.LambdaLR:
    """The schedule on method groups; fixed-rate groups and the probe keep their rate."""

    def constant(_step: int) -> float:
        return 1.0

    def scheduled(step: int) -> float:  # a function, so LambdaLR saves no object state
        return schedule(step)

    lambdas: list[Callable[[int], float]] = [
        constant if group.get("name") == "probe" or group.get("fixed_lr") else scheduled
        for group in optimizer.param_groups
    ]
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambdas)
