"""VICReg (Bardes, Ponce, LeCun, ICLR 2022, arXiv 2105.04906): variance–invariance–covariance.

    L = λ_sim · MSE(z, z′) + λ_std · (½ v(Z) + ½ v(Z′)) + λ_cov · (c(Z) + c(Z′))

with v the variance hinge and c the off-diagonal covariance penalty (VICReg Eqs. 1–6;
methods.md §1.1, §14), computed by the shared ``losses.vicreg_terms``: the invariance MSE on
the local batch, variance and covariance on the batch gathered across GPUs (as SIE's code
and lightly's ``VICRegLoss`` do; tested equal to ``VICRegLoss``).

Coefficients: the default is the VICReg paper's **25 / 25 / 1** (also seq-JEPA's baseline and
lightly's default). SIE's 3DIEBench table trains its VICReg baseline with **10 / 10 / 1**
(``method.sim_coeff=10 method.std_coeff=10``) — use that to reproduce SIE's protocol.
Projector: SIE's ``512 → 2048-2048-2048`` (the VICReg paper uses 8192-8192-8192 on ResNet-50).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from sslequi.methods.base import Method, MethodConfig
from sslequi.methods.losses import vicreg_terms
from sslequi.models.heads import mlp_projector
from sslequi.registry import register_method
from sslequi.types import Batch, MethodSpec, StepOutput


@dataclass
class VICRegConfig(MethodConfig):
    """VICReg options (``configs/method/vicreg.yaml``)."""

    name: str = "vicreg"
    projector: str = "2048-2048-2048"
    sim_coeff: float = 25.0  # λ (VICReg paper); SIE's table: 10
    std_coeff: float = 25.0  # μ (VICReg paper); SIE's table: 10
    cov_coeff: float = 1.0  # ν

    def __post_init__(self) -> None:
        for field_name in ("sim_coeff", "std_coeff", "cov_coeff"):
            if getattr(self, field_name) < 0:
                raise ValueError(f"vicreg.{field_name} must be ≥ 0")


@register_method("vicreg", config=VICRegConfig)
class VICReg(Method):
    """Backbone f, expander h, VICReg loss on the two views' embeddings."""

    config_class = VICRegConfig
    config: VICRegConfig

    def __init__(self, config: VICRegConfig, backbone: nn.Module, feature_dim: int) -> None:
        super().__init__(config, backbone, feature_dim)
        self.projector = mlp_projector(feature_dim, config.projector)

    def spec(self) -> MethodSpec:
        return MethodSpec(num_views=2)

    def vicreg_loss(self, z_a: Tensor, z_b: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """Weighted VICReg loss and its unweighted terms (``sim``, ``var``, ``cov``)."""
        terms = vicreg_terms(z_a, z_b)
        cfg = self.config
        loss = cfg.sim_coeff * terms["sim"] + cfg.std_coeff * terms["var"]
        loss = loss + cfg.cov_coeff * terms["cov"]
        return loss, {name: value.detach() for name, value in terms.items()}

    def forward(self, batch: Batch) -> StepOutput:
        y_1, y_2 = (self.backbone(view) for view in batch.views[:2])
        loss, terms = self.vicreg_loss(self.projector(y_1), self.projector(y_2))
        return StepOutput(loss=loss, terms=terms, features=[y_1.detach(), y_2.detach()])
