"""``synthetic``: a tiny in-memory 3D object dataset rendered procedurally (no files).

A stand-in with 3DIEBench's item layout and latent semantics (datasets.md §1.3–1.5, §6) for
tests, exact-resume checks and the CPU demo. Each object is an asymmetric cloud of points
on the faces of a few cuboids (one template per class, jittered per object, with its own
albedo). Every view draws all seven latents afresh, as in 3DIEBench:

    [a_x, a_y, a_z, floor_hue, spot_theta, spot_phi, spot_hue]

with a_· ~ U(−π/2, π/2) (Euler 'xyz', extrinsic: R = R_z R_y R_x, scipy's ``from_euler``),
floor_hue ~ U(0, 1), spot_theta ~ U(0, π/4), spot_phi ~ U(0, 2π), spot_hue ~ U(0, 1).

Rendering (orthographic, z-buffered point splats, vectorised over the views of an object):
the rotated cloud is seen from a camera at 45° elevation (3DIEBench's camera direction), so
the rotation is visible in the pixels; points are Lambert-shaded by the spot light at
(θ, φ) in the spot colour HSV(spot_hue, 1, 0.8); the background is the floor, HSV(floor_hue,
0.6, 0.6), with a bright patch where the spot hits it.

Determinism: the object (class, shape, albedo) and the latents of its ``views_per_object``
views are functions of (seed, split, index) only, so ``views_of(i)`` always returns the same
images. ``__getitem__`` draws ``num_views`` distinct views with torch's global generator
(seeded by the trainer and by DataLoader's per-worker seeding), like SIE's random pair.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from sslequi.data.base import DatasetConfig, DatasetInfo, ObjectDataset
from sslequi.registry import register_dataset
from sslequi.types import RawBatch, Sample, collate_samples

# 3DIEBench normalisation (datasets.md §1.9), used by every reference repository.
THREEDIE_MEAN = (0.5016, 0.5037, 0.5060)
THREEDIE_STD = (0.1030, 0.0999, 0.0969)
LATENT_DIM = 7
SPLITS = ("train", "val", "test")

# Class templates: cuboids (centre xyz, size xyz) in a unit-ish frame. Each is chiral or at
# least has no rotational symmetry, so the pose is identifiable from the image.
_TEMPLATES: tuple[tuple[tuple[float, ...], ...], ...] = (
    # 0 "L with a knob": long bar on x, short bar on y at one end, cube up at the other.
    (
        (0.0, 0.0, 0.0, 1.6, 0.3, 0.3),
        (-0.65, 0.45, 0.0, 0.3, 0.6, 0.3),
        (0.65, 0.0, 0.35, 0.3, 0.3, 0.4),
    ),
    # 1 "tripod": three orthogonal arms of unequal lengths.
    (
        (0.5, 0.0, 0.0, 1.0, 0.25, 0.25),
        (0.0, 0.35, 0.0, 0.25, 0.7, 0.25),
        (0.0, 0.0, 0.2, 0.25, 0.25, 0.4),
    ),
    # 2 "table with one leg": a plate and an off-centre leg plus a corner block.
    (
        (0.0, 0.0, 0.3, 1.2, 0.8, 0.15),
        (0.35, -0.2, -0.2, 0.2, 0.2, 0.85),
        (-0.5, 0.3, 0.5, 0.2, 0.2, 0.25),
    ),
    # 3 "staircase": three steps of decreasing height.
    (
        (-0.5, 0.0, -0.3, 0.4, 0.6, 0.3),
        (0.0, 0.0, -0.1, 0.4, 0.6, 0.7),
        (0.5, 0.0, 0.1, 0.4, 0.6, 1.1),
    ),
    # 4 "T with an offset stem".
    (
        (0.0, 0.0, 0.5, 1.4, 0.3, 0.3),
        (0.3, 0.0, -0.1, 0.3, 0.3, 0.9),
        (-0.55, 0.3, 0.5, 0.25, 0.35, 0.25),
    ),
    # 5 "hook": bar, upright and a back-pointing tip.
    (
        (0.0, 0.0, -0.5, 1.2, 0.3, 0.3),
        (0.45, 0.0, 0.0, 0.3, 0.3, 0.9),
        (0.3, -0.35, 0.45, 0.3, 0.5, 0.3),
    ),
)
MAX_CLASSES = len(_TEMPLATES)

# Camera at 45° elevation on the +y side (3DIEBench: (0, 1.768, 1.768) looking at the origin).
_INV_SQRT2 = 1.0 / np.sqrt(2.0)
_CAM_RIGHT = np.array([-1.0, 0.0, 0.0])
_CAM_UP = np.array([0.0, -_INV_SQRT2, _INV_SQRT2])
_CAM_TOWARDS = np.array([0.0, _INV_SQRT2, _INV_SQRT2])  # larger = nearer the camera
_CAMERA = np.stack([_CAM_RIGHT, _CAM_UP, _CAM_TOWARDS])  # world → (right, up, towards)


@dataclass
class SyntheticConfig(DatasetConfig):
    """Size and seed of the procedural dataset (``configs/dataset/synthetic.yaml``)."""

    name: str = "synthetic"
    resolution: int = 32
    n_objects: int = 512  # train objects
    n_val_objects: int = 128  # val/test objects
    views_per_object: int = 8
    num_classes: int = 4
    points_per_object: int = 0  # 0 = auto: 400 · max(1, resolution / 32)^½
    seed: int = 0

    def __post_init__(self) -> None:
        if self.resolution < 8:
            raise ValueError(f"synthetic.resolution must be ≥ 8, got {self.resolution}")
        if not 1 <= self.num_classes <= MAX_CLASSES:
            raise ValueError(
                f"synthetic.num_classes must be in [1, {MAX_CLASSES}], got {self.num_classes}"
            )
        if self.n_objects < 1 or self.n_val_objects < 1:
            raise ValueError("synthetic.n_objects and n_val_objects must be ≥ 1")
        if self.views_per_object < 1:
            raise ValueError(f"synthetic.views_per_object must be ≥ 1, got {self.views_per_object}")
        if self.points_per_object != 0 and self.points_per_object < 10:
            raise ValueError("synthetic.points_per_object must be 0 (auto) or ≥ 10")

    @property
    def n_points(self) -> int:
        """Points per object: the configured number, or scaled with the resolution."""
        if self.points_per_object:
            return self.points_per_object
        return int(400 * max(1.0, self.resolution / 32) ** 0.5)


@dataclass(frozen=True)
class SyntheticObject:
    """One object's geometry: points [N, 3] and unit normals [N, 3] in its own frame."""

    label: int
    points: np.ndarray
    normals: np.ndarray
    albedo: np.ndarray  # [3] in [0, 1]
    latents: np.ndarray  # [views_per_object, 7] float64


