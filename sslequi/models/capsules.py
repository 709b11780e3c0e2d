"""Self-routing capsules and the capsule projector of EquiCaps / CapsIE (methods.md §11.1–11.2).

``SelfRouting2d`` is the single-pass self-routing capsule layer of SR-CapsNet as EquiCaps
uses it (``AberdeenML/EquiCaps:src/sr_capsnet.py SelfRouting2d``, l. 12; softmax routing
l. 64; output activation l. 83). Each output location sees the N = k²·A input capsules of a
k × k window, with activation a_i ∈ [0, 1] and pose u_i ∈ ℝ^C:

    r_ij = softmax_j(W2_i u_i + b2_i)                      (routing over the B outputs)
    a_j  = Σ_i a_i r_ij / Σ_i a_i                          (a distribution over j: Σ_j a_j = 1)
    p_j  = Σ_i c_ij (W1_i u_i)_j,  c_ij = a_i r_ij / Σ_i′ a_i′ r_i′j

W1 ∈ ℝ^{N×(B·D)×C} (per-input vote matrices, Kaiming-normal), W2 ∈ ℝ^{N×B×C} and
b2 ∈ ℝ^{1×1×N×B} (routing; both zero-initialised, so routing starts uniform). One pass, no
iterations. Activation checkpointing (non-reentrant) wraps the layer, on by default as in
the official code (``--no-activation-checkpoint`` is a ``store_false`` flag): the votes
[b, L, N, B, D] are recomputed in the backward pass instead of stored.

``CapsuleProjector`` (§11.2, ``src/models.py EquiCaps_3x3`` l. 160, ``CapsNetNoStem`` l. 106)
sits on the backbone's pre-pool map [b, C_in, h, w]: primary capsules (3 × 3 conv → BN →
sigmoid activations; 3 × 3 conv → BN poses, K·D channels), then one fully connected
capsule layer, ``SelfRouting2d(K, K, D, D, kernel = h, padding 0)``, whose kernel is the
whole final map (8 × 8 at 256 px, 2 × 2 at 64 px, 1 × 1 for the tiny preset at 32 px).
Output: K activations summing to 1 and K poses of D = n² values (n × n matrices,
row-major). Parameters at the paper's sizes (K = 32, 8 × 8 map of 512 channels): 7.44 M for
3 × 3 poses, 20.4 M for 4 × 4 (derived in §11.2; tested). The primary convs carry no bias
(BatchNorm follows them).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint


class SelfRouting2d(nn.Module):
    """Self-routing capsule layer: A input capsules (poses in ℝ^C) per location → B output
    capsules (poses in ℝ^D) per output location, over k × k windows (module docstring)."""

    def __init__(
        self,
        in_capsules: int,
        out_capsules: int,
        in_pose: int,
        out_pose: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        pose_out: bool = True,
        activation_checkpoint: bool = True,
    ) -> None:
        super().__init__()
        for name, value in (
            ("in_capsules", in_capsules),
            ("out_capsules", out_capsules),
            ("in_pose", in_pose),
            ("out_pose", out_pose),
            ("kernel_size", kernel_size),
            ("stride", stride),
        ):
            if value < 1:
                raise ValueError(f"SelfRouting2d: {name} must be ≥ 1, got {value}")
        self.in_capsules, self.out_capsules = in_capsules, out_capsules
        self.in_pose, self.out_pose = in_pose, out_pose
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.activation_checkpoint = activation_checkpoint
        self.num_inputs = kernel_size * kernel_size * in_capsules  # N
        self.W1: nn.Parameter | None = None
        if pose_out:
            self.W1 = nn.Parameter(torch.empty(self.num_inputs, out_capsules * out_pose, in_pose))
        self.W2 = nn.Parameter(torch.empty(self.num_inputs, out_capsules, in_pose))
        self.b2 = nn.Parameter(torch.empty(1, 1, self.num_inputs, out_capsules))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if self.W1 is not None:
            nn.init.kaiming_normal_(self.W1)
        nn.init.zeros_(self.W2)
        nn.init.zeros_(self.b2)

    def forward(self, activations: Tensor, poses: Tensor) -> tuple[Tensor, Tensor | None]:
        """activations [b, A, h, w] in [0, 1], poses [b, A·C, h, w] (capsule-major channels)
        → activations [b, B, h′, w′] (summing to 1 over B), poses [b, B·D, h′, w′] or None."""
        if activations.shape[1] != self.in_capsules:
            raise ValueError(
                f"SelfRouting2d expects {self.in_capsules} activation channels, "
                f"got {activations.shape[1]}"
            )
        if poses.shape[1] != self.in_capsules * self.in_pose:
            raise ValueError(
                f"SelfRouting2d expects {self.in_capsules}·{self.in_pose} pose channels, "
                f"got {poses.shape[1]}"
            )
        needs_grad = torch.is_grad_enabled() and (activations.requires_grad or poses.requires_grad)
        if self.activation_checkpoint and needs_grad:
            return checkpoint(self._route, activations, poses, use_reentrant=False)  # type: ignore[return-value]
        return self._route(activations, poses)

    def output_size(self, size: int) -> int:
        return (size + 2 * self.padding - self.kernel_size) // self.stride + 1

    def _route(self, activations: Tensor, poses: Tensor) -> tuple[Tensor, Tensor | None]:
        b, _, h, w = activations.shape
        h_out, w_out = self.output_size(h), self.output_size(w)
        if h_out < 1 or w_out < 1:
            raise ValueError(
                f"SelfRouting2d kernel {self.kernel_size} (padding {self.padding}) does not fit "
                f"a {h}×{w} map"
            )
        k2, cap_a, cap_c = self.kernel_size**2, self.in_capsules, self.in_pose
        window = {"kernel_size": self.kernel_size, "stride": self.stride, "padding": self.padding}
        # Input capsule i = (capsule, window position): index capsule·k² + position.
        a_cols = F.unfold(activations, **window)  # [b, A·k², L]
        length = a_cols.shape[-1]
        a_in = a_cols.view(b, cap_a * k2, length).transpose(1, 2)  # [b, L, N]
        u = F.unfold(poses, **window).view(b, cap_a, cap_c, k2, length)
        u = u.permute(0, 4, 1, 3, 2).reshape(b, length, self.num_inputs, cap_c)  # [b, L, N, C]

        # Per-input products as batched matmuls over the N inputs: u_n [b·L, C] @ W_nᵀ.
        u_by_input = u.permute(2, 0, 1, 3).reshape(self.num_inputs, b * length, cap_c)
        logits = torch.bmm(u_by_input, self.W2.transpose(1, 2))  # [N, b·L, B]
        logits = logits.view(self.num_inputs, b, length, -1).permute(1, 2, 0, 3) + self.b2
        routing = torch.softmax(logits, dim=-1)  # r_ij: [b, L, N, B]
        weighted = a_in.unsqueeze(-1) * routing  # a_i r_ij
        weighted_sum = weighted.sum(dim=2)  # Σ_i a_i r_ij: [b, L, B]
        a_out = weighted_sum / a_in.sum(dim=2, keepdim=True)
        a_out = a_out.transpose(1, 2).reshape(b, self.out_capsules, h_out, w_out)
        if self.W1 is None:
            return a_out, None
        coeff = weighted / weighted_sum.unsqueeze(2)  # c_ij: [b, L, N, B]
        votes = torch.bmm(u_by_input, self.W1.transpose(1, 2))  # W1_i u_i: [N, b·L, B·D]
        votes = votes.view(self.num_inputs, b * length, self.out_capsules, self.out_pose)
        # p_j = Σ_i c_ij (W1_i u_i)_j: a [1, N] @ [N, D] product per (image, location, j).
        coeff_by_output = coeff.reshape(b * length, self.num_inputs, self.out_capsules)
        pose_out = torch.bmm(
            coeff_by_output.permute(0, 2, 1).reshape(-1, 1, self.num_inputs),
            votes.permute(1, 2, 0, 3).reshape(-1, self.num_inputs, self.out_pose),
        )
        pose_out = pose_out.reshape(b, length, self.out_capsules * self.out_pose)
        pose_out = pose_out.transpose(1, 2).reshape(b, -1, h_out, w_out)
        return a_out, pose_out


@dataclass
class CapsuleOutput:
    """What the capsule projector returns per image."""

    activations: Tensor  # [b, K], a distribution over the K capsules
    poses: Tensor  # [b, K, n, n] pose matrices (row-major reshape of the D = n² pose values)

    @property
    def flat_poses(self) -> Tensor:
        """vec of every pose: [b, K·n²]."""
        return self.poses.flatten(1)


class CapsuleProjector(nn.Module):
    """Primary capsules on the backbone's pre-pool map + one fully connected self-routing
    capsule layer (module docstring; methods.md §11.2)."""

    def __init__(
        self,
        in_channels: int,
        map_size: int,
        num_capsules: int = 32,
        pose_side: int = 3,
        activation_checkpoint: bool = True,
    ) -> None:
        super().__init__()
        if map_size < 1:
            raise ValueError(f"capsule projector: map_size must be ≥ 1, got {map_size}")
        if num_capsules < 2:
            raise ValueError(f"capsule projector: num_capsules must be ≥ 2, got {num_capsules}")
        if pose_side < 1:
            raise ValueError(f"capsule projector: pose_side must be ≥ 1, got {pose_side}")
        self.map_size, self.num_capsules, self.pose_side = map_size, num_capsules, pose_side
        pose_dim = pose_side * pose_side
        self.conv_a = nn.Conv2d(in_channels, num_capsules, 3, padding=1, bias=False)
        self.bn_a = nn.BatchNorm2d(num_capsules)
        self.conv_pose = nn.Conv2d(in_channels, num_capsules * pose_dim, 3, padding=1, bias=False)
        self.bn_pose = nn.BatchNorm2d(num_capsules * pose_dim)
        self.routing = SelfRouting2d(
            num_capsules,
            num_capsules,
            pose_dim,
            pose_dim,
            kernel_size=map_size,
            padding=0,
            pose_out=True,
            activation_checkpoint=activation_checkpoint,
        )

    def primary(self, feature_map: Tensor) -> tuple[Tensor, Tensor]:
        """Primary capsules: activations [b, K, h, w] and poses [b, K·n², h, w]."""
        activations = torch.sigmoid(self.bn_a(self.conv_a(feature_map)))
        return activations, self.bn_pose(self.conv_pose(feature_map))

    def forward(self, feature_map: Tensor) -> CapsuleOutput:
        h, w = feature_map.shape[-2:]
        if (h, w) != (self.map_size, self.map_size):
            raise ValueError(
                f"the capsule layer's kernel covers a {self.map_size}×{self.map_size} map, but "
                f"the backbone gave {h}×{w}: the method's resolution must match the images'"
            )
        activations, poses = self.routing(*self.primary(feature_map))
        assert poses is not None
        b = feature_map.shape[0]
        n = self.pose_side
        return CapsuleOutput(
            activations=activations.reshape(b, self.num_capsules),
            poses=poses.reshape(b, self.num_capsules, n, n),
        )


def feature_map_shape(backbone: nn.Module, resolution: int) -> tuple[int, int, int]:
    """(channels, h, w) of ``backbone.feature_map`` on a ``resolution``-px image, found by a
    meta-device dry run (no memory, no compute, the backbone itself untouched)."""
    feature_map = getattr(backbone, "feature_map", None)
    if feature_map is None:
        raise TypeError(
            f"capsule methods read the backbone's pre-pool map, but "
            f"{type(backbone).__name__} has no feature_map()"
        )
    if resolution < 1:
        raise ValueError(f"resolution must be ≥ 1, got {resolution}")
    with torch.device("meta"):
        probe = copy.deepcopy(backbone).to("meta")
        out = probe.feature_map(torch.empty(2, 3, resolution, resolution))
    if out.dim() != 4:
        raise ValueError(f"{type(backbone).__name__}.feature_map returned {tuple(out.shape)}")
    return int(out.shape[1]), int(out.shape[2]), int(out.shape[3])


def parse_pose(pose: str) -> int:
    """'3x3' → 3, '4x4' → 4 (square pose matrices only)."""
    parts = pose.lower().split("x")
    if len(parts) != 2 or not all(p.isdigit() for p in parts) or parts[0] != parts[1]:
        raise ValueError(f"pose must be a square size like '3x3' or '4x4', got {pose!r}")
    return int(parts[0])


__all__ = [
    "CapsuleOutput",
    "CapsuleProjector",
    "SelfRouting2d",
    "feature_map_shape",
    "parse_pose",
]
