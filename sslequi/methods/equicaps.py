"""EquiCaps — predictor-free pose-aware capsules (Konstantinou, Leontidis, Thota, Durrant,
ICCV 2025, arXiv 2506.09895; code ``AberdeenML/EquiCaps`` at ``e6a8d38``; methods.md §11).

A capsule projector (``sslequi.models.capsules``, §11.1–11.2) on the backbone's pre-pool
map gives K activations a ∈ Δ^{K−1} (invariant) and K pose matrices P_j (equivariant). The
known relative transformation M of the view pair acts on view 1's poses directly, so no
predictor is learned (§11.3, ``src/models.py`` l. 205–285):

    L_inv   = (1/B) Σ_b Σ_j −a′_bj log a_bj                       (l. 213; no stop-gradient)
    P̃_j     = P_j M / ‖P_j M‖_F,   P̃′_j = P′_j / ‖P′_j‖_F          (l. 222, right product)
    L_equi  = MSE(vec P̃, vec P̃′)                                   (l. 233)
    L_MEMAX = [log K − H(ā)] + [log K − H(ā′)], ā = batch mean of a, averaged over ranks
              (all-reduce; the gradient flows through the local mean)  (l. 251)
    L_var   = ½ v(E) + ½ v(E′),  L_cov = c(E) + c(E′),  E = [a ‖ vec P̃], E′ = [a′ ‖ vec P̃′]
              gathered over ranks (§1.1)
    L       = λ_sim L_inv + λ_equi L_equi + λ_std L_var + λ_memax L_MEMAX + λ_cov L_cov  (l. 270)

with λ_sim 0.1, λ_equi 5 (not multiplied by λ_sim, unlike SIE), λ_std 10, λ_memax 1,
λ_cov 1. M is R₁ᵀR₂ for 3 × 3 poses (``rotation_matrix``), and for 4 × 4 poses the relative
rigid transform M₁⁻¹M₂ of 3DIEBench-T with M = T(t)·R (``frame=object``,
``transform_object``) or R·T(t) (``frame=base``, the official ``--base-frame``;
``transform_base``), datasets.md §2. The convention matches the data: if P(view) = P₀·R(view)
then P(view₂) = P(view₁)·R₁ᵀR₂ (tested).

Shapes (§11.2): K = 32 (``--mlp 1111-16-32``, only the last number is used), 3 × 3 or 4 × 4
poses, the capsule layer's kernel = the backbone's final map at ``resolution`` (8 × 8 at
256 px). Covariance over the actual batch by default; the code divides by its batch-size
argument minus one (``cov_denominator="arg"``, as SIE's register item 4). Activation
checkpointing of the capsule layer is on by default, as in the code. The representations for
probes (``representations()``): the pooled backbone output (``full``, what the paper's
probes read), the activations, the poses and their concatenation (the official
``OnlineEvaluatorCaps`` heads).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from sslequi.methods.base import Method, MethodConfig
from sslequi.methods.distributed import gather
from sslequi.methods.losses import covariance_penalty, variance_hinge
from sslequi.models.capsules import CapsuleOutput, CapsuleProjector, feature_map_shape, parse_pose
from sslequi.registry import register_method
from sslequi.types import Batch, MethodSpec, Representation, StepOutput

COV_DENOMINATORS = ("actual", "arg")
FRAMES = ("object", "base")


# ----------------------------------------------------------------------------- loss
def _safe_log(p: Tensor) -> Tensor:
    """log p; probabilities below the smallest normal float are clamped (never in practice)."""
    return p.clamp_min(torch.finfo(p.dtype).tiny).log()


def activation_cross_entropy(activations: Tensor, target: Tensor) -> Tensor:
    """(1/B) Σ_b Σ_j −target_bj log activations_bj (§11.3 L_inv; no stop-gradient)."""
    return -(target * _safe_log(activations)).sum(dim=1).mean()


def cross_rank_mean(local_mean: Tensor) -> Tensor:
    """The mean over ranks of a per-rank mean, with the gradient of the local one (an
    all-reduce whose backward is the identity); the local mean when not distributed."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return local_mean
    total = local_mean.detach().clone()
    dist.all_reduce(total)
    return local_mean + (total / dist.get_world_size() - local_mean.detach())


