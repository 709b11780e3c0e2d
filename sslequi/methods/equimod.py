"""EquiMod: an invariant SSL loss plus a transformation-conditioned equivariance module.

Devillers & Lefort, ICLR 2023 (arXiv 2211.01244, id unverified); implementation followed:
``facebookresearch/SIE:src/models.py`` ``SimCLREquiMod`` (l. 1018) and ``VICRegEquiMod``
(l. 901) (methods.md §3). Two full projectors read the whole backbone output y: h_inv and
h_equi (both of widths ``projector``, SIE ``--mlp``). The predictor p_g (hypernetwork by default, or the concatenation
MLP) maps z_e = h_equi(y) of view 1 onto view 2's z′_e.

- ``flavour="simclr"``: L = NT-Xent(z_inv, z′_inv) + w · NT-Xent(p_g(z_e), z′_e), τ = 0.1,
  on the gathered batch (§1.2, §1.4).
- ``flavour="vicreg"``: L = VICReg(z_inv, z′_inv) + w · [λ_sim MSE(p_g(z_e), z′_e)
  + λ_std (½ v(Z_e) + ½ v(Z′_e)) + λ_cov (c(Z_e) + c(Z′_e))] with 10 / 10 / 1.

w (``equi_weight``) defaults to 1: the EquiMod paper sums the two losses (unverified) and
the SIE code's RotColor variant uses weight 1; its rotation-only classes multiply by
``--equi-factor`` instead — set ``equi_weight`` to reproduce that.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from torch import Tensor, nn

from sslequi.methods.base import Method, MethodConfig
from sslequi.methods.distributed import gather
from sslequi.methods.losses import invariance_mse, nt_xent, vicreg_terms
from sslequi.models.heads import mlp_projector, parse_mlp
from sslequi.models.hypernetwork import PredictorConfig, build_predictor
from sslequi.registry import register_method
from sslequi.types import ACTION_DIMS, Batch, MethodSpec, Parts, StepOutput

FLAVOURS = ("simclr", "vicreg")


def vicreg_equivariance_terms(pred_b: Tensor, z_a: Tensor, z_b: Tensor) -> dict[str, Tensor]:
    """VICRegEquiMod's equivariance terms: MSE(p_g(z_a), z_b); var/cov on z_a and z_b."""
    terms = vicreg_terms(z_a, z_b)
    terms["sim"] = invariance_mse(pred_b, z_b)
    return terms


@dataclass
class EquiModConfig(MethodConfig):
    """EquiMod options (SIE-code implementation, methods.md §3)."""

    name: str = "equimod"
    flavour: str = "simclr"  # 'simclr' (SimCLREquiMod) or 'vicreg' (VICRegEquiMod)
    projector: str = "2048-2048-2048"  # each of the two projectors
    temperature: float = 0.1  # NT-Xent τ (SIE --simclr-temp)
    equi_weight: float = 1.0  # w on the equivariance loss
    sim_coeff: float = 10.0  # VICReg flavour
    std_coeff: float = 10.0
    cov_coeff: float = 1.0
    action: str = "rotation_quat"  # 'rot_color' for the RotColor variant
    predictor: PredictorConfig = field(default_factory=PredictorConfig)

    def __post_init__(self) -> None:
        if isinstance(self.predictor, Mapping):
            self.predictor = PredictorConfig(**self.predictor)
        parse_mlp(self.projector)
        if self.flavour not in FLAVOURS:
            raise ValueError(f"equimod: flavour must be one of {FLAVOURS}, got {self.flavour!r}")
        if self.action not in ACTION_DIMS:
            raise ValueError(
                f"equimod: unknown action {self.action!r}; known {sorted(ACTION_DIMS)}"
            )
        if self.temperature <= 0:
            raise ValueError("equimod: temperature must be > 0")


@register_method("equimod", config=EquiModConfig)
class EquiMod(Method):
    """Invariant loss on h_inv(y) + equivariance module p_g on h_equi(y) (§3)."""

    config_class = EquiModConfig
    predictor_action = "rotation_quat"
    config: EquiModConfig

    def __init__(self, config: EquiModConfig, backbone: nn.Module, feature_dim: int) -> None:
        super().__init__(config, backbone, feature_dim)
        self.predictor_action = config.action  # instance value: the configured encoding
        widths = parse_mlp(config.projector)
        self.projector_inv = mlp_projector(feature_dim, widths)
        self.projector_equi = mlp_projector(feature_dim, widths)
        self.predictor = build_predictor(
            config.predictor, widths[-1], ACTION_DIMS[config.action], config.action
        )

    def spec(self) -> MethodSpec:
        return MethodSpec(num_views=2, structure="pairs", actions=(self.config.action,))

    def parts(self) -> Parts:
        """The equivariant projector reads the whole representation."""
        return Parts(invariant=None, equivariant=slice(0, self.feature_dim))

    def embed_equivariant(self, y_equi: Tensor) -> Tensor:
        return self.projector_equi(y_equi)

    def predict(self, z_equi: Tensor, action: Tensor) -> Tensor:
        return self.predictor(z_equi, action)

    def forward(self, batch: Batch) -> StepOutput:
        cfg = self.config
        y_a, y_b = self.backbone(batch.views[0]), self.backbone(batch.views[1])
        zi_a, zi_b = self.projector_inv(y_a), self.projector_inv(y_b)
        ze_a, ze_b = self.projector_equi(y_a), self.projector_equi(y_b)
        pred = self.predictor(ze_a, batch.actions.pair(cfg.action))
        if cfg.flavour == "simclr":
            inv = nt_xent(gather(zi_a), gather(zi_b), cfg.temperature)
            equi = nt_xent(gather(pred), gather(ze_b), cfg.temperature)
            terms = {"inv": inv, "equi": equi}
        else:
            t_inv = vicreg_terms(zi_a, zi_b)
            t_equi = vicreg_equivariance_terms(pred, ze_a, ze_b)
            inv = (
                cfg.sim_coeff * t_inv["sim"]
                + cfg.std_coeff * t_inv["var"]
                + cfg.cov_coeff * t_inv["cov"]
            )
            equi = (
                cfg.sim_coeff * t_equi["sim"]
                + cfg.std_coeff * t_equi["var"]
                + cfg.cov_coeff * t_equi["cov"]
            )
            terms = {
                "inv": inv,
                "equi": equi,
                "inv_sim": t_inv["sim"],
                "equi_sim": t_equi["sim"],
                "var": t_inv["var"] + t_equi["var"],
                "cov": t_inv["cov"] + t_equi["cov"],
            }
        loss = inv + cfg.equi_weight * equi
        return StepOutput(
            loss=loss,
            terms={k: v.detach() for k, v in terms.items()},
            features=[y_a.detach(), y_b.detach()],
        )
