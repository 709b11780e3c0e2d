"""Exponential-moving-average targets for momentum encoders (BYOL, methods.md §BYOL).

``ema_update`` moves a target network towards its online twin in place:
    θ_target ← m · θ_target + (1 − m) · θ_online
and ``cosine_momentum`` is BYOL's schedule (Grill et al. 2020, §3.2):
    m(k) = 1 − (1 − m_base) · (cos(π k / K) + 1) / 2.
Buffers (BatchNorm running statistics) are copied, not averaged, as in BYOL's code.
Methods import this module; it imports nothing from the trainer.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn


@torch.no_grad()
def ema_update(target: nn.Module, online: nn.Module, momentum: float) -> None:
    """In place: ``target ← momentum · target + (1 − momentum) · online`` for every parameter.

    Floating-point buffers are copied from ``online``. Both modules must have the same
    parameter names and shapes.
    """
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(f"EMA momentum must lie in [0, 1], got {momentum}")
    target_params = dict(target.named_parameters())
    online_params = dict(online.named_parameters())
    if target_params.keys() != online_params.keys():
        missing = sorted(set(online_params) ^ set(target_params))
        raise ValueError(f"EMA target and online modules differ in parameters: {missing[:5]}")
    names = list(online_params)
    targets = [target_params[n].data for n in names]
    onlines = [online_params[n].data for n in names]
    if targets:
        torch._foreach_lerp_(targets, onlines, 1.0 - momentum)
    online_buffers = dict(online.named_buffers())
    for name, buffer in target.named_buffers():
        source = online_buffers.get(name)
        if source is not None:
            buffer.copy_(source)


def cosine_momentum(step: int, total: int, base: float) -> float:
    """BYOL's momentum schedule: ``base`` at step 0, rising to 1 at step ``total``."""
    if total <= 0:
        return base
    progress = min(max(step / total, 0.0), 1.0)
    return 1.0 - (1.0 - base) * (math.cos(math.pi * progress) + 1.0) / 2.0


class EMA(nn.Module):
    """A frozen copy of ``online`` that follows it by ``ema_update``.

    The copy has ``requires_grad=False`` and is saved in the owner's ``state_dict`` like any
    submodule, so a resumed run continues from the same target weights.
    """

    def __init__(self, online: nn.Module) -> None:
        super().__init__()
        self.module = copy.deepcopy(online)
        for parameter in self.module.parameters():
            parameter.requires_grad_(False)

    def update(self, online: nn.Module, momentum: float) -> None:
        ema_update(self.module, online, momentum)

    def forward(self, *args: object, **kwargs: object) -> torch.Tensor:
        return self.module(*args, **kwargs)
