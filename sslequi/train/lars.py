"""LARS as the Barlow Twins code writes it, which E-SSL's ImageNet mains copy
(``rdangovs/essl imagenet/simclr/main.py`` class ``LARS``; methods.md §7.4).

Per parameter p with gradient g, in a group with weight decay λ (> 0):

    u = g + λ p,   q = η ‖p‖ / ‖u‖ (1 where ‖p‖ = 0 or ‖u‖ = 0),
    μ ← m μ + q u,   p ← p − lr · μ.

Groups with λ = 0 (the 1-D parameters with ``exclude_bias_norm_from_wd``) take neither
the decay nor the adaptation, as the code's ``exclude_bias_and_norm`` filters. lightly's
``LARS`` (the default, ``optim.lars_trust_ratio=lightly``) divides by ‖g‖ + λ‖p‖ instead
of ‖g + λp‖, the triangle-inequality bound of the same norm.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch


class UpdateNormLARS(torch.optim.Optimizer):
    """LARS with the trust ratio η‖p‖/‖g + λp‖ (module docstring)."""

    def __init__(
        self,
        params: Iterable[Any],
        lr: float,
        weight_decay: float = 0.0,
        momentum: float = 0.9,
        trust_coefficient: float = 0.001,
    ) -> None:
        defaults = {
            "lr": lr,
            "weight_decay": weight_decay,
            "momentum": momentum,
            "trust_coefficient": trust_coefficient,
        }
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            decay = group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                update = p.grad
                if decay != 0:
                    update = update.add(p, alpha=decay)
                    p_norm, u_norm = torch.norm(p), torch.norm(update)
                    one = torch.ones_like(p_norm)
                    ratio = torch.where(
                        (p_norm > 0) & (u_norm > 0),
                        group["trust_coefficient"] * p_norm / u_norm,
                        one,
                    )
                    update = update.mul(ratio)
                state = self.state[p]
                if "mu" not in state:
                    state["mu"] = torch.zeros_like(p)
                mu = state["mu"]
                mu.mul_(group["momentum"]).add_(update)
                p.add_(mu, alpha=-group["lr"])
        return loss