def euler_xyz_to_matrix(angles: np.ndarray) -> np.ndarray:
    """scipy ``Rotation.from_euler('xyz', a).as_matrix()`` = R_z R_y R_x, batched: [..., 3, 3]."""
    ax, ay, az = angles[..., 0], angles[..., 1], angles[..., 2]
    cx, sx, cy, sy, cz, sz = np.cos(ax), np.sin(ax), np.cos(ay), np.sin(ay), np.cos(az), np.sin(az)
    matrix = np.empty((*angles.shape[:-1], 3, 3))
    matrix[..., 0, 0] = cz * cy
    matrix[..., 0, 1] = cz * sy * sx - sz * cx
    matrix[..., 0, 2] = cz * sy * cx + sz * sx
    matrix[..., 1, 0] = sz * cy
    matrix[..., 1, 1] = sz * sy * sx + cz * cx
    matrix[..., 1, 2] = sz * sy * cx - cz * sx
    matrix[..., 2, 0] = -sy
    matrix[..., 2, 1] = cy * sx
    matrix[..., 2, 2] = cy * cx
    return matrix


def hsv_to_rgb(h: np.ndarray, s: float | np.ndarray, v: float | np.ndarray) -> np.ndarray:
    """Vectorised HSV → RGB in [0, 1]; output shape ``h.shape + (3,)``.

    Channel c = v − v·s·clip(min(k, 4 − k), 0, 1) with k = (n_c + 6h) mod 6, n = (5, 3, 1).
    """
    h = np.asarray(h, dtype=np.float64)[..., None]
    k = (np.array([5.0, 3.0, 1.0]) + 6.0 * h) % 6.0
    s = np.asarray(s, dtype=np.float64)[..., None] if np.ndim(s) else s
    v = np.asarray(v, dtype=np.float64)[..., None] if np.ndim(v) else v
    return v - v * s * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)


def sample_latents(rng: np.random.Generator, n: int) -> np.ndarray:
    """n latent vectors in the 3DIEBench layout and ranges (datasets.md §1.4): [n, 7]."""
    return np.stack(
        [
            rng.uniform(-np.pi / 2, np.pi / 2, n),
            rng.uniform(-np.pi / 2, np.pi / 2, n),
            rng.uniform(-np.pi / 2, np.pi / 2, n),
            rng.uniform(0.0, 1.0, n),
            rng.uniform(0.0, np.pi / 4, n),
            rng.uniform(0.0, 2 * np.pi, n),
            rng.uniform(0.0, 1.0, n),
        ],
        axis=1,
    )


