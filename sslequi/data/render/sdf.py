"""Signed distance functions of composed primitives, evaluated batched in torch.

An object is a list of ``Primitive`` s (each with its own pose in the object frame),
unioned; primitives flagged ``carve`` are subtracted from the union (a mug's cavity).
``CompiledShape`` turns the list into a few tensors so that one call evaluates every
primitive for every point: one matmul brings all points into all primitive frames, then
one vectorised formula per primitive kind (Inigo Quilez's exact SDFs, the ellipsoid's
being the usual bound-like approximation).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np
import torch
from torch import Tensor


class Kind(IntEnum):
    """Primitive kinds; each lives in its own local frame, axis along local z."""

    BOX = 0  # params: half extents (x, y, z), corner rounding
    CAPSULE = 1  # params: half length (segment along z), radius
    CYLINDER = 2  # params: radius, half height, edge rounding
    ELLIPSOID = 3  # params: radii (x, y, z)
    TORUS = 4  # params: major radius (ring in the xy plane), minor radius
    CONE = 5  # params: radius at z = −h/2, radius at z = +h/2, height h (round cone)


@dataclass(frozen=True)
class Primitive:
    """One primitive: kind, centre and rotation (columns = local axes in the object frame)."""

    kind: Kind
    center: tuple[float, float, float]
    rotation: np.ndarray  # [3, 3] float64, local → object frame
    params: tuple[float, ...]
    material: int = 0  # index into the object's palette
    carve: bool = False  # subtract instead of union

    def local_half_extents(self) -> np.ndarray:
        """Half extents of the primitive's axis-aligned box in its local frame."""
        p = self.params
        if self.kind == Kind.BOX:
            return np.array(p[:3])
        if self.kind == Kind.CAPSULE:
            return np.array([p[1], p[1], p[0] + p[1]])
        if self.kind == Kind.CYLINDER:
            return np.array([p[0], p[0], p[1]])
        if self.kind == Kind.ELLIPSOID:
            return np.array(p[:3])
        if self.kind == Kind.TORUS:
            return np.array([p[0] + p[1], p[0] + p[1], p[1]])
        radius = max(p[0], p[1])
        return np.array([radius, radius, p[2] / 2 + radius])

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Axis-aligned (min, max) corners in the object frame."""
        half = np.abs(self.rotation) @ self.local_half_extents()
        center = np.asarray(self.center)
        return center - half, center + half

    def scaled(self, offset: np.ndarray, scale: float) -> Primitive:
        """The primitive after ``x → (x − offset) · scale`` (sizes scale too)."""
        center = tuple(float(v) for v in (np.asarray(self.center) - offset) * scale)
        return Primitive(
            kind=self.kind,
            center=center,  # type: ignore[arg-type]
            rotation=self.rotation,
            params=tuple(float(v) * scale for v in self.params),
            material=self.material,
            carve=self.carve,
        )


def normalize_primitives(prims: list[Primitive]) -> list[Primitive]:
    """Centre at the bounding-box centre and scale to a bounding-box diagonal of 1.

    This mirrors ShapeNetCore v2's normalisation and BlenderProc's 'origin at the bounding
    box centre' (datasets.md §1.3), so every object fits in a sphere of radius 0.5.
    """
    solid = [p for p in prims if not p.carve]
    lows, highs = zip(*(p.bounds() for p in solid), strict=True)
    low, high = np.min(lows, axis=0), np.max(highs, axis=0)
    center = (low + high) / 2
    scale = 1.0 / float(np.linalg.norm(high - low))
    return [p.scaled(center, scale) for p in prims]


@dataclass(frozen=True)
class _Group:
    kind: Kind
    start: int
    stop: int
    params: Tensor  # [P_kind, 4]


def _pad4(values: tuple[float, ...]) -> list[float]:
    return list(values) + [0.0] * (4 - len(values))


class CompiledShape:
    """Primitives as tensors; ``distance(points)`` evaluates the whole object at once.

    Points are transformed into every primitive frame with one matmul producing a
    component-major [3, P, N] block, so each formula works on contiguous [P, N] planes
    and the union is a reduction over the leading axis.
    """

    def __init__(self, prims: list[Primitive], device: torch.device | str = "cpu") -> None:
        if not prims:
            raise ValueError("a shape needs at least one primitive")
        # Solid primitives first, then carved ones; within each, grouped by kind.
        order = sorted(range(len(prims)), key=lambda i: (prims[i].carve, prims[i].kind))
        self.prims = [prims[i] for i in order]
        rot = np.stack([p.rotation for p in self.prims])  # [P, 3, 3], columns = local axes
        centers = np.array([p.center for p in self.prims])  # [P, 3]
        # local_c(p) = axis_c(p) · (x − c_p): rows ordered component-major (c * P + p)
        axes = np.transpose(rot, (2, 0, 1)).reshape(-1, 3)  # [3P, 3]
        self.frames = torch.tensor(axes, dtype=torch.float32, device=device)
        offsets = np.einsum("cpi,pi->cp", np.transpose(rot, (2, 0, 1)), centers).reshape(-1, 1)
        self.offsets = torch.tensor(offsets, dtype=torch.float32, device=device)  # [3P, 1]
        self.num_solid = sum(not p.carve for p in self.prims)
        self.materials = torch.tensor([p.material for p in self.prims], device=device)
        solid = [p for p in self.prims if not p.carve]
        lows, highs = zip(*(p.bounds() for p in solid), strict=True)
        self.bounds_low = torch.tensor(
            np.min(lows, axis=0) - 0.01, dtype=torch.float32, device=device
        )
        self.bounds_high = torch.tensor(
            np.max(highs, axis=0) + 0.01, dtype=torch.float32, device=device
        )
        self.groups: list[_Group] = []
        start = 0
        while start < len(self.prims):
            stop = start
            head = self.prims[start]
            while (
                stop < len(self.prims)
                and self.prims[stop].kind == head.kind
                and self.prims[stop].carve == head.carve
            ):
                stop += 1
            params = torch.tensor(
                [_pad4(p.params) for p in self.prims[start:stop]],
                dtype=torch.float32,
                device=device,
            )[:, :, None]  # [P_kind, 4, 1]: broadcasts over points
            self.groups.append(_Group(head.kind, start, stop, params))
            start = stop

    @property
    def num_primitives(self) -> int:
        return len(self.prims)

    def per_primitive(self, points: Tensor) -> Tensor:
        """Signed distance of each point [N, 3] to each primitive: [P, N]."""
        local = torch.addmm(-self.offsets, self.frames, points.T)  # [3P, N]
        local = local.view(3, len(self.prims), points.shape[0])
        parts = [
            _EVALUATORS[g.kind](
                local[0, g.start : g.stop],
                local[1, g.start : g.stop],
                local[2, g.start : g.stop],
                g.params,
            )  # fmt: skip
            for g in self.groups
        ]
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=0)

    def distance(self, points: Tensor) -> Tensor:
        """Signed distance of the object at points [N, 3]: [N]."""
        per = self.per_primitive(points)
        solid = per[: self.num_solid].amin(dim=0)
        if self.num_solid == per.shape[0]:
            return solid
        carved = per[self.num_solid :].amin(dim=0)
        return torch.maximum(solid, -carved)

    def material(self, points: Tensor) -> Tensor:
        """Palette index of the nearest solid primitive at points [N, 3]: [N]."""
        per = self.per_primitive(points)[: self.num_solid]
        return self.materials[per.argmin(dim=0)]


# --- per-kind distance formulas: local coordinates x, y, z [P, N], params [P, 4, 1] -------


def _length3(x: Tensor, y: Tensor, z: Tensor) -> Tensor:
    return torch.sqrt(x * x + y * y + z * z)


def _box(x: Tensor, y: Tensor, z: Tensor, prm: Tensor) -> Tensor:
    rounding = prm[:, 3]
    dx = x.abs() - (prm[:, 0] - rounding)
    dy = y.abs() - (prm[:, 1] - rounding)
    dz = z.abs() - (prm[:, 2] - rounding)
    outside = _length3(dx.clamp(min=0), dy.clamp(min=0), dz.clamp(min=0))
    inside = torch.maximum(dx, torch.maximum(dy, dz)).clamp(max=0)
    return outside + inside - rounding


def _capsule(x: Tensor, y: Tensor, z: Tensor, prm: Tensor) -> Tensor:
    half, radius = prm[:, 0], prm[:, 1]
    dz = z - torch.minimum(torch.maximum(z, -half), half)
    return _length3(x, y, dz) - radius


def _cylinder(x: Tensor, y: Tensor, z: Tensor, prm: Tensor) -> Tensor:
    radius, half, rounding = prm[:, 0], prm[:, 1], prm[:, 2]
    radial = torch.sqrt(x * x + y * y) - (radius - rounding)
    axial = z.abs() - (half - rounding)
    ro, ao = radial.clamp(min=0), axial.clamp(min=0)
    return torch.sqrt(ro * ro + ao * ao) + torch.maximum(radial, axial).clamp(max=0) - rounding


def _ellipsoid(x: Tensor, y: Tensor, z: Tensor, prm: Tensor) -> Tensor:
    rx, ry, rz = prm[:, 0], prm[:, 1], prm[:, 2]
    k0 = _length3(x / rx, y / ry, z / rz)
    k1 = _length3(x / (rx * rx), y / (ry * ry), z / (rz * rz)).clamp(min=1e-6)
    # outside: Quilez's k0(k0−1)/k1; inside: (k0−1)·min radius, a bound that stays
    # negative down to the centre (matters where an ellipsoid is carved)
    inner = (k0 - 1.0) * torch.minimum(rx, torch.minimum(ry, rz))
    return torch.where(k0 < 1.0, inner, k0 * (k0 - 1.0) / k1)


def _torus(x: Tensor, y: Tensor, z: Tensor, prm: Tensor) -> Tensor:
    major, minor = prm[:, 0], prm[:, 1]
    ring = torch.sqrt(x * x + y * y) - major
    return torch.sqrt(ring * ring + z * z) - minor


def _cone(x: Tensor, y: Tensor, z: Tensor, prm: Tensor) -> Tensor:
    r1, r2, height = prm[:, 0], prm[:, 1], prm[:, 2]
    slope = (r1 - r2) / height
    cos_ = torch.sqrt(1.0 - slope * slope)
    radial = torch.sqrt(x * x + y * y)
    axial = z + height / 2  # base sphere at axial = 0
    k = -slope * radial + cos_ * axial
    to_base = torch.sqrt(radial * radial + axial * axial) - r1
    top = axial - height
    to_top = torch.sqrt(radial * radial + top * top) - r2
    to_side = radial * cos_ + axial * slope - r1
    return torch.where(k < 0, to_base, torch.where(k > cos_ * height, to_top, to_side))


_EVALUATORS = {
    Kind.BOX: _box,
    Kind.CAPSULE: _capsule,
    Kind.CYLINDER: _cylinder,
    Kind.ELLIPSOID: _ellipsoid,
    Kind.TORUS: _torus,
    Kind.CONE: _cone,
}
