"""VICReg-Traj: VICReg plus a viewpoint-trajectory regulariser on view triplets.

Wang et al. 2024, "Pose-aware self-supervised learning with viewpoint trajectory
regularization" (arXiv 2403.14973, id unverified); implementation followed:
``hafezgh/seq-jepa:seq-jepa/src/models.py`` ``VICReg_Traj`` (l. 1366; methods.md §6).

Views come as triplets (l, c, r); one projector gives y_l, y_c, y_r (the code applies the
trajectory term to the projector outputs). With v₁ = y_c − y_l, v₂ = y_r − y_c and the
tangent projections u_i = v_i − ⟨v_i, y_c⟩ y_c,

    L = VICReg(y_l, y_c) + α · L_traj,   L_traj = −mean cos(u₁, u₂),

with VICReg 25 / 25 / 1 and α = 1. As coded, y_c is not normalised before the tangent
projection; ``normalize_center=True`` uses ŷ_c = y_c/‖y_c‖ (the tangent space of the sphere).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sslequi.methods.base import Method, MethodConfig
from sslequi.methods.losses import vicreg_terms
from sslequi.models.heads import mlp_projector, parse_mlp
from sslequi.registry import register_method
from sslequi.types import Batch, MethodSpec, StepOutput


def trajectory_loss(
    y_l: Tensor, y_c: Tensor, y_r: Tensor, normalize_center: bool = False
) -> Tensor:
    """L_traj = −mean_i cos(u₁, u₂), u_k = v_k − ⟨v_k, c⟩ c at the centre c (§6)."""
    center = F.normalize(y_c, dim=1) if normalize_center else y_c
    v1, v2 = y_c - y_l, y_r - y_c
    u1 = v1 - (v1 * center).sum(dim=1, keepdim=True) * center
    u2 = v2 - (v2 * center).sum(dim=1, keepdim=True) * center
    return -F.cosine_similarity(u1, u2, dim=1).mean()


@dataclass
class VICRegTrajConfig(MethodConfig):
    """VICReg-Traj options (seq-JEPA harness defaults)."""

    name: str = "vicreg_traj"
    projector: str = "2048-2048-2048"
    sim_coeff: float = 25.0
    std_coeff: float = 25.0
    cov_coeff: float = 1.0
    alpha: float = 1.0  # weight of L_traj
    normalize_center: bool = False

    def __post_init__(self) -> None:
        parse_mlp(self.projector)


@register_method("vicreg_traj", config=VICRegTrajConfig)
class VICRegTraj(Method):
    """VICReg between (l, c) + α · trajectory alignment over (l, c, r) (§6)."""

    config_class = VICRegTrajConfig
    config: VICRegTrajConfig

    def __init__(self, config: VICRegTrajConfig, backbone: nn.Module, feature_dim: int) -> None:
        super().__init__(config, backbone, feature_dim)
        self.projector = mlp_projector(feature_dim, parse_mlp(config.projector))

    def spec(self) -> MethodSpec:
        return MethodSpec(num_views=3, structure="triplets")

    def forward(self, batch: Batch) -> StepOutput:
        cfg = self.config
        # As coded, the three views pass through backbone and projector as one batch.
        y = self.backbone(torch.cat(batch.views[:3]))
        y_l, y_c, y_r = self.projector(y).chunk(3)
        ys = y.chunk(3)
        terms = vicreg_terms(y_l, y_c)
        terms["traj"] = trajectory_loss(y_l, y_c, y_r, cfg.normalize_center)
        loss = (
            cfg.sim_coeff * terms["sim"]
            + cfg.std_coeff * terms["var"]
            + cfg.cov_coeff * terms["cov"]
            + cfg.alpha * terms["traj"]
        )
        return StepOutput(
            loss=loss,
            terms={k: v.detach() for k, v in terms.items()},
            features=[y.detach() for y in ys],
        )
