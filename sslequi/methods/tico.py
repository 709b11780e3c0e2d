"""TiCo — Transformation Invariance and Covariance Contrast (baseline).

Zhu, Moraes, Karakulak, Sobol, Canziani, LeCun 2022 (arXiv 2206.10698); no official code;
reference implementation ``lightly-ai/lightly:lightly/loss/tico_loss.py`` (methods.md §13).
With z_a the online embedding of view 1 and z_b the momentum (target) branch's embedding of
view 2, both L2-normalised (N × d):

    B_t = z_aᵀ z_a / N (detached),   C_t = β C_{t−1} + (1 − β) B_t   (C₀ = 0, stored detached)
    L = [1 − mean_i ⟨z_a,i, z_b,i⟩] + ρ · mean_i z_a,iᵀ C_t z_a,i,     β = 0.9, ρ = 8.

The loss is lightly's ``TiCoLoss`` (tested against this formula); its running C is a
plain attribute, so this method keeps C in a persistent buffer (``covariance``) and hands it
to the loss each step: a resumed run continues from the same C. C is updated only in
training mode.

Architecture (``lightly:benchmarks/imagenet/resnet50/tico.py``, ``TiCoProjectionHead``):
projector D → 4096 (BN, ReLU) → 256; the target branch is an EMA copy of backbone +
projector with momentum following the cosine 0.99 → 1 over training (``sslequi.models.ema``,
updated after every optimizer step). Augmentation: BYOL's asymmetric views
(``TiCoTransform = BYOLTransform``; ``configs/augment/byol.yaml``).

Code vs specification (register rule 4, a plain defect): lightly's ImageNet benchmark calls
``criterion(teacher_projections, student_projections)``, i.e. z_a from the gradient-free
target branch, so the covariance-contrast term carries no gradient at all; its own loss
docstring (and §13) put the learned branch in z_a. Default ``z_a_branch="online"`` follows
§13; ``"target"`` reproduces the benchmark. (That benchmark also probes the EMA backbone;
the probes here read the online backbone, as for BYOL.)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from lightly.loss import TiCoLoss
from lightly.models.modules.heads import TiCoProjectionHead
from torch import Tensor, nn

from sslequi.methods.base import Method, MethodConfig
from sslequi.models.ema import EMA, cosine_momentum
from sslequi.registry import register_method
from sslequi.types import Batch, MethodSpec, StepOutput

Z_A_BRANCHES = ("online", "target")


def tico_loss(
    z_a: Tensor, z_b: Tensor, covariance: Tensor, beta: float = 0.9, rho: float = 8.0
) -> tuple[Tensor, Tensor]:
    """(L, C_t) of §13 for un-normalised embeddings z_a, z_b [N, d] and C_{t−1} [d, d], via
    lightly's ``TiCoLoss``; C_t is detached (the next step's C_{t−1})."""
    criterion = TiCoLoss(beta=beta, rho=rho, gather_distributed=False)
    criterion.C = covariance.detach()
    loss = criterion(z_a, z_b, update_covariance_matrix=True)
    assert criterion.C is not None
    return loss, criterion.C


@dataclass
class TiCoConfig(MethodConfig):
    """TiCo options (``configs/method/tico.yaml``); defaults: §13 / lightly's benchmark."""

    name: str = "tico"
    beta: float = 0.9  # EMA coefficient of the covariance C
    rho: float = 8.0  # weight of the covariance-contrast term
    projector_hidden: int = 4096
    projector_dim: int = 256
    base_momentum: float = 0.99  # target branch: cosine 0.99 → 1
    momentum_schedule: str = "cosine"  # cosine | constant
    z_a_branch: str = "online"  # online (§13, lightly's loss docstring) | target (benchmark)

    def __post_init__(self) -> None:
        if not 0.0 <= self.beta < 1.0:
            raise ValueError(f"tico.beta must lie in [0, 1), got {self.beta}")
        if self.rho < 0:
            raise ValueError(f"tico.rho must be ≥ 0, got {self.rho}")
        if not 0.0 <= self.base_momentum <= 1.0:
            raise ValueError(f"tico.base_momentum must lie in [0, 1], got {self.base_momentum}")
        if self.momentum_schedule not in ("cosine", "constant"):
            raise ValueError(
                f"tico.momentum_schedule must be cosine or constant, got {self.momentum_schedule!r}"
            )
        if self.z_a_branch not in Z_A_BRANCHES:
            raise ValueError(
                f"tico.z_a_branch must be one of {Z_A_BRANCHES}, got {self.z_a_branch!r}"
            )
        if self.projector_hidden < 1 or self.projector_dim < 1:
            raise ValueError("tico.projector_hidden and tico.projector_dim must be ≥ 1")


@register_method("tico", config=TiCoConfig)
class TiCo(Method):
    """Online backbone + projector; EMA target backbone + projector; the TiCo loss."""

    config_class = TiCoConfig
    config: TiCoConfig
    covariance: Tensor

    def __init__(self, config: TiCoConfig, backbone: nn.Module, feature_dim: int) -> None:
        super().__init__(config, backbone, feature_dim)
        self.projector = TiCoProjectionHead(
            feature_dim, config.projector_hidden, config.projector_dim
        )
        self.target_backbone = EMA(self.backbone)
        self.target_projector = EMA(self.projector)
        self.register_buffer("covariance", torch.zeros(config.projector_dim, config.projector_dim))
        self.momentum = config.base_momentum

    def spec(self) -> MethodSpec:
        return MethodSpec(num_views=2)

    def project(self, y: Tensor) -> Tensor:
        return F.normalize(self.projector(y), dim=1)

    @torch.no_grad()
    def target_embedding(self, view: Tensor) -> Tensor:
        """z_b = g_ξ(f_ξ(x)), no gradient."""
        return self.target_projector(self.target_backbone(view))

    def forward(self, batch: Batch) -> StepOutput:
        view_1, view_2 = batch.views[:2]
        y_1 = self.backbone(view_1)
        online = self.projector(y_1)
        target = self.target_embedding(view_2)
        z_a, z_b = (online, target) if self.config.z_a_branch == "online" else (target, online)
        loss, covariance = tico_loss(z_a, z_b, self.covariance, self.config.beta, self.config.rho)
        if self.training:
            self.covariance.copy_(covariance)
        with torch.no_grad():
            a, b = F.normalize(z_a, dim=1), F.normalize(z_b, dim=1)
            invariance = 1.0 - (a * b).sum(dim=1).mean()
        return StepOutput(
            loss=loss,
            terms={
                "invariance": invariance,
                "covariance_contrast": loss.detach() - invariance,
                "momentum": torch.tensor(self.momentum, device=loss.device),
            },
            features=[y_1.detach()],  # only view 1 passes the online backbone
        )

    def on_step_end(self, step: int, total_steps: int) -> None:
        """ξ ← m ξ + (1 − m) θ for backbone and projector; m from the cosine 0.99 → 1."""
        if self.config.momentum_schedule == "cosine":
            self.momentum = cosine_momentum(step, total_steps, self.config.base_momentum)
        else:
            self.momentum = self.config.base_momentum
        self.target_backbone.update(self.backbone, self.momentum)
        self.target_projector.update(self.projector, self.momentum)
