"""A batched sphere tracer: all views of one object in one pass, on the CPU or a GPU.

Per view the object is rotated (and for -T translated) by its latents. Rather than
transforming every sample point, each camera ray is moved into the object's frame once
(o' = Rᵀ·eye − t, d' = Rᵀ·d; rotations keep distances), so marching never rotates.

Speed comes from doing as little marching as possible:
- the floor (z = −1) is intersected analytically;
- only rays that enter the object's bounding sphere (radius 0.5 after normalisation) are
  marched, as one flat list across views, between their sphere entry and exit (or the
  floor); finished rays are dropped from the list every few steps (compaction);
- shadow rays are traced only for points the spot light reaches (inside its cone, facing
  it) whose path to the light crosses the bounding sphere; the floor casts no shadow.

Shading: Lambertian under the coloured spot light (cone with Blender's smooth blend,
inverse-square fall-off, soft shadows), a weak white sun without shadows and an ambient
term; sRGB gamma. Results are bit-identical for the same inputs on the same device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from sslequi.data.render.scene import (
    FIELD_OF_VIEW,
    FLOOR_Z,
    SPOT_BLEND,
    SPOT_SIZE,
    ViewBatch,
    camera_rays,
)
from sslequi.data.render.sdf import CompiledShape

BOUND_RADIUS = 0.505  # normalised objects fit in radius 0.5 about their centre
AMBIENT = 0.2
SUN_INTENSITY = 0.35
SUN_DIRECTION = (0.25, 0.55, 0.8)  # towards the sun (z up, camera side)
SPOT_POWER = 26.0  # irradiance · distance² at the cone centre
SOFT_SHADOW_K = 10.0


@dataclass(frozen=True)
class TraceSettings:
    """Quality/speed knobs. Step counts of 0 pick a default for the resolution."""

    march_steps: int = 0
    shadow_steps: int = 0
    shadows: bool = True
    compact_every: int = 4
    hit_tolerance: float = 0.35  # surface hit threshold, in pixel footprints
    max_pixels_per_chunk: int = 1 << 18  # views are traced in chunks of at most this many pixels
    supersample: int = 1  # trace s×s rays per pixel and average (anti-aliasing, s² the cost)

    def steps(self, resolution: int) -> tuple[int, int]:
        march = self.march_steps or (36 if resolution <= 64 else 48 if resolution <= 128 else 64)
        shadow = self.shadow_steps or (14 if resolution <= 64 else 18 if resolution <= 128 else 24)
        return march, shadow


GAMMA_LEVELS = 4096
_GAMMA_CACHE: dict[str, Tensor] = {}


def _gamma_table(device: torch.device) -> Tensor:
    """sRGB-like gamma (1/2.2) as a lookup table: exact arithmetic keeps output bit-stable."""
    key = str(device)
    if key not in _GAMMA_CACHE:
        levels = torch.arange(GAMMA_LEVELS, dtype=torch.float64) / (GAMMA_LEVELS - 1)
        _GAMMA_CACHE[key] = (levels.pow(1 / 2.2) * 255 + 0.5).to(torch.uint8).to(device)
    return _GAMMA_CACHE[key]


_RAY_CACHE: dict[tuple[int, str], tuple[Tensor, Tensor]] = {}


def _rays(resolution: int, device: torch.device) -> tuple[Tensor, Tensor]:
    key = (resolution, str(device))
    if key not in _RAY_CACHE:
        _RAY_CACHE[key] = camera_rays(resolution, device)
    return _RAY_CACHE[key]


def _sphere_interval(origins: Tensor, directions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Entry/exit distance of unit rays through the bounding sphere at the origin."""
    b = (origins * directions).sum(-1)
    c = (origins * origins).sum(-1) - BOUND_RADIUS**2
    disc = b * b - c
    root = disc.clamp(min=0).sqrt()
    return (-b - root).clamp(min=0), -b + root, disc > 0


