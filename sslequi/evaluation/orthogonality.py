"""Orthogonal equivariance of a representation under shared augmentation pairs (CARE's claim,
methods.md §8.1: Z¹Z¹ᵀ = Z²Z²ᵀ iff Z² = Z¹Q with Q orthogonal).

For n held-out images X and one augmentation pair (t₁, t₂) shared by all of them,
Z¹ = r(t₁X), Z² = r(t₂X) ∈ ℝ^{n×d} for a declared representation r. The orthogonal
Procrustes fit of Z² ≈ Z¹Q is Q* = UVᵀ with UΣVᵀ = SVD(Z¹ᵀZ²) (Schönemann 1966), and

    residual = ‖Z¹Q* − Z²‖_F / ‖Z²‖_F,   Gram mismatch = ‖Z¹Z¹ᵀ − Z²Z²ᵀ‖_F / ‖Z²Z²ᵀ‖_F.

Both are 0 when t₂ acts on r as an orthogonal map. The floor of each is the same statistic
with the rows of Z² permuted (the pairing broken, the features unchanged). With n ≥ 2d
images the fit cannot absorb the pairing by dimension count alone.

Families: each random op of the chosen view pipeline alone, and ``all`` (the whole view).
Ops with continuous parameters (crop, jitter, blur, rotation, …) are drawn for t₁ and t₂
independently with probability 1; binary ops (flip, grayscale, solarize) compare the image
without the op (t₁) and with it (t₂), since two independent coin flips would often agree.
Every draw also draws its own n images from the held-out pool.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from sslequi.augment.config import AugmentConfig, ViewConfig
from sslequi.augment.ops import Normalize, NormalizeConfig, Op
from sslequi.augment.pipeline import ViewPipeline, parse_op
from sslequi.data.base import DatasetInfo, ImageDataset, ObjectDataset
from sslequi.methods.base import Method
from sslequi.types import Representation

BINARY_OPS = ("flip", "grayscale", "solarize")
ALL_FAMILY = "all"


def procrustes(z_1: Tensor, z_2: Tensor) -> Tensor:
    """Q* = argmin_{QᵀQ = I} ‖Z¹Q − Z²‖_F = UVᵀ, UΣVᵀ = SVD(Z¹ᵀZ²)."""
    u, _, vh = torch.linalg.svd(z_1.T @ z_2)
    return u @ vh


def relative_residual(z_1: Tensor, z_2: Tensor) -> float:
    """‖Z¹Q* − Z²‖_F / ‖Z²‖_F."""
    z_1, z_2 = z_1.double(), z_2.double()
    return float((z_1 @ procrustes(z_1, z_2) - z_2).norm() / z_2.norm())


def gram_mismatch(z_1: Tensor, z_2: Tensor) -> float:
    """‖Z¹Z¹ᵀ − Z²Z²ᵀ‖_F / ‖Z²Z²ᵀ‖_F."""
    z_1, z_2 = z_1.double(), z_2.double()
    gram_2 = z_2 @ z_2.T
    return float((z_1 @ z_1.T - gram_2).norm() / gram_2.norm())


@dataclass(frozen=True)
class DrawScores:
    """One shared draw: the two statistics and their row-permuted floors."""

    residual: float
    residual_floor: float
    gram: float
    gram_floor: float


def score_pair(z_1: Tensor, z_2: Tensor, generator: torch.Generator) -> DrawScores:
    """Both statistics of (Z¹, Z²) and with Z²'s rows permuted (the floor)."""
    order = torch.randperm(z_2.shape[0], generator=generator)
    shuffled = z_2[order.to(z_2.device)]
    return DrawScores(
        relative_residual(z_1, z_2),
        relative_residual(z_1, shuffled),
        gram_mismatch(z_1, z_2),
        gram_mismatch(z_1, shuffled),
    )


def family_view(recipe: AugmentConfig) -> ViewConfig:
    """The view whose ops define the families: the first chunk-shared view, else the first."""
    if not recipe.views:
        raise ValueError(f"augment recipe {recipe.name!r} has no view to draw families from")
    shared = [v for v in recipe.views if v.chunk_shared]
    return (shared or recipe.views)[0]


def family_names(view: ViewConfig) -> list[str]:
    """Every random op of ``view`` (in order) and ``all``."""
    names = [str(dict(op)["op"]) for op in view.ops if str(dict(op)["op"]) != "normalize"]
    return [*names, ALL_FAMILY]


def family_pipelines(
    view: ViewConfig, family: str, info: DatasetInfo
) -> tuple[ViewPipeline, ViewPipeline]:
    """(t₁'s pipeline, t₂'s pipeline) of ``family`` (module docstring), normalised with the
    dataset's mean/std."""
    specs: list[dict[str, Any]] = [dict(op) for op in view.ops if dict(op)["op"] != "normalize"]
    size = (info.image_size, info.image_size)
    normalize = Normalize(NormalizeConfig(mean=tuple(info.mean), std=tuple(info.std)))

    def build(ops: list[Op]) -> ViewPipeline:
        return ViewPipeline([*ops, normalize], size, name=f"orthogonality/{family}")

    if family == ALL_FAMILY:
        ops = [parse_op(spec) for spec in specs]
        return build(ops), build(ops)
    chosen = [spec for spec in specs if spec["op"] == family]
    if not chosen:
        known = [spec["op"] for spec in specs]
        raise ValueError(f"family {family!r} is not an op of the view; its ops: {known}")
    op = parse_op({**chosen[0], "p": 1.0})
    if family in BINARY_OPS:
        return build([]), build([op])
    return build([op]), build([op])


def held_out_images(dataset: ImageDataset, limit: int, generator: torch.Generator) -> Tensor:
    """Up to ``limit`` images [N, C, H, W] uint8, one per item (view 0 of an object)."""
    count = len(dataset)
    chosen = torch.randperm(count, generator=generator)[: min(limit, count)].sort().values
    images = []
    for index in chosen.tolist():
        sample = dataset.views_of(index) if isinstance(dataset, ObjectDataset) else dataset[index]
        images.append(sample.images[0])
    return torch.stack(images)


@torch.no_grad()
def represent(
    method: Method, representation: Representation, images: Tensor, batch_size: int
) -> Tensor:
    """r(images) for a declared representation, in mini-batches (the method in eval mode)."""
    outputs = []
    for start in range(0, images.shape[0], batch_size):
        x = images[start : start + batch_size]
        if representation.columns is not None:
            out = method.encode(x)[:, representation.columns]
        elif representation.source == "feature_map":
            assert representation.compute is not None
            out = representation.compute(method.feature_map(x))
        else:
            assert representation.compute is not None
            out = representation.compute(method.encode(x))
        outputs.append(out.flatten(1).float())
    return torch.cat(outputs)


@torch.no_grad()
def shared_pair(
    pipelines: tuple[ViewPipeline, ViewPipeline],
    images: Tensor,
    generator: torch.Generator,
) -> tuple[Tensor, Tensor]:
    """t₁X and t₂X for one pair (t₁, t₂) shared by every image of ``images`` (uint8)."""
    size = (images.shape[-2], images.shape[-1])
    views = []
    for pipeline in pipelines:
        params = pipeline.sample(images.shape[0], size, images.device, generator, chunks=1)
        views.append(pipeline.apply(images, params))
    return views[0], views[1]
