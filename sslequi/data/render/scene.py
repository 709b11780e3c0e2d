"""The 3DIEBench scene: latent sampling and the fixed camera / lights (datasets.md §1.3, §6).

Latent vector per view (datasets.md §1.4): ``[a_x, a_y, a_z, floor_hue, spot_theta,
spot_phi, spot_hue]`` (+ ``[t_x, t_y, t_z]`` for -T), float64, every value redrawn for
every view. ``ViewBatch.from_latents`` turns latents into what the tracer needs:

- object rotation R = R_z(a_z)·R_y(a_y)·R_x(a_x) about the object's centre, and for -T
  the object basis R·T(t), i.e. the centre at world position R·t;
- floor plane z = −1 with albedo HSV(floor_hue, 0.6, 0.6);
- spot light at spherical (r = 4, θ = spot_theta, φ = spot_phi) aiming at the origin,
  colour HSV(spot_hue, 1, 0.8), cone angle π/8 with Blender's default blend 0.15;
- camera at spherical (2.5, π/4, π/2) = (0, 1.768, 1.768) looking at the origin, z up,
  Blender's default 50 mm lens on a 36 mm sensor (39.6° field of view).
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import Tensor

Variant = Literal["standard", "T", "OOD"]

FLOOR_Z = -1.0
FLOOR_SATURATION = FLOOR_VALUE = 0.6
SPOT_RADIUS = 4.0
SPOT_SATURATION, SPOT_VALUE = 1.0, 0.8
SPOT_SIZE = math.pi / 8  # full cone angle
SPOT_BLEND = 0.15
CAMERA_RADIUS, CAMERA_THETA, CAMERA_PHI = 2.5, math.pi / 4, math.pi / 2
FIELD_OF_VIEW = 2 * math.atan(18.0 / 50.0)
LATENT_DIM = {"standard": 7, "T": 10, "OOD": 7}


def spherical(radius: float, theta: np.ndarray | float, phi: np.ndarray | float) -> np.ndarray:
    """(r sinθ cosφ, r sinθ sinφ, r cosθ): θ from +z, φ from +x towards +y (datasets.md §1.3)."""
    return np.stack(
        np.broadcast_arrays(
            radius * np.sin(theta) * np.cos(phi),
            radius * np.sin(theta) * np.sin(phi),
            radius * np.cos(theta),
        ),
        axis=-1,
    )


CAMERA_POSITION = spherical(CAMERA_RADIUS, CAMERA_THETA, CAMERA_PHI)


def sample_latents(rng: np.random.Generator, num_views: int, variant: Variant) -> np.ndarray:
    """Draw ``num_views`` latent vectors [V, 7 | 10] float64 (datasets.md §6.2)."""
    if variant == "OOD":  # sign · U(π/2, π) per angle (seq-JEPA's OOD generator)
        sign = rng.choice(np.array([-1.0, 1.0]), size=(num_views, 3))
        angles = sign * rng.uniform(math.pi / 2, math.pi, size=(num_views, 3))
    else:
        angles = rng.uniform(-math.pi / 2, math.pi / 2, size=(num_views, 3))
    columns = [
        angles,
        rng.uniform(0.0, 1.0, size=(num_views, 1)),  # floor hue
        rng.uniform(0.0, math.pi / 4, size=(num_views, 1)),  # spot θ
        rng.uniform(0.0, 2 * math.pi, size=(num_views, 1)),  # spot φ
        rng.uniform(0.0, 1.0, size=(num_views, 1)),  # spot hue
    ]
    if variant == "T":
        columns.append(rng.uniform(-0.5, 0.5, size=(num_views, 3)))
    return np.concatenate(columns, axis=1).astype(np.float64)


def euler_xyz_matrix(angles: np.ndarray) -> np.ndarray:
    """scipy ``from_euler('xyz', angles).as_matrix()`` = R_z·R_y·R_x for angles [..., 3]."""
    cx, cy, cz = np.cos(angles[..., 0]), np.cos(angles[..., 1]), np.cos(angles[..., 2])
    sx, sy, sz = np.sin(angles[..., 0]), np.sin(angles[..., 1]), np.sin(angles[..., 2])
    rows = [
        cz * cy, cz * sy * sx - sz * cx, cz * sy * cx + sz * sx,
        sz * cy, sz * sy * sx + cz * cx, sz * sy * cx - cz * sx,
        -sy, cy * sx, cy * cx,
    ]  # fmt: skip
    return np.stack(rows, axis=-1).reshape(*angles.shape[:-1], 3, 3)


def hsv_to_rgb(hue: np.ndarray, saturation: float, value: float) -> np.ndarray:
    return np.array([colorsys.hsv_to_rgb(float(h), saturation, value) for h in np.ravel(hue)])


@dataclass
class ViewBatch:
    """Everything per view the tracer needs, as float32 tensors on one device."""

    rotation: Tensor  # [B, 3, 3] object → world
    translation: Tensor  # [B, 3] object-frame translation t (zeros unless -T)
    floor_rgb: Tensor  # [B, 3] floor albedo
    spot_position: Tensor  # [B, 3]
    spot_rgb: Tensor  # [B, 3]

    @classmethod
    def from_latents(cls, latents: np.ndarray, device: torch.device | str = "cpu") -> ViewBatch:
        latents = np.asarray(latents, dtype=np.float64)
        if latents.ndim != 2 or latents.shape[1] not in (7, 10):
            raise ValueError(f"latents must be [V, 7] or [V, 10], got {latents.shape}")
        translation = latents[:, 7:10] if latents.shape[1] == 10 else np.zeros((len(latents), 3))

        def t(x: np.ndarray) -> Tensor:
            return torch.tensor(x, dtype=torch.float32, device=device)

        return cls(
            rotation=t(euler_xyz_matrix(latents[:, :3])),
            translation=t(translation),
            floor_rgb=t(hsv_to_rgb(latents[:, 3], FLOOR_SATURATION, FLOOR_VALUE)),
            spot_position=t(spherical(SPOT_RADIUS, latents[:, 4], latents[:, 5])),
            spot_rgb=t(hsv_to_rgb(latents[:, 6], SPOT_SATURATION, SPOT_VALUE)),
        )

    def __len__(self) -> int:
        return int(self.rotation.shape[0])

    def slice(self, start: int, stop: int) -> ViewBatch:
        return ViewBatch(
            self.rotation[start:stop],
            self.translation[start:stop],
            self.floor_rgb[start:stop],
            self.spot_position[start:stop],
            self.spot_rgb[start:stop],
        )


def camera_rays(resolution: int, device: torch.device | str = "cpu") -> tuple[Tensor, Tensor]:
    """Camera origin [3] and unit ray directions [H·W, 3] (row-major pixels, top row first)."""
    eye = torch.tensor(CAMERA_POSITION, dtype=torch.float64)
    forward = -eye / eye.norm()
    world_up = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    right = torch.linalg.cross(forward, world_up)
    right = right / right.norm()
    up = torch.linalg.cross(right, forward)
    half = math.tan(FIELD_OF_VIEW / 2)
    # pixel centres in [−half, half]
    s = (torch.arange(resolution, dtype=torch.float64) + 0.5) / resolution * 2 - 1
    s = s * half
    yy, xx = torch.meshgrid(-s, s, indexing="ij")
    dirs = forward + xx.reshape(-1, 1) * right + yy.reshape(-1, 1) * up
    dirs = dirs / dirs.norm(dim=-1, keepdim=True)
    return eye.float().to(device), dirs.float().to(device)
