"""SimCLR (Chen et al. 2020, arXiv 2002.05709): NT-Xent between two views' projections.

    z = g(f(x)),  L = NT-Xent(z¹, z²; τ)  with 2N − 2 negatives, mean over the 2N anchors
    (SimCLR Eq. 1; methods.md §1.2, §14).

Defaults follow the 3DIEBench reference baseline (SIE code ``SimCLR``): SIE's projector
``512 → 2048-2048-2048`` ([Linear → BN → ReLU] × 2 → Linear without bias) and τ = 0.1, with
NT-Xent over the batch gathered across GPUs. seq-JEPA, E-SSL CIFAR and CARE use τ = 0.5
(set ``temperature``). The loss is lightly's ``NTXentLoss``, which equals §1.2 (tested
against ``losses.nt_xent``); with ``gather_distributed`` each rank's anchors see the negatives
of every rank, the same gradient as SIE's gathered 2B × 2B similarity matrix.

E-SSL's projectors (methods.md §7.3) have no bias in any Linear and end in a BatchNorm:
``projector_hidden_bias=false`` with ``projector_final_bn=no_affine`` (CIFAR,
``Lin-BN-ReLU-Lin-BN(affine=False)``) or ``affine`` (ImageNet, ``2048-2048-128``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from lightly.loss import NTXentLoss
from torch import Tensor, nn

from sslequi.methods.base import Method, MethodConfig
from sslequi.methods.distributed import gather
from sslequi.methods.losses import cross_view_infonce
from sslequi.models.heads import FINAL_BN, mlp_projector
from sslequi.registry import register_method
from sslequi.types import Batch, MethodSpec, StepOutput


@dataclass
class SimCLRConfig(MethodConfig):
    """SimCLR options (``configs/method/simclr.yaml``)."""

    name: str = "simclr"
    projector: str = "2048-2048-2048"  # SIE's --mlp (methods.md §14)
    temperature: float = 0.1  # SIE code; 0.5 in seq-JEPA / E-SSL CIFAR / CARE CIFAR
    gather_distributed: bool = True  # negatives from every GPU (SIE, E-SSL IN)
    # 'all': NT-Xent, 2N − 2 negatives; 'cross_view': E-SSL CIFAR's symmetrised InfoNCE with
    # B − 1 cross-view negatives (methods.md §1.2, register item 14)
    negatives: str = "all"
    projector_hidden_bias: bool = True  # SIE: Linear(bias) before BN; E-SSL: no bias
    projector_final_bn: str = "none"  # none (SIE) | no_affine (E-SSL CIFAR) | affine (E-SSL IN)

    def __post_init__(self) -> None:
        if self.projector_final_bn not in FINAL_BN:
            raise ValueError(
                f"simclr.projector_final_bn must be one of {FINAL_BN}, "
                f"got {self.projector_final_bn!r}"
            )
        if not self.temperature > 0:
            raise ValueError(f"simclr.temperature must be > 0, got {self.temperature}")
        if self.negatives not in ("all", "cross_view"):
            raise ValueError(
                f"simclr.negatives must be 'all' or 'cross_view', got {self.negatives!r}"
            )


@register_method("simclr", config=SimCLRConfig)
class SimCLR(Method):
    """Backbone f, projector g, NT-Xent on the two views' embeddings."""

    config_class = SimCLRConfig
    config: SimCLRConfig

    def __init__(self, config: SimCLRConfig, backbone: nn.Module, feature_dim: int) -> None:
        super().__init__(config, backbone, feature_dim)
        self.projector = mlp_projector(
            feature_dim,
            config.projector,
            hidden_bias=config.projector_hidden_bias,
            final_bn=config.projector_final_bn,
        )
        self.criterion = NTXentLoss(
            temperature=config.temperature, gather_distributed=config.gather_distributed
        )

    def spec(self) -> MethodSpec:
        return MethodSpec(num_views=2)

    def project(self, y: Tensor) -> Tensor:
        """ẑ = g(y)/‖g(y)‖ of backbone features y."""
        return F.normalize(self.projector(y), dim=1)

    def contrastive_loss(self, y_1: Tensor, y_2: Tensor) -> Tensor:
        """NT-Xent of the projected backbone features of two views (E-SimCLR reuses it)."""
        if self.config.negatives == "cross_view":
            z_1, z_2 = self.projector(y_1), self.projector(y_2)
            if self.config.gather_distributed:
                z_1, z_2 = gather(z_1), gather(z_2)
            return cross_view_infonce(z_1, z_2, self.config.temperature)
        return self.criterion(self.projector(y_1), self.projector(y_2))

    def forward(self, batch: Batch) -> StepOutput:
        y_1, y_2 = (self.backbone(view) for view in batch.views[:2])
        loss = self.contrastive_loss(y_1, y_2)
        return StepOutput(
            loss=loss,
            terms={"nt_xent": loss.detach()},
            features=[y_1.detach(), y_2.detach()],
        )