def memax_penalty(activations: Tensor) -> Tensor:
    """log K − H(ā), ā = the batch mean of the activation distributions over all ranks
    (§11.3 MEMAX): 0 when every capsule is used equally often."""
    mean = cross_rank_mean(activations.mean(dim=0))
    entropy = -(mean * _safe_log(mean)).sum()
    return math.log(activations.shape[1]) - entropy


def frobenius_normalise(poses: Tensor) -> Tensor:
    """P / ‖P‖_F for every pose matrix of [..., n, n]."""
    norm = poses.flatten(-2).norm(dim=-1).clamp_min(1e-12)
    return poses / norm[..., None, None]


def transform_poses(poses: Tensor, transform: Tensor) -> Tensor:
    """P_j · M for every capsule: poses [B, K, n, n], transform [B, n, n] (right product)."""
    return poses @ transform.unsqueeze(1)


def equicaps_loss_terms(
    activations_1: Tensor,
    poses_1: Tensor,
    activations_2: Tensor,
    poses_2: Tensor,
    transform: Tensor,
    cov_denominator: int | None = None,
) -> dict[str, Tensor]:
    """The unweighted terms of §11.3: inv, equi, memax, var, cov.

    View 1's poses are transformed by ``transform`` (M, [B, n, n]) and compared with view 2's.
    """
    inv = activation_cross_entropy(activations_1, activations_2)
    moved = frobenius_normalise(transform_poses(poses_1, transform)).flatten(1)
    target = frobenius_normalise(poses_2).flatten(1)
    equi = F.mse_loss(moved, target)
    memax = memax_penalty(activations_1) + memax_penalty(activations_2)
    e_1 = gather(torch.cat([activations_1, moved], dim=1))
    e_2 = gather(torch.cat([activations_2, target], dim=1))
    return {
        "inv": inv,
        "equi": equi,
        "memax": memax,
        "var": 0.5 * variance_hinge(e_1) + 0.5 * variance_hinge(e_2),
        "cov": covariance_penalty(e_1, cov_denominator) + covariance_penalty(e_2, cov_denominator),
    }


def equicaps_loss(
    terms: Mapping[str, Tensor],
    sim_coeff: float,
    equi_coeff: float,
    std_coeff: float,
    memax_coeff: float,
    cov_coeff: float,
) -> Tensor:
    """λ_sim L_inv + λ_equi L_equi + λ_std L_var + λ_memax L_MEMAX + λ_cov L_cov (§11.3)."""
    return (
        sim_coeff * terms["inv"]
        + equi_coeff * terms["equi"]
        + std_coeff * terms["var"]
        + memax_coeff * terms["memax"]
        + cov_coeff * terms["cov"]
    )


# ----------------------------------------------------------------------------- config
@dataclass
class EquiCapsConfig(MethodConfig):
    """EquiCaps options; defaults = the README command (methods.md §11.4–11.5)."""

    name: str = "equicaps"
    pose: str = "3x3"  # 3x3 (EquiCaps_3x3, rotation R₁ᵀR₂) | 4x4 (EquiCaps_4x4, M₁⁻¹M₂)
    frame: str = "object"  # 4x4 only: object (T(t)·R) | base (R·T(t), --base-frame)
    num_capsules: int = 32  # K (--mlp 1111-16-32: the last number)
    resolution: int = 256  # input side; the capsule kernel = the backbone's map at this size
    sim_coeff: float = 0.1  # λ_sim
    equi_coeff: float = 5.0  # λ_equi (--equi-factor; not multiplied by λ_sim)
    std_coeff: float = 10.0  # λ_std
    memax_coeff: float = 1.0  # fixed at 1 in the code
    cov_coeff: float = 1.0  # λ_cov
    cov_denominator: str = "actual"  # actual batch | arg = cov_batch_size (the code)
    cov_batch_size: int = 256  # the README's global --batch-size
    activation_checkpoint: bool = True  # the code's default (--no-activation-checkpoint off)

    def __post_init__(self) -> None:
        side = parse_pose(self.pose)
        if side not in (3, 4):
            raise ValueError(f"{self.name}: pose must be '3x3' or '4x4', got {self.pose!r}")
        if self.frame not in FRAMES:
            raise ValueError(f"{self.name}: frame must be one of {FRAMES}, got {self.frame!r}")
        if side == 3 and self.frame != "object":
            raise ValueError(
                f"{self.name}: frame={self.frame!r} needs 4x4 poses (the 3x3 variant acts with "
                "the rotation R₁ᵀR₂ only); set method.pose=4x4"
            )
        if self.num_capsules < 2:
            raise ValueError(f"{self.name}: num_capsules must be ≥ 2, got {self.num_capsules}")
        if self.cov_denominator not in COV_DENOMINATORS:
            raise ValueError(
                f"{self.name}: cov_denominator must be one of {COV_DENOMINATORS}, "
                f"got {self.cov_denominator!r}"
            )
        if self.cov_batch_size < 2:
            raise ValueError(f"{self.name}: cov_batch_size must be ≥ 2")

    @property
    def pose_side(self) -> int:
        return parse_pose(self.pose)

    @property
    def action(self) -> str:
        """The action encoding that M is read from."""
        if self.pose_side == 3:
            return "rotation_matrix"
        return f"transform_{self.frame}"

    def cov_n(self) -> int | None:
        return self.cov_batch_size if self.cov_denominator == "arg" else None


