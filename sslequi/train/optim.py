"""Optimizer, parameter groups and learning-rate schedule from ``OptimConfig``.

Parameter groups are data: the method's parameters (split into decay / no-decay when
``exclude_bias_norm_from_wd``), and the online probe's own group with its own constant
rate. The schedule is linear warmup then cosine to ``final_lr_ratio`` (or constant),
as a ``LambdaLR`` so its state is checkpointed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from sslequi.config import LRScaling, OptimConfig, OptimizerName, Schedule


def scaled_lr(config: OptimConfig, global_batch: int) -> float:
    """The peak rate: ``lr`` or ``lr × global_batch / 256`` (never from the world size)."""
    if config.lr_scaling is LRScaling.linear_per_256:
        return config.lr * global_batch / 256
    return config.lr


def param_groups(
    method: nn.Module, config: OptimConfig, lr: float, probe: nn.Module | None
) -> list[dict[str, object]]:
    """Groups ``method`` (decay), ``method_no_wd`` (1-D params, if excluded) and ``probe``."""
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for parameter in method.parameters():
        if not parameter.requires_grad:
            continue
        if config.exclude_bias_norm_from_wd and parameter.ndim <= 1:
            no_decay.append(parameter)
        else:
            decay.append(parameter)
    groups: list[dict[str, object]] = [
        {"name": "method", "params": decay, "lr": lr, "weight_decay": config.weight_decay}
    ]
    if no_decay:
        groups.append({"name": "method_no_wd", "params": no_decay, "lr": lr, "weight_decay": 0.0})
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

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        if self.schedule is Schedule.constant:
            return 1.0
        span = max(1, self.total_steps - self.warmup_steps)
        progress = min(1.0, (step - self.warmup_steps) / span)
        return self.final_ratio + (1 - self.final_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def warmup_steps(config: OptimConfig, steps_per_epoch: int) -> int:
    return config.warmup_steps + round(config.warmup_epochs * steps_per_epoch)


def make_scheduler(
    optimizer: torch.optim.Optimizer, schedule: LRSchedule
) -> torch.optim.lr_scheduler.LambdaLR:
    """The schedule on method groups; the probe group keeps its constant rate."""

    def constant(_step: int) -> float:
        return 1.0

    def scheduled(step: int) -> float:  # a function, so LambdaLR saves no object state
        return schedule(step)

    lambdas: list[Callable[[int], float]] = [
        constant if group.get("name") == "probe" else scheduled for group in optimizer.param_groups
    ]
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambdas)
