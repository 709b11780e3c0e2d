"""BYOL (Grill et al., NeurIPS 2020, arXiv 2006.07733): predict an EMA target's projection.

Online: y = f_θ(x), z = g_θ(y), p = q_θ(z). Target: z̄ = g_ξ(f_ξ(x)), ξ an exponential moving
average of θ. For two views (BYOL Eqs. 2–5; methods.md §14):

    L = ‖p̂₁ − ẑ̄₂‖² + ‖p̂₂ − ẑ̄₁‖² = (2 − 2 cos(p₁, sg z̄₂)) + (2 − 2 cos(p₂, sg z̄₁))

(the paper sums the two directions). After every optimizer step ξ ← τ ξ + (1 − τ) θ with
τ(k) = 1 − (1 − τ_base)(cos(πk/K) + 1)/2 (paper §3.2, τ_base = 0.996), via
``sslequi.models.ema``. Heads are lightly's BYOL heads; defaults are the paper's 4096 hidden /
256 output for projector and predictor. seq-JEPA's baseline uses projector 2048 → 128 and a
2048 predictor hidden layer (``projector_hidden=2048 projector_dim=128 predictor_hidden=2048``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from sslequi.methods.base import Method, MethodConfig
from sslequi.methods.losses import negative_cosine
from sslequi.models.ema import EMA, cosine_momentum
from sslequi.models.heads import byol_predictor, byol_projector
from sslequi.registry import register_method
from sslequi.types import Batch, MethodSpec, StepOutput


@dataclass
class BYOLConfig(MethodConfig):
    """BYOL options (``configs/method/byol.yaml``)."""

    name: str = "byol"
    projector_hidden: int = 4096
    projector_dim: int = 256
    predictor_hidden: int = 4096
    base_momentum: float = 0.996  # τ_base (paper); lightly's examples use 0.99
    momentum_schedule: str = "cosine"  # "cosine" (paper) or "constant"

    def __post_init__(self) -> None:
        if not 0.0 <= self.base_momentum <= 1.0:
            raise ValueError(f"byol.base_momentum must lie in [0, 1], got {self.base_momentum}")
        if self.momentum_schedule not in ("cosine", "constant"):
            raise ValueError(
                "byol.momentum_schedule must be 'cosine' or 'constant', got "
                f"{self.momentum_schedule!r}"
            )


@register_method("byol", config=BYOLConfig)
class BYOL(Method):
    """Online backbone + projector + predictor; EMA target backbone + projector."""

    config_class = BYOLConfig
    config: BYOLConfig

    def __init__(self, config: BYOLConfig, backbone: nn.Module, feature_dim: int) -> None:
        super().__init__(config, backbone, feature_dim)
        self.projector = byol_projector(feature_dim, config.projector_hidden, config.projector_dim)
        self.predictor = byol_predictor(config.projector_dim, config.predictor_hidden)
        self.target_backbone = EMA(self.backbone)
        self.target_projector = EMA(self.projector)
        self.momentum = config.base_momentum

    def spec(self) -> MethodSpec:
        return MethodSpec(num_views=2)

    @torch.no_grad()
    def target_embedding(self, view: Tensor) -> Tensor:
        """z̄ = g_ξ(f_ξ(x)), no gradient."""
        return self.target_projector(self.target_backbone(view))

    def forward(self, batch: Batch) -> StepOutput:
        view_1, view_2 = batch.views[:2]
        y_1, y_2 = self.backbone(view_1), self.backbone(view_2)
        p_1 = self.predictor(self.projector(y_1))
        p_2 = self.predictor(self.projector(y_2))
        target_1, target_2 = self.target_embedding(view_1), self.target_embedding(view_2)
        loss_12 = negative_cosine(p_1, target_2)
        loss_21 = negative_cosine(p_2, target_1)
        loss = loss_12 + loss_21
        return StepOutput(
            loss=loss,
            terms={
                "regression": loss.detach(),
                "momentum": torch.tensor(self.momentum, device=loss.device),
            },
            features=[y_1.detach(), y_2.detach()],
        )

    def on_step_end(self, step: int, total_steps: int) -> None:
        """ξ ← τ ξ + (1 − τ) θ for backbone and projector, τ from the momentum schedule."""
        if self.config.momentum_schedule == "cosine":
            self.momentum = cosine_momentum(step, total_steps, self.config.base_momentum)
        else:
            self.momentum = self.config.base_momentum
        self.target_backbone.update(self.backbone, self.momentum)
        self.target_projector.update(self.projector, self.momentum)