def make_object(rng: np.random.Generator, label: int, n_points: int, views: int) -> SyntheticObject:
    """A jittered instance of class ``label``'s template with per-view latents."""
    boxes = np.array(_TEMPLATES[label], dtype=np.float64)
    boxes = boxes * rng.uniform(0.85, 1.15, size=boxes.shape)
    centres, sizes = boxes[:, :3], boxes[:, 3:]
    # Face areas decide how many points each face gets (uniform surface density).
    face_axes, face_signs, face_box, face_area = [], [], [], []
    for b, size in enumerate(sizes):
        for axis in range(3):
            others = [a for a in range(3) if a != axis]
            for sign in (-1.0, 1.0):
                face_axes.append(axis)
                face_signs.append(sign)
                face_box.append(b)
                face_area.append(size[others[0]] * size[others[1]])
    prob = np.asarray(face_area) / np.sum(face_area)
    faces = rng.choice(len(prob), size=n_points, p=prob)
    axes = np.asarray(face_axes)[faces]
    signs = np.asarray(face_signs)[faces]
    owner = np.asarray(face_box)[faces]
    local = rng.uniform(-0.5, 0.5, size=(n_points, 3))
    local[np.arange(n_points), axes] = 0.5 * signs
    points = centres[owner] + local * sizes[owner]
    points -= points.mean(axis=0)
    points /= np.max(np.linalg.norm(points, axis=1))
    normals = np.zeros((n_points, 3))
    normals[np.arange(n_points), axes] = signs
    albedo = hsv_to_rgb(rng.uniform(0.0, 1.0, size=()), 0.35, 1.0)
    return SyntheticObject(label, points, normals, albedo, sample_latents(rng, views))