def _march(
    shape: CompiledShape,
    origins: Tensor,
    directions: Tensor,
    t: Tensor,
    t_end: Tensor,
    tolerance: float,
    steps: int,
    compact_every: int,
) -> tuple[Tensor, Tensor]:
    """Sphere-trace rays from ``t`` to ``t_end``; returns (hit mask, hit distance)."""
    hit = torch.zeros(t.shape[0], dtype=torch.bool, device=t.device)
    t_out = t.clone()
    active = torch.arange(t.shape[0], device=t.device)
    o, d, ta, te = origins, directions, t, t_end
    for step in range(steps):
        if active.numel() == 0:
            break
        dist = shape.distance(o + ta[:, None] * d)
        last = step == steps - 1
        near = dist < (tolerance * (4.0 if last else 1.0)) * ta
        ta = ta + dist
        if last or (step + 1) % compact_every == 0:
            done = near | (ta > te) | last
            ids = active[done]
            t_out[ids] = ta[done]
            hit[ids] = near[done] & (ta[done] <= te[done] + dist[done])
            keep = ~done
            active, o, d, ta, te = active[keep], o[keep], d[keep], ta[keep], te[keep]
    return hit, t_out


def _soft_shadow(
    shape: CompiledShape,
    origins: Tensor,
    directions: Tensor,
    t: Tensor,
    t_end: Tensor,
    steps: int,
    compact_every: int,
) -> Tensor:
    """Penumbra factor in [0, 1] along each ray (1 = unoccluded), soft-shadow marching."""
    light = torch.ones(t.shape[0], device=t.device)
    active = torch.arange(t.shape[0], device=t.device)
    o, d, ta, te = origins, directions, t, t_end
    lit = light.clone()
    for step in range(steps):
        if active.numel() == 0:
            break
        dist = shape.distance(o + ta[:, None] * d)
        lit = torch.minimum(lit, (SOFT_SHADOW_K * dist / ta).clamp(0.0, 1.0))
        ta = ta + dist.clamp(0.01, 0.25)
        if step == steps - 1 or (step + 1) % compact_every == 0:
            done = (lit < 0.02) | (ta > te)
            light[active[done]] = lit[done]
            keep = ~done
            active, o, d, ta, te, lit = (
                active[keep], o[keep], d[keep], ta[keep], te[keep], lit[keep]
            )  # fmt: skip
    light[active] = lit
    return light


def _normals(shape: CompiledShape, points: Tensor, eps: float) -> Tensor:
    """Tetrahedral finite-difference gradient of the SDF, normalised: [N, 3]."""
    k = torch.tensor(
        [[1, -1, -1], [-1, -1, 1], [-1, 1, -1], [1, 1, 1]], dtype=points.dtype, device=points.device
    )
    probes = (points[None] + eps * k[:, None]).reshape(-1, 3)
    dist = shape.distance(probes).view(4, -1)
    grad = (k[:, None, :] * dist[..., None]).sum(0)
    return grad / grad.norm(dim=-1, keepdim=True).clamp(min=1e-12)


def _smoothstep(x: Tensor) -> Tensor:
    x = x.clamp(0.0, 1.0)
    return x * x * (3 - 2 * x)


