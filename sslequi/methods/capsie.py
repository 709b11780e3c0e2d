"""CapsIE — capsule network projectors for invariant/equivariant SSL (Everett, Durrant,
Zhong, Leontidis, TMLR 2025, arXiv 2405.14386; methods.md §10). **A re-implementation.**

The official code (``AberdeenML/CapsIE`` at ``8ea7f32``) ships ``main.py`` and ``train.sh``
but not ``src/`` (§10.1): the model class ``SIECaps`` and its loss cannot be read. This
file follows §10.6: SIE (``sslequi.methods.sie``) with its MLP projectors replaced by the
self-routing capsule projector of §11.1 (``sslequi.models.capsules``; 16 capsules with
4 × 4 poses, the capsule kernel over the whole final map, ``train.sh --mlp 1111-16-16``).
The activations a ∈ Δ¹⁵ are the invariant embedding, the flattened poses z = vec P ∈ ℝ²⁵⁶
the equivariant one; SIE's linear hypernetwork predicts view 2's poses from view 1's and the
relative quaternion q = quat(R₁ᵀR₂): ẑ′ = W(q) z, W(q) = Σ_k q_k A_k (§2.1).

Loss (SIE's structure and coefficients, §2.2, ``train.sh``: 10 / 0.45 / 10 / 1):

    L = λ_sim L_inv + λ_equi·λ_sim L_equi + λ_std (L_var + L_pvar) + λ_cov L_cov,

with L_equi = MSE(ẑ′, z′), L_pvar = ½ v(Ẑ′), L_var = ½ v(E) + ½ v(E′) and L_cov = c(E) + c(E′)
on E = [a ‖ vec P] (gathered over ranks). Re-implementation choices, where the paper's
"objective function based on entropy minimisation" is not public (§10.3, §10.6):

- **L_inv = CE(a, sharpen(a′)) + λ_memax (L_MEMAX(a) + L_MEMAX(a′))**: EquiCaps' activation
  cross-entropy and MEMAX (§11.3; ``sslequi.methods.equicaps``), which §10.3 infers
  EquiCaps inherited from CapsIE.
- **The two temperatures of ``train.sh`` (``--temp_init 0.1 0.025 --temp_end 0.1 0.1``,
  T_a and T_t) sharpen the target only**: sharpen(a′) = softmax(log a′ · T_a / T_t) =
  a′^{T_a/T_t} renormalised, an MSN/PAWS-style target whose sharpness is the ratio of the
  anchor to the target temperature (the activations are already a distribution, so the
  anchor keeps them as they are). T_a stays at 0.1; T_t goes linearly from 0.025 to 0.1
  over 1.25 × the total steps (``main.py``), so the exponent falls from 4 to ≈ 1.18 by the
  end of training. T_t lives in a buffer (checkpointed; resumes exactly) and is updated in
  ``on_step_end``. No stop-gradient on the target, as in EquiCaps.
- ``--scale-equi`` (effect unknown) is not reproduced.

The predictor's initialisation is an option (``predictor.init``, as in SIE): the paper
recipe keeps ``nn.Linear``'s, the ``_cpu`` recipe uses ``norm_preserving``
(``sslequi.models.hypernetwork``). Probes read the pooled backbone (``full``), the
activations, the poses and their concatenation; the MRR probe reads the poses
(``predictor_representation``), on which the hypernetwork acts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import Tensor, nn

from sslequi.methods.base import Method, MethodConfig
from sslequi.methods.equicaps import (
    COV_DENOMINATORS,
    activation_cross_entropy,
    build_capsule_projector,
    capsule_representations,
    memax_penalty,
)
from sslequi.methods.sie import sie_loss, sie_loss_terms
from sslequi.models.capsules import CapsuleOutput, parse_pose
from sslequi.models.hypernetwork import PredictorConfig, build_predictor
from sslequi.registry import register_method
from sslequi.types import ACTION_DIMS, Batch, MethodSpec, Representation, StepOutput


# ----------------------------------------------------------------------------- loss
def sharpen(distribution: Tensor, exponent: float | Tensor) -> Tensor:
    """softmax(log p · exponent): p^exponent renormalised (exponent > 1 sharpens)."""
    logits = distribution.clamp_min(torch.finfo(distribution.dtype).tiny).log() * exponent
    return torch.softmax(logits, dim=-1)


def capsie_invariance(
    activations_1: Tensor,
    activations_2: Tensor,
    anchor_temperature: float,
    target_temperature: float | Tensor,
    memax_coeff: float = 1.0,
) -> Tensor:
    """CE(a, sharpen(a′, T_a/T_t)) + λ_memax (L_MEMAX(a) + L_MEMAX(a′)) (module docstring)."""
    target = sharpen(activations_2, anchor_temperature / target_temperature)
    memax = memax_penalty(activations_1) + memax_penalty(activations_2)
    return activation_cross_entropy(activations_1, target) + memax_coeff * memax


def target_temperature_at(
    step: int, total_steps: int, start: float, end: float, horizon: float
) -> float:
    """T_t after ``step`` steps: linear from ``start`` to ``end`` over horizon × total steps."""
    progress = min(1.0, step / max(1.0, horizon * total_steps))
    return start + (end - start) * progress


# ----------------------------------------------------------------------------- config
@dataclass
class CapsIEConfig(MethodConfig):
    """CapsIE options; defaults = ``train.sh`` (methods.md §10.2) and SIE's README values."""

    name: str = "capsie"
    num_capsules: int = 16  # --mlp 1111-16-16
    pose: str = "4x4"  # 16 values per capsule: 16 · 16 = 256-d equivariant embedding
    resolution: int = 256  # input side; the capsule kernel = the backbone's map at this size
    sim_coeff: float = 10.0  # λ_sim
    equi_factor: float = 0.45  # λ_equi (equivariance weight λ_equi·λ_sim = 4.5)
    std_coeff: float = 10.0  # λ_std (L_var and L_pvar)
    cov_coeff: float = 1.0  # λ_cov
    memax_coeff: float = 1.0  # MEMAX inside L_inv (re-implementation choice)
    anchor_temperature: float = 0.1  # T_a (--temp_init/--temp_end first values)
    target_temperature_start: float = 0.025  # T_t at step 0 (--temp_init second value)
    target_temperature_end: float = 0.1  # --temp_end second value
    temperature_horizon: float = 1.25  # T_t reaches its end after horizon × total steps
    pred_var: bool = True  # L_pvar, as in SIE
    cov_denominator: str = "actual"  # actual batch | arg = cov_batch_size (SIE code)
    cov_batch_size: int = 1024  # train.sh --batch-size
    activation_checkpoint: bool = True
    predictor: PredictorConfig = field(default_factory=PredictorConfig)

    def __post_init__(self) -> None:
        if isinstance(self.predictor, Mapping):
            self.predictor = PredictorConfig(**self.predictor)
        parse_pose(self.pose)
        if self.num_capsules < 2:
            raise ValueError(f"{self.name}: num_capsules must be ≥ 2, got {self.num_capsules}")
        temperatures = (
            self.anchor_temperature,
            self.target_temperature_start,
            self.target_temperature_end,
        )
        if min(temperatures) <= 0:
            raise ValueError(f"{self.name}: temperatures must be > 0, got {temperatures}")
        if self.temperature_horizon <= 0:
            raise ValueError(f"{self.name}: temperature_horizon must be > 0")
        if self.cov_denominator not in COV_DENOMINATORS:
            raise ValueError(
                f"{self.name}: cov_denominator must be one of {COV_DENOMINATORS}, "
                f"got {self.cov_denominator!r}"
            )
        if self.cov_batch_size < 2:
            raise ValueError(f"{self.name}: cov_batch_size must be ≥ 2")

    def cov_n(self) -> int | None:
        return self.cov_batch_size if self.cov_denominator == "arg" else None