@lru_cache(maxsize=8)
def _pixel_grid(resolution: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pixel-centre coordinates in [−1, 1] (cols, rows) and the splat offsets (dy, dx)."""
    grid = (np.arange(resolution) + 0.5) / resolution * 2.0 - 1.0
    cols, rows = np.meshgrid(grid, grid)
    radius = max(1, round(1.4 * resolution / 32 - 0.5))
    offsets = np.arange(-radius, radius + 1)
    dy, dx = (g.ravel() for g in np.meshgrid(offsets, offsets, indexing="ij"))
    return cols, rows, dy, dx


def render_views(obj: SyntheticObject, latents: np.ndarray, resolution: int) -> np.ndarray:
    """Render ``obj`` under each latent row: uint8 [V, 3, H, W] (module docstring)."""
    v_count, res = latents.shape[0], resolution
    n_points = obj.points.shape[0]
    cols, rows, dy, dx = _pixel_grid(res)
    rotations = euler_xyz_to_matrix(latents[:, :3])  # [V, 3, 3]
    # Rotate, then read camera coordinates directly: [V, N, 3] = (right, up, towards).
    to_camera = _CAMERA @ rotations  # [V, 3, 3]
    cam = obj.points @ to_camera.transpose(0, 2, 1)
    theta, phi = latents[:, 4], latents[:, 5]
    sin_t = np.sin(theta)
    light = np.stack([sin_t * np.cos(phi), sin_t * np.sin(phi), np.cos(theta)], 1)  # [V, 3]
    colours_hsv = hsv_to_rgb(latents[:, [6, 3]], np.array([1.0, 0.6]), np.array([0.8, 0.6]))
    spot_rgb, floor_rgb = colours_hsv[:, 0], colours_hsv[:, 1]  # [V, 3] each

    # Floor with the spot's patch: the spot hits z = −1 at −tanθ (cosφ, sinφ).
    hit = np.stack(
        [-np.tan(theta) * np.cos(phi), -np.tan(theta) * np.sin(phi), -np.ones(v_count)], 1
    )
    hit_cam = hit @ _CAMERA.T / 1.6
    d2 = (cols - hit_cam[:, 0, None, None]) ** 2 + (rows + hit_cam[:, 1, None, None]) ** 2
    patch = np.exp(d2 * (-1.0 / (2 * 0.25**2)))[..., None]  # [V, H, W, 1]
    image = (
        floor_rgb[:, None, None] * (0.75 + 0.25 * patch) + 0.35 * patch * spot_rgb[:, None, None]
    )

    # Object points: Lambert shading by the spot light, z-buffered square splats.
    lambert = np.clip(obj.normals @ (rotations.transpose(0, 2, 1) @ light[..., None]), 0.0, 1.0)
    shade = 0.3 + 0.7 * lambert * (0.5 + spot_rgb[:, None, :])  # [V, N, 3]
    colours = np.minimum(obj.albedo * shade, 1.0).reshape(-1, 3)
    scale = 0.42 * res
    px = np.floor(res / 2 + cam[..., 0] * scale).astype(np.int64)
    py = np.floor(res / 2 - cam[..., 1] * scale).astype(np.int64)
    sx = (px[..., None] + dx).ravel()  # [V·N·S]
    sy = (py[..., None] + dy).ravel()
    inside = (sx >= 0) & (sx < res) & (sy >= 0) & (sy < res)
    point = np.repeat(np.arange(v_count * n_points), dx.size)[inside]
    flat = (point // n_points * res + sy[inside]) * res + sx[inside]
    # One sort key: pixel first, then nearness (depth ∈ [−1, 1] after normalisation).
    order = np.argsort(flat * 4.0 + (2.0 - cam[..., 2].ravel()[point]))
    flat_sorted = flat[order]
    first = np.flatnonzero(np.r_[True, flat_sorted[1:] != flat_sorted[:-1]])
    chosen = order[first]
    pixels = image.reshape(-1, 3)
    pixels[flat[chosen]] = colours[point[chosen]]
    out = np.clip(np.round(pixels * 255.0), 0, 255).astype(np.uint8)
    return out.reshape(v_count, res, res, 3).transpose(0, 3, 1, 2)


@register_dataset("synthetic", config=SyntheticConfig)
class SyntheticObjects(ObjectDataset):
    """Procedural objects × views (module docstring). ``len`` counts objects."""

    def __init__(self, config: SyntheticConfig, split: str, num_views: int) -> None:
        super().__init__(num_views)
        if split not in SPLITS:
            raise ValueError(f"synthetic: unknown split {split!r}; expected one of {SPLITS}")
        if not 1 <= num_views <= config.views_per_object:
            raise ValueError(
                f"synthetic: the method asks for {num_views} distinct views per item but "
                f"views_per_object is {config.views_per_object}; raise "
                "dataset.views_per_object"
            )
        self.config = config
        self.split = split
        self.info = DatasetInfo(
            num_classes=config.num_classes,
            mean=THREEDIE_MEAN,
            std=THREEDIE_STD,
            image_size=config.resolution,
            latent_dim=LATENT_DIM,
            distinct_views=True,
        )
        self._length = config.n_objects if split == "train" else config.n_val_objects
        self._objects: dict[int, SyntheticObject] = {}

    def __len__(self) -> int:
        return self._length

    def object(self, index: int) -> SyntheticObject:
        """Object ``index`` (built once per process, a pure function of seed/split/index)."""
        if not 0 <= index < self._length:
            raise IndexError(f"synthetic {self.split}: index {index} out of range {self._length}")
        obj = self._objects.get(index)
        if obj is None:
            rng = np.random.default_rng([self.config.seed, SPLITS.index(self.split), index])
            label = index % self.config.num_classes
            obj = make_object(rng, label, self.config.n_points, self.config.views_per_object)
            self._objects[index] = obj
        return obj

    def render(self, index: int, view_ids: list[int]) -> Sample:
        obj = self.object(index)
        latents = obj.latents[view_ids]
        images = render_views(obj, latents, self.config.resolution)
        return Sample(
            images=torch.from_numpy(images),
            latents=torch.from_numpy(latents.astype(np.float32)),
            label=obj.label,
            index=index,
        )

    def __getitem__(self, index: int) -> Sample:
        picks = torch.randperm(self.config.views_per_object)[: self.num_views].tolist()
        return self.render(index, picks)

    def views_of(self, index: int) -> Sample:
        return self.render(index, list(range(self.config.views_per_object)))


def synthetic_raw_batch(
    batch_size: int, num_views: int, resolution: int = 16, seed: int = 0
) -> tuple[RawBatch, DatasetInfo]:
    """A collated uint8 batch of ``batch_size`` objects × ``num_views`` views, and its info.

    For tests and benchmarks: pass it through ``make_batch_builder`` to get a ``Batch``.
    """
    config = SyntheticConfig(
        resolution=resolution,
        n_objects=batch_size,
        views_per_object=max(num_views, 2),
        seed=seed,
    )
    dataset = SyntheticObjects(config, "train", num_views)
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    samples = [dataset[i] for i in range(batch_size)]
    torch.random.set_rng_state(generator_state)
    return collate_samples(samples), dataset.info
