"""Test-only datasets and methods whose evaluation answers are known in advance.

``ToyObjects`` is an object dataset with 3DIEBench-distributed latents whose 4×4 uint8
images carry known values in their pixels: channel 0 row 0 one-hot encodes the label,
channel 1 row 0 the absolute quaternion of the view ((q + 1)/2 · 255), channel 2 row 0
the two hues. ``PixelMethod``'s backbone returns the pixels (/255, mean 0, std 1), so the
features that the probes see are known. ``QuatPredictorMethod`` adds an exact linear
hypernetwork predictor: ẑ = W(g) z₀ with W(g) = Σ_k g_k B_k and B_k the right-multiplication
matrices of the quaternion basis, so W(g) q₀ = q₀ ⊗ g = q_t for g = q₀⁻¹ ⊗ q_t.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.spatial.transform import Rotation
from torch import Tensor, nn

from sslequi.data.base import DatasetConfig, DatasetInfo, ImageDataset, ObjectDataset
from sslequi.methods.base import Method, MethodConfig
from sslequi.types import MethodSpec, Parts, Sample, StepOutput

SIDE = 4
FEATURE_DIM = 3 * SIDE * SIDE  # 48


def sample_latents(rng: np.random.Generator, n: int, dim: int = 7) -> np.ndarray:
    """3DIEBench sampling (datasets.md §1.3): Euler angles U(−π/2, π/2), hues U(0, 1)."""
    latents = np.zeros((n, dim))
    latents[:, :3] = rng.uniform(-np.pi / 2, np.pi / 2, (n, 3))
    latents[:, 3] = rng.uniform(0, 1, n)
    latents[:, 4] = rng.uniform(0, np.pi / 4, n)
    latents[:, 5] = rng.uniform(0, 2 * np.pi, n)
    latents[:, 6] = rng.uniform(0, 1, n)
    if dim >= 10:
        latents[:, 7:10] = rng.uniform(-0.5, 0.5, (n, 3))
    return latents


@dataclass
class ToyConfig(DatasetConfig):
    name: str = "toy"
    resolution: int = SIDE
    n_objects: int = 64
    views: int = 6
    num_classes: int = 4
    latent_dim: int | None = 7
    seed: int = 0


class ToyObjects(ObjectDataset):
    """Known-answer object dataset (see module docstring)."""

    def __init__(self, config: ToyConfig, split: str = "train", num_views: int = 2) -> None:
        super().__init__(num_views)
        self.config = config
        self.split = split
        self.info = DatasetInfo(
            num_classes=config.num_classes,
            mean=(0.0, 0.0, 0.0),
            std=(1.0, 1.0, 1.0),
            image_size=SIDE,
            latent_dim=config.latent_dim,
            distinct_views=True,
        )
        rng = np.random.default_rng(config.seed + (0 if split == "train" else 1000))
        n, v = config.n_objects, config.views
        self.labels = rng.integers(0, config.num_classes, n)
        self.latents = sample_latents(rng, n * v, config.latent_dim or 7).reshape(n, v, -1)
        quats = Rotation.from_euler("xyz", self.latents[..., :3].reshape(-1, 3)).as_quat()
        self.quats = quats.reshape(n, v, 4)
        images = np.zeros((n, v, 3, SIDE, SIDE), dtype=np.uint8)
        images[np.arange(n), :, 0, 0, self.labels] = 255
        images[:, :, 1, 0, :] = np.round((self.quats + 1) / 2 * 255)
        images[:, :, 2, 0, 0] = np.round(self.latents[..., 3] * 255)
        images[:, :, 2, 0, 1] = np.round(self.latents[..., 6] * 255)
        self.images = torch.from_numpy(images)

    def __len__(self) -> int:
        return self.config.n_objects

    def views_of(self, index: int) -> Sample:
        latents = None
        if self.config.latent_dim is not None:
            latents = torch.from_numpy(self.latents[index]).float()
        return Sample(self.images[index], latents, int(self.labels[index]), index)

    def __getitem__(self, index: int) -> Sample:
        sample = self.views_of(index)
        chosen = torch.randperm(self.config.views)[: self.num_views]
        latents = None if sample.latents is None else sample.latents[chosen]
        return Sample(sample.images[chosen], latents, sample.label, index)


class PixelBackbone(nn.Module):
    """Features = the pixels (inputs are x/255 with mean 0, std 1) + optional BatchNorm."""

    def __init__(self, batchnorm: bool = False) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(FEATURE_DIM) if batchnorm else nn.Identity()
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, images: Tensor) -> Tensor:
        return self.norm(images.flatten(1) * self.scale)


class PixelMethod(Method):
    """Parts: invariant = channel 0 (label), equivariant = channels 1–2 (pose, hues)."""

    def __init__(self, batchnorm: bool = False) -> None:
        super().__init__(MethodConfig(name="pixel"), PixelBackbone(batchnorm), FEATURE_DIM)

    def spec(self) -> MethodSpec:
        return MethodSpec(num_views=2)

    def forward(self, batch: object) -> StepOutput:
        return StepOutput(loss=torch.zeros(()))

    def parts(self) -> Parts:
        return Parts(invariant=slice(0, 16), equivariant=slice(16, 48))


def right_multiplication_basis() -> Tensor:
    """B_k with B_k q = q ⊗ e_k (Hamilton product, scalar-last), [4, 4, 4]."""

    def hamilton(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        (ax, ay, az, aw), (bx, by, bz, bw) = a, b
        return np.array(
            [
                aw * bx + ax * bw + ay * bz - az * by,
                aw * by - ax * bz + ay * bw + az * bx,
                aw * bz + ax * by - ay * bx + az * bw,
                aw * bw - ax * bx - ay * by - az * bz,
            ]
        )

    eye = np.eye(4)
    basis = np.stack([np.stack([hamilton(eye[j], eye[k]) for j in range(4)], 1) for k in range(4)])
    return torch.from_numpy(basis).float()


class QuatPredictorMethod(PixelMethod):
    """A linear hypernetwork predictor over the quaternion pixels (exact, or random)."""

    predictor_action = "rotation_quat"

    def __init__(self, mode: str = "exact", projector_in: int = 32) -> None:
        super().__init__()
        self.mode = mode
        self.projector = nn.Linear(projector_in, 4, bias=False)
        with torch.no_grad():  # z = the decoded quaternion 2·pixel − 1 (bias via the constant)
            self.projector.weight.zero_()
            self.projector.weight[:, :4] = 2 * torch.eye(4)
        self.hyper = nn.Linear(4, 16, bias=False)  # W(g) = reshape(A g), linear in g
        with torch.no_grad():
            self.hyper.weight.copy_(right_multiplication_basis().permute(1, 2, 0).reshape(16, 4))

    def embed_equivariant(self, y_equi: Tensor) -> Tensor:
        return self.projector(y_equi) - 1.0

    def predict(self, z_equi: Tensor, action: Tensor) -> Tensor:
        if self.mode == "random":
            return torch.randn(z_equi.shape, generator=torch.Generator().manual_seed(0))
        weights = self.hyper(action).reshape(-1, 4, 4)
        return torch.bmm(weights, z_equi.unsqueeze(-1)).squeeze(-1)


class ToyImages(ImageDataset):
    """A 2D dataset (one 16×16 image per item, augmented by the pipeline): smooth blobs."""

    def __init__(self, n: int = 32, seed: int = 0, num_views: int = 1) -> None:
        super().__init__(num_views)
        self.info = DatasetInfo(
            num_classes=2,
            mean=(0.5, 0.5, 0.5),
            std=(0.25, 0.25, 0.25),
            image_size=16,
            latent_dim=None,
            distinct_views=False,
        )
        gen = torch.Generator().manual_seed(seed)
        coarse = torch.rand(n, 3, 4, 4, generator=gen)
        smooth = nn.functional.interpolate(coarse, size=16, mode="bilinear", align_corners=False)
        self.images = (smooth * 255).round().to(torch.uint8)
        self.labels = (coarse.mean(dim=(1, 2, 3)) > 0.5).long()

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, index: int) -> Sample:
        return Sample(self.images[index : index + 1], None, int(self.labels[index]), index)


class SequencePixelMethod(Method):
    """Pixels as features (16×16×3) and seq-JEPA's view layout (3 observed + 1 target)."""

    def __init__(self) -> None:
        super().__init__(MethodConfig(name="seqpixel"), nn.Flatten(), 3 * 16 * 16)

    def spec(self) -> MethodSpec:
        return MethodSpec(num_views=4, structure="sequence")

    def forward(self, batch: object) -> StepOutput:
        return StepOutput(loss=torch.zeros(()))