@torch.no_grad()
def render_views(
    shape: CompiledShape,
    palette: Tensor,
    views: ViewBatch,
    resolution: int,
    settings: TraceSettings | None = None,
) -> Tensor:
    """Render every view of one object: uint8 [B, 3, H, W] (RGB).

    ``palette`` [K, 3] holds the albedo of each material index used by the primitives.
    """
    settings = settings or TraceSettings()
    factor = max(1, settings.supersample)
    traced = resolution * factor
    per_chunk = max(1, settings.max_pixels_per_chunk // (traced * traced))
    chunks = [
        _render_chunk(shape, palette, views.slice(s, s + per_chunk), traced, settings)
        for s in range(0, len(views), per_chunk)
    ]
    images = torch.cat(chunks)
    if factor == 1:
        return images
    # box filter in 8.8 fixed point: integer arithmetic keeps the output bit-stable
    summed = images.to(torch.int32).view(len(views), 3, resolution, factor, resolution, factor)
    summed = summed.sum(dim=(3, 5))
    return ((summed + factor * factor // 2) // (factor * factor)).to(torch.uint8)


def _render_chunk(
    shape: CompiledShape,
    palette: Tensor,
    views: ViewBatch,
    resolution: int,
    settings: TraceSettings,
) -> Tensor:
    device = views.rotation.device
    eye, dirs = _rays(resolution, device)
    march_steps, shadow_steps = settings.steps(resolution)
    num_views, num_pixels = len(views), dirs.shape[0]
    pixel_angle = FIELD_OF_VIEW / resolution
    rot, trans = views.rotation, views.translation

    # camera rays in each view's object frame (row vectors: Rᵀx = x @ R)
    o_obj = eye @ rot - trans  # [B, 3]
    d_obj = dirs @ rot  # [B, N, 3]
    t_floor = (FLOOR_Z - eye[2]) / dirs[:, 2]  # every ray looks down onto the floor
    t_near, t_far, crosses = _sphere_interval(o_obj[:, None, :], d_obj)
    t_far = torch.minimum(t_far, t_floor)
    candidates = (crosses & (t_far > t_near)).reshape(-1).nonzero().squeeze(1)
    view_of = candidates // num_pixels
    hit, t_hit = _march(
        shape,
        o_obj[view_of],
        d_obj.reshape(-1, 3)[candidates],
        t_near.reshape(-1)[candidates],
        t_far.reshape(-1)[candidates],
        settings.hit_tolerance * pixel_angle,
        march_steps,
        settings.compact_every,
    )
    hit_pixels, hit_views, t_hit = candidates[hit], view_of[hit], t_hit[hit]
    p_obj = o_obj[hit_views] + t_hit[:, None] * d_obj.reshape(-1, 3)[hit_pixels]
    n_obj = _normals(shape, p_obj, 1.5e-3)
    n_world = (rot[hit_views] @ n_obj[:, :, None]).squeeze(-1)

    # per-pixel geometry: floor everywhere, object where hit
    total = num_views * num_pixels
    pixel_view = torch.arange(num_views, device=device).repeat_interleave(num_pixels)
    floor_points = eye + t_floor[:, None] * dirs
    position = floor_points.repeat(num_views, 1)
    normal = torch.zeros(total, 3, device=device)
    normal[:, 2] = 1.0
    albedo = views.floor_rgb[pixel_view]
    position[hit_pixels] = eye + t_hit[:, None] * dirs[hit_pixels % num_pixels]
    normal[hit_pixels] = n_world
    albedo[hit_pixels] = palette[shape.material(p_obj)]

    # spot light: cone with smooth edge, inverse square, Lambert
    spot = views.spot_position[pixel_view]
    to_light = spot - position
    dist2 = (to_light * to_light).sum(-1)
    light_dir = to_light / dist2.sqrt()[:, None]
    axis = -spot / spot.norm(dim=-1, keepdim=True)
    cos_angle = -(light_dir * axis).sum(-1)
    cos_half = math.cos(SPOT_SIZE / 2)
    cone = _smoothstep((cos_angle - cos_half) / ((1 - cos_half) * SPOT_BLEND))
    spot_light = SPOT_POWER * cone * (normal * light_dir).sum(-1).clamp(min=0) / dist2

    if settings.shadows:
        lit = (spot_light > 0).nonzero().squeeze(1)
        v = pixel_view[lit]
        start = position[lit] + normal[lit] * 2e-3
        o_s = (start[:, None, :] @ rot[v]).squeeze(1) - trans[v]
        d_s = (light_dir[lit][:, None, :] @ rot[v]).squeeze(1)
        s_near, s_far, s_cross = _sphere_interval(o_s, d_s)
        s_near = s_near.clamp(min=0.02)
        s_far = torch.minimum(s_far, dist2[lit].sqrt())
        shadowed = (s_cross & (s_far > s_near)).nonzero().squeeze(1)
        if shadowed.numel():
            factor = _soft_shadow(
                shape,
                o_s[shadowed],
                d_s[shadowed],
                s_near[shadowed],
                s_far[shadowed],
                shadow_steps,
                settings.compact_every,
            )
            spot_light[lit[shadowed]] *= factor

    sun_dir = torch.tensor(SUN_DIRECTION, device=device)
    sun_dir = sun_dir / sun_dir.norm()
    sun = SUN_INTENSITY * (normal @ sun_dir).clamp(min=0)
    irradiance = (AMBIENT + sun)[:, None] + spot_light[:, None] * views.spot_rgb[pixel_view]
    linear = (albedo * irradiance).clamp(0.0, 1.0)
    image = _gamma_table(device)[(linear * (GAMMA_LEVELS - 1) + 0.5).long()]
    return image.view(num_views, resolution, resolution, 3).permute(0, 3, 1, 2).contiguous()