# ----------------------------------------------------------------------------- method
def build_capsule_projector(
    backbone: nn.Module,
    resolution: int,
    num_capsules: int,
    pose_side: int,
    activation_checkpoint: bool,
) -> CapsuleProjector:
    """The capsule projector on ``backbone``'s pre-pool map at ``resolution`` px."""
    channels, h, w = feature_map_shape(backbone, resolution)
    if h != w:
        raise ValueError(f"the capsule layer needs a square final map, got {h}×{w}")
    return CapsuleProjector(channels, h, num_capsules, pose_side, activation_checkpoint)


def capsule_representations(
    method: Method, projector: CapsuleProjector
) -> dict[str, Representation]:
    """``activations`` (invariant), ``poses`` (equivariant, flattened) and ``capsules``
    (their concatenation), computed from the pre-pool map, next to the pooled ``full``."""

    def activations(feature_map: Tensor) -> Tensor:
        return projector(feature_map).activations

    def poses(feature_map: Tensor) -> Tensor:
        return projector(feature_map).flat_poses

    def both(feature_map: Tensor) -> Tensor:
        out = projector(feature_map)
        return torch.cat([out.activations, out.flat_poses], dim=1)

    found = Method.representations(method)
    for name, compute, default in (
        ("activations", activations, True),
        ("poses", poses, True),
        ("capsules", both, False),
    ):
        found[name] = Representation(name, compute=compute, source="feature_map", default=default)
    return found


@register_method("equicaps", config=EquiCapsConfig)
class EquiCaps(Method):
    """EquiCaps (§11): capsule projector, the pair's transform applied to the poses."""

    config_class = EquiCapsConfig
    config: EquiCapsConfig

    def __init__(self, config: EquiCapsConfig, backbone: nn.Module, feature_dim: int) -> None:
        super().__init__(config, backbone, feature_dim)
        self.capsules = build_capsule_projector(
            backbone,
            config.resolution,
            config.num_capsules,
            config.pose_side,
            config.activation_checkpoint,
        )

    def spec(self) -> MethodSpec:
        return MethodSpec(num_views=2, structure="pairs", actions=(self.config.action,))

    def representations(self) -> dict[str, Representation]:
        return capsule_representations(self, self.capsules)

    def embed(self, images: Tensor) -> tuple[Tensor, CapsuleOutput]:
        """Pooled backbone features y and the capsule output of ``images``."""
        feature_map = self.feature_map(images)
        return feature_map.mean(dim=(2, 3)), self.capsules(feature_map)

    def forward(self, batch: Batch) -> StepOutput:
        cfg = self.config
        y_1, caps_1 = self.embed(batch.views[0])
        y_2, caps_2 = self.embed(batch.views[1])
        side = cfg.pose_side
        transform = batch.actions.pair(cfg.action).reshape(-1, side, side).to(caps_1.poses.dtype)
        terms = equicaps_loss_terms(
            caps_1.activations,
            caps_1.poses,
            caps_2.activations,
            caps_2.poses,
            transform,
            cfg.cov_n(),
        )
        loss = equicaps_loss(
            terms, cfg.sim_coeff, cfg.equi_coeff, cfg.std_coeff, cfg.memax_coeff, cfg.cov_coeff
        )
        return StepOutput(
            loss=loss,
            terms={k: v.detach() for k, v in terms.items()},
            features=[y_1.detach(), y_2.detach()],
        )
