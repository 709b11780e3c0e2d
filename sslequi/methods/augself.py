"""SimCLR + AugSelf: SimCLR plus a head regressing the relative transformation.

AugSelf: Lee et al., NeurIPS 2021 (arXiv 2111.09613, id unverified); implementation
followed: ``facebookresearch/SIE:src/models.py`` ``SimCLRAugSelf`` (l. 1378) and
``SimCLRAugSelfRotColor`` (methods.md §5):

    L = NT-Xent(z, z′; τ = 0.1) + w · MSE(h([y ‖ y′]), g),   w = 1 (``--ec-weight``),

with a single projector z = proj(y) and the AugSelf head h = MLP(2D → 2D → 2D → k) on the
concatenated **backbone** pair (1024 → 1024 → 1024 → 4 for ResNet-18); g is the relative
quaternion (k = 4) or [q, Δhues] (k = 6, ``action=rot_color``). The head is a regressor,
not a predictor in embedding space, so there is no MRR predictor.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sslequi.methods.base import Method, MethodConfig
from sslequi.methods.distributed import gather
from sslequi.methods.losses import nt_xent
from sslequi.models.heads import mlp_projector, parse_mlp
from sslequi.registry import register_method
from sslequi.types import ACTION_DIMS, Batch, MethodSpec, StepOutput


def augself_head(feature_dim: int, action_dim: int) -> nn.Sequential:
    """h: Linear(2D, 2D) → ReLU → Linear(2D, 2D) → ReLU → Linear(2D, k) (§5)."""
    width = 2 * feature_dim
    return nn.Sequential(
        nn.Linear(width, width),
        nn.ReLU(inplace=True),
        nn.Linear(width, width),
        nn.ReLU(inplace=True),
        nn.Linear(width, action_dim),
    )


def augself_regression(prediction: Tensor, target: Tensor) -> Tensor:
    """MSE between the head's output and the relative transformation g (§5)."""
    return F.mse_loss(prediction, target)


@dataclass
class AugSelfConfig(MethodConfig):
    """SimCLR + AugSelf options (SIE-code defaults)."""

    name: str = "augself"
    projector: str = "2048-2048-2048"
    temperature: float = 0.1
    ec_weight: float = 1.0  # w on the AugSelf regression
    action: str = "rotation_quat"  # regression target; 'rot_color' for RotColor

    def __post_init__(self) -> None:
        parse_mlp(self.projector)
        if self.action not in ACTION_DIMS:
            raise ValueError(
                f"augself: unknown action {self.action!r}; known {sorted(ACTION_DIMS)}"
            )
        if self.temperature <= 0:
            raise ValueError("augself: temperature must be > 0")


@register_method("augself", config=AugSelfConfig)
class AugSelf(Method):
    """SimCLR on proj(y) + AugSelf regression of g from [y ‖ y′] (§5)."""

    config_class = AugSelfConfig
    config: AugSelfConfig

    def __init__(self, config: AugSelfConfig, backbone: nn.Module, feature_dim: int) -> None:
        super().__init__(config, backbone, feature_dim)
        self.projector = mlp_projector(feature_dim, parse_mlp(config.projector))
        self.head = augself_head(feature_dim, ACTION_DIMS[config.action])

    def spec(self) -> MethodSpec:
        return MethodSpec(num_views=2, structure="pairs", actions=(self.config.action,))

    def forward(self, batch: Batch) -> StepOutput:
        cfg = self.config
        y_a, y_b = self.backbone(batch.views[0]), self.backbone(batch.views[1])
        contrastive = nt_xent(
            gather(self.projector(y_a)), gather(self.projector(y_b)), cfg.temperature
        )
        regression = augself_regression(
            self.head(torch.cat([y_a, y_b], dim=1)), batch.actions.pair(cfg.action)
        )
        loss = contrastive + cfg.ec_weight * regression
        return StepOutput(
            loss=loss,
            terms={"inv": contrastive.detach(), "augself": regression.detach()},
            features=[y_a.detach(), y_b.detach()],
        )
