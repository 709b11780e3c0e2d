"""SIE — Split Invariant-Equivariant representations (Garrido, Najman, LeCun, ICML 2023).

arXiv 2302.10283; code ``facebookresearch/SIE`` at ``54541cf`` (methods.md §2).

The backbone output y ∈ ℝ^D splits into y_inv = y[:D − e] (first dims) and y_equi = y[D − e:]
(last dims). Each part has its own projector, whose widths are the ``projector`` widths (SIE ``--mlp``) scaled by
the part's share of D (§2.1). The equivariant embedding of view 1 is mapped by a
hypernetwork predictor conditioned on the relative rotation g = quat(R₁ᵀR₂) (x, y, z, w):
ẑ′_e = W(g) z_e, W(g) = Σ_k g_k A_k (§1.5). The loss (§2.2) is

    L = λ_sim L_inv + λ_equi·λ_sim L_equi + λ_std (L_var + L_pvar) + λ_cov L_cov,

with L_inv = MSE(z_inv, z′_inv), L_equi = MSE(ẑ′_e, z′_e), L_var = ½ v(Z) + ½ v(Z′) and
L_cov = c(Z) + c(Z′) on the concatenation Z = [z_inv ‖ z_equi] (gathered over ranks), and
L_pvar = ½ v(Ẑ′_e) on the gathered predictions.

Defaults follow the paper / README command (register §0.7): λ_sim 10, λ_equi 0.45 (the
argparse default 4.5 is an option, item 1), λ_std 10, λ_cov 1, projector 2048-2048-2048
(item 3), covariance over the actual batch (the code divides by its batch-size argument
minus one: ``cov_denominator="arg"``, item 4). As in the code, L_inv and L_equi use the
local batch and variance/covariance the gathered batch (item 5).

The predictor's initialisation is an option (``predictor.init``): the paper recipes keep
the official ``nn.Linear`` init; the ``_cpu`` recipes use ``norm_preserving``, since the
official init amplifies by ≈ √(d/12) and does not train away in a few hundred steps
(``sslequi.models.hypernetwork``, docs/recipes.md).

Variants (§2.3): ``sie_nopvar`` (no L_pvar), ``sie_rotcolor`` (6-d g = [q, Δfloor_hue,
Δspot_hue]), ``sie_onlyequi`` (one projector on all of y, no invariant part:
L = λ_sim L_equi + λ_std (L_var + L_pvar) + λ_cov L_cov).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from sslequi.methods.base import Method, MethodConfig
from sslequi.methods.distributed import gather
from sslequi.methods.losses import covariance_penalty, invariance_mse, variance_hinge
from sslequi.models.heads import mlp_projector, parse_mlp
from sslequi.models.hypernetwork import PredictorConfig, build_predictor
from sslequi.registry import register_method
from sslequi.types import ACTION_DIMS, Batch, MethodSpec, Parts, StepOutput

COV_DENOMINATORS = ("actual", "arg")


# ----------------------------------------------------------------------------- projector
def scaled_widths(projector: str, share: float) -> tuple[int, ...]:
    """Projector widths of one part: round(w · share) for each total width (§2.1)."""
    widths = tuple(round(w * share) for w in parse_mlp(projector))
    if min(widths) < 1:
        raise ValueError(f"projector {projector!r} scaled by share {share:.3f} is empty")
    return widths


# ----------------------------------------------------------------------------- loss
def sie_loss_terms(
    z_a_inv: Tensor | None,
    z_a_equi: Tensor,
    z_b_inv: Tensor | None,
    z_b_equi: Tensor,
    pred_b_equi: Tensor,
    cov_denominator: int | None = None,
) -> dict[str, Tensor]:
    """The unweighted SIE terms of §2.2: inv, equi, var, pvar, cov.

    ``z_a_*`` embed view 1, ``z_b_*`` view 2, ``pred_b_equi`` = p_g(z_a_equi). With no
    invariant part (SIE-OnlyEqui) ``z_*_inv`` are ``None`` and ``inv`` is 0.
    """
    equi = invariance_mse(pred_b_equi, z_b_equi)
    if z_a_inv is not None and z_b_inv is not None:
        inv = invariance_mse(z_a_inv, z_b_inv)
        z_a = gather(torch.cat([z_a_inv, z_a_equi], dim=1))
        z_b = gather(torch.cat([z_b_inv, z_b_equi], dim=1))
    else:
        inv = equi.new_zeros(())
        z_a, z_b = gather(z_a_equi), gather(z_b_equi)
    pred = gather(pred_b_equi)
    return {
        "inv": inv,
        "equi": equi,
        "var": 0.5 * variance_hinge(z_a) + 0.5 * variance_hinge(z_b),
        "pvar": 0.5 * variance_hinge(pred),
        "cov": covariance_penalty(z_a, cov_denominator) + covariance_penalty(z_b, cov_denominator),
    }


def sie_loss(
    terms: Mapping[str, Tensor],
    sim_coeff: float,
    equi_weight: float,
    std_coeff: float,
    cov_coeff: float,
    pred_var: bool = True,
) -> Tensor:
    """λ_sim L_inv + w_equi L_equi + λ_std (L_var + [L_pvar]) + λ_cov L_cov (§2.2).

    ``equi_weight`` is λ_equi·λ_sim for SIE and λ_sim for SIE-OnlyEqui.
    """
    variance = terms["var"] + (terms["pvar"] if pred_var else 0.0)
    return (
        sim_coeff * terms["inv"]
        + equi_weight * terms["equi"]
        + std_coeff * variance
        + cov_coeff * terms["cov"]
    )


# ----------------------------------------------------------------------------- config
@dataclass
class SIEConfig(MethodConfig):
    """SIE options; defaults = the README command (methods.md §2.4, register §0.7)."""

    name: str = "sie"
    equi_dim: int | None = None  # e = size of the equivariant slice; None → D // 2 (256 of 512)
    projector: str = "2048-2048-2048"  # total projector widths (item 3), split by share
    sim_coeff: float = 10.0  # λ_sim
    equi_factor: float = 0.45  # λ_equi (paper/README); the argparse default 4.5 is item 1
    std_coeff: float = 10.0  # λ_std (applies to L_var and L_pvar)
    cov_coeff: float = 1.0  # λ_cov
    pred_var: bool = True  # L_pvar on the predictions (False = SIE-NoPVar)
    only_equi: bool = False  # SIE-OnlyEqui: no invariant part
    cov_denominator: str = "actual"  # 'actual' batch, or 'arg' = cov_batch_size (code, item 4)
    cov_batch_size: int = 1024  # the code's global --batch-size, used when cov_denominator='arg'
    predictor: PredictorConfig = field(default_factory=PredictorConfig)

    def __post_init__(self) -> None:
        if isinstance(self.predictor, Mapping):
            self.predictor = PredictorConfig(**self.predictor)
        parse_mlp(self.projector)  # fails clearly on a malformed width string
        if self.cov_denominator not in COV_DENOMINATORS:
            raise ValueError(
                f"{self.name}: cov_denominator must be one of {COV_DENOMINATORS}, "
                f"got {self.cov_denominator!r}"
            )
        if self.cov_batch_size < 2:
            raise ValueError(f"{self.name}: cov_batch_size must be ≥ 2")

    def equi_dim_for(self, feature_dim: int) -> int:
        """e for a backbone of width ``feature_dim`` (all of it for SIE-OnlyEqui)."""
        if self.only_equi:
            return feature_dim
        return feature_dim // 2 if self.equi_dim is None else self.equi_dim

    def validate(self, feature_dim: int) -> None:
        """Fail clearly if the split does not fit a ``feature_dim``-wide backbone."""
        if self.only_equi:
            return
        equi = self.equi_dim_for(feature_dim)
        if not 0 < equi < feature_dim:
            raise ValueError(
                f"{self.name}: equi_dim={equi} must satisfy 0 < equi_dim < feature_dim="
                f"{feature_dim} (the invariant part gets the first feature_dim − equi_dim dims); "
                f"set method.equi_dim ≤ {feature_dim - 1} or leave it null for half"
            )

    def cov_n(self) -> int | None:
        return self.cov_batch_size if self.cov_denominator == "arg" else None


@dataclass
class SIENoPVarConfig(SIEConfig):
    name: str = "sie_nopvar"
    pred_var: bool = False


@dataclass
class SIERotColorConfig(SIEConfig):
    name: str = "sie_rotcolor"


@dataclass
class SIEOnlyEquiConfig(SIEConfig):
    name: str = "sie_onlyequi"
    only_equi: bool = True


# ----------------------------------------------------------------------------- method
@register_method("sie", config=SIEConfig)
class SIE(Method):
    """SIE (§2): split projectors, hypernetwork predictor on the relative quaternion."""

    config_class = SIEConfig
    predictor_action = "rotation_quat"
    config: SIEConfig

    def __init__(self, config: SIEConfig, backbone: nn.Module, feature_dim: int) -> None:
        super().__init__(config, backbone, feature_dim)
        config.validate(feature_dim)
        self.equi_dim = config.equi_dim_for(feature_dim)
        self.inv_dim = feature_dim - self.equi_dim
        equi_widths = scaled_widths(config.projector, self.equi_dim / feature_dim)
        self.projector_equi = mlp_projector(self.equi_dim, equi_widths)
        self.projector_inv: nn.Module | None = None
        if self.inv_dim > 0:
            inv_widths = scaled_widths(config.projector, self.inv_dim / feature_dim)
            self.projector_inv = mlp_projector(self.inv_dim, inv_widths)
        assert self.predictor_action is not None
        self.predictor = build_predictor(
            config.predictor,
            equi_widths[-1],
            ACTION_DIMS[self.predictor_action],
            self.predictor_action,
        )

    def spec(self) -> MethodSpec:
        assert self.predictor_action is not None
        return MethodSpec(num_views=2, structure="pairs", actions=(self.predictor_action,))

    def parts(self) -> Parts:
        equivariant = slice(self.inv_dim, self.feature_dim)
        return Parts(
            invariant=slice(0, self.inv_dim) if self.inv_dim else None, equivariant=equivariant
        )

    def embed_equivariant(self, y_equi: Tensor) -> Tensor:
        return self.projector_equi(y_equi)

    def predict(self, z_equi: Tensor, action: Tensor) -> Tensor:
        return self.predictor(z_equi, action)

    def _embed(self, y: Tensor) -> tuple[Tensor | None, Tensor]:
        z_equi = self.projector_equi(y[:, self.inv_dim :])
        z_inv = None if self.projector_inv is None else self.projector_inv(y[:, : self.inv_dim])
        return z_inv, z_equi

    def forward(self, batch: Batch) -> StepOutput:
        assert self.predictor_action is not None
        y_a, y_b = self.backbone(batch.views[0]), self.backbone(batch.views[1])
        z_a_inv, z_a_equi = self._embed(y_a)
        z_b_inv, z_b_equi = self._embed(y_b)
        pred = self.predictor(z_a_equi, batch.actions.pair(self.predictor_action))
        cfg = self.config
        terms = sie_loss_terms(z_a_inv, z_a_equi, z_b_inv, z_b_equi, pred, cfg.cov_n())
        equi_weight = cfg.sim_coeff if cfg.only_equi else cfg.equi_factor * cfg.sim_coeff
        loss = sie_loss(
            terms, cfg.sim_coeff, equi_weight, cfg.std_coeff, cfg.cov_coeff, cfg.pred_var
        )
        return StepOutput(
            loss=loss,
            terms={k: v.detach() for k, v in terms.items()},
            features=[y_a.detach(), y_b.detach()],
        )


@register_method("sie_nopvar", config=SIENoPVarConfig)
class SIENoPVar(SIE):
    """SIE without the predictor-output variance term (§2.3, `SIENoVar`)."""

    config_class = SIENoPVarConfig


@register_method("sie_rotcolor", config=SIERotColorConfig)
class SIERotColor(SIE):
    """SIE conditioned on g = [q, Δfloor_hue, Δspot_hue] (6-d, §2.3, `SIERotColor`)."""

    config_class = SIERotColorConfig
    predictor_action = "rot_color"


@register_method("sie_onlyequi", config=SIEOnlyEquiConfig)
class SIEOnlyEqui(SIE):
    """SIE with a single equivariant projector on all of y (§2.3, `SIEOnlyEqui`)."""

    config_class = SIEOnlyEquiConfig
