"""VICReg-PartInv: VICReg whose invariance covers only part of the embedding.

SIE baseline (Garrido et al. 2023; ``facebookresearch/SIE:src/models.py`` ``VICRegPartInv``
l. 1555; methods.md §2.3): one projector y → z ∈ ℝ^E (widths ``projector``, SIE ``--mlp``), and

    L = λ_sim MSE(z[:, :E − e], z′[:, :E − e]) + λ_std (½ v(Z) + ½ v(Z′)) + λ_cov (c(Z) + c(Z′)),

so the invariance acts on the first E − e embedding dimensions while variance and
covariance act on all of them (gathered over ranks). Coefficients are the SIE code's VICReg
setting 10 / 10 / 1. ``equi_dim`` e is the SIE ``--equi`` flag; its default here is half the
backbone width (256 for ResNet-18, as in the SIE runs), so it scales with CPU backbones.
The backbone is not split: ``parts()`` is the whole representation.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from sslequi.methods.base import Method, MethodConfig
from sslequi.methods.distributed import gather
from sslequi.methods.losses import covariance_penalty, invariance_mse, variance_hinge
from sslequi.models.heads import mlp_projector, parse_mlp
from sslequi.registry import register_method
from sslequi.types import Batch, MethodSpec, StepOutput


def partial_invariance_terms(z_a: Tensor, z_b: Tensor, inv_dims: int) -> dict[str, Tensor]:
    """Unweighted VICReg-PartInv terms: inv on the first ``inv_dims`` dims, var/cov on all."""
    inv = invariance_mse(z_a[:, :inv_dims], z_b[:, :inv_dims])
    z_a, z_b = gather(z_a), gather(z_b)
    return {
        "inv": inv,
        "var": 0.5 * variance_hinge(z_a) + 0.5 * variance_hinge(z_b),
        "cov": covariance_penalty(z_a) + covariance_penalty(z_b),
    }


@dataclass
class VICRegPartInvConfig(MethodConfig):
    """Options (SIE code defaults, methods.md §2.3, §2.7)."""

    name: str = "vicreg_partinv"
    projector: str = "2048-2048-2048"
    equi_dim: int | None = None  # e: embedding dims left out of the invariance; None → D // 2
    sim_coeff: float = 10.0
    std_coeff: float = 10.0
    cov_coeff: float = 1.0

    def __post_init__(self) -> None:
        parse_mlp(self.projector)

    def validate(self, feature_dim: int) -> None:
        embedding = parse_mlp(self.projector)[-1]
        equi = feature_dim // 2 if self.equi_dim is None else self.equi_dim
        if not 0 < equi < embedding:
            raise ValueError(
                f"{self.name}: equi_dim={equi} must satisfy 0 < equi_dim < embedding width "
                f"{embedding} (last width of projector={self.projector!r})"
            )


@register_method("vicreg_partinv", config=VICRegPartInvConfig)
class VICRegPartInv(Method):
    """VICReg with invariance on the first E − e embedding dims (SIE baseline)."""

    config_class = VICRegPartInvConfig
    config: VICRegPartInvConfig

    def __init__(self, config: VICRegPartInvConfig, backbone: nn.Module, feature_dim: int) -> None:
        super().__init__(config, backbone, feature_dim)
        config.validate(feature_dim)
        widths = parse_mlp(config.projector)
        equi = feature_dim // 2 if config.equi_dim is None else config.equi_dim
        self.inv_dims = widths[-1] - equi
        self.projector = mlp_projector(feature_dim, widths)

    def spec(self) -> MethodSpec:
        return MethodSpec(num_views=2, structure="pairs")

    def forward(self, batch: Batch) -> StepOutput:
        y_a, y_b = self.backbone(batch.views[0]), self.backbone(batch.views[1])
        terms = partial_invariance_terms(self.projector(y_a), self.projector(y_b), self.inv_dims)
        cfg = self.config
        loss = (
            cfg.sim_coeff * terms["inv"]
            + cfg.std_coeff * terms["var"]
            + cfg.cov_coeff * terms["cov"]
        )
        return StepOutput(
            loss=loss,
            terms={k: v.detach() for k, v in terms.items()},
            features=[y_a.detach(), y_b.detach()],
        )