# ----------------------------------------------------------------------------- method
@register_method("capsie", config=CapsIEConfig)
class CapsIE(Method):
    """CapsIE re-implementation (§10.6): capsule projector + SIE hypernetwork on the poses."""

    config_class = CapsIEConfig
    predictor_action = "rotation_quat"
    predictor_representation: ClassVar[str] = "poses"  # what embed_equivariant reads
    config: CapsIEConfig
    target_temperature: Tensor

    def __init__(self, config: CapsIEConfig, backbone: nn.Module, feature_dim: int) -> None:
        super().__init__(config, backbone, feature_dim)
        side = parse_pose(config.pose)
        self.capsules = build_capsule_projector(
            backbone, config.resolution, config.num_capsules, side, config.activation_checkpoint
        )
        self.pose_dim = config.num_capsules * side * side
        assert self.predictor_action is not None
        self.predictor = build_predictor(
            config.predictor,
            self.pose_dim,
            ACTION_DIMS[self.predictor_action],
            self.predictor_action,
        )
        self.register_buffer(
            "target_temperature", torch.tensor(float(config.target_temperature_start))
        )

    def spec(self) -> MethodSpec:
        assert self.predictor_action is not None
        return MethodSpec(num_views=2, structure="pairs", actions=(self.predictor_action,))

    def representations(self) -> dict[str, Representation]:
        return capsule_representations(self, self.capsules)

    def embed_equivariant(self, y_equi: Tensor) -> Tensor:
        """The poses representation already is the equivariant embedding z = vec P."""
        if y_equi.shape[-1] != self.pose_dim:
            raise ValueError(
                f"CapsIE's predictor acts on the {self.pose_dim}-d flattened poses (the "
                f"'poses' representation), got width {y_equi.shape[-1]}"
            )
        return y_equi

    def predict(self, z_equi: Tensor, action: Tensor) -> Tensor:
        return self.predictor(z_equi, action)

    def embed(self, images: Tensor) -> tuple[Tensor, CapsuleOutput]:
        feature_map = self.feature_map(images)
        return feature_map.mean(dim=(2, 3)), self.capsules(feature_map)

    def on_step_end(self, step: int, total_steps: int) -> None:
        cfg = self.config
        self.target_temperature.fill_(
            target_temperature_at(
                step,
                total_steps,
                cfg.target_temperature_start,
                cfg.target_temperature_end,
                cfg.temperature_horizon,
            )
        )

    def forward(self, batch: Batch) -> StepOutput:
        assert self.predictor_action is not None
        cfg = self.config
        y_1, caps_1 = self.embed(batch.views[0])
        y_2, caps_2 = self.embed(batch.views[1])
        z_1, z_2 = caps_1.flat_poses, caps_2.flat_poses
        pred = self.predictor(z_1, batch.actions.pair(self.predictor_action).to(z_1.dtype))
        terms = sie_loss_terms(caps_1.activations, z_1, caps_2.activations, z_2, pred, cfg.cov_n())
        terms["inv"] = capsie_invariance(
            caps_1.activations,
            caps_2.activations,
            cfg.anchor_temperature,
            self.target_temperature,
            cfg.memax_coeff,
        )
        loss = sie_loss(
            terms,
            cfg.sim_coeff,
            cfg.equi_factor * cfg.sim_coeff,
            cfg.std_coeff,
            cfg.cov_coeff,
            cfg.pred_var,
        )
        logged = {k: v.detach() for k, v in terms.items()}
        logged["target_temperature"] = self.target_temperature.detach().clone()
        return StepOutput(loss=loss, terms=logged, features=[y_1.detach(), y_2.detach()])
