"""Recorded per-view augmentation parameters: one typed record per op.

Every record has named tensor fields of shape [B] (or [B, k]) and an ``applied`` mask
[B]. Where an op was skipped for a sample (its coin flip failed) the fields hold the
op's *identity* value (brightness 1, hue 0, σ 0, angle 0, k 0, crop = whole image), so
encodings can read them without branching (seq-JEPA records (1, 1, 1, 0) for a skipped
jitter and σ = 0 for a skipped blur, methods.md §9.3). Replaying a record through the
same op reproduces the view exactly.

A view that was not augmented (two renders of a 3D object) has every record ``None``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import TypeVar

import torch
from torch import Tensor

R = TypeVar("R", bound="OpRecord")


@dataclass
class OpRecord:
    """Base of every op record: ``applied`` [B] bool says which samples the op changed."""

    applied: Tensor

    @property
    def batch_size(self) -> int:
        return int(self.applied.shape[0])

    def map_tensors(self: R, fn: Callable[[Tensor], Tensor]) -> R:
        """A copy with ``fn`` applied to every tensor field (batch-indexed along dim 0)."""
        changes = {
            f.name: fn(getattr(self, f.name))
            for f in fields(self)
            if isinstance(getattr(self, f.name), Tensor)
        }
        return replace(self, **changes)

    def select(self: R, index: Tensor) -> R:
        """The records of the samples ``index`` (bool mask or long indices)."""
        return self.map_tensors(lambda t: t[index])

    def to(self: R, device: torch.device | str) -> R:
        return self.map_tensors(lambda t: t.to(device))


@dataclass
class CropRecord(OpRecord):
    """Random resized crop: the box in source pixels (torchvision's i, j, h, w), resized
    to ``size``. ``source_size`` is the (H, W) of the image the box was cut from; for crops
    cut in workers from full images of varying size (``dataset.full_image_crops``) it is
    (0, 0) and ``source_hw`` [B, 2] holds each image's (H, W)."""

    top: Tensor  # [B] float, integral values
    left: Tensor
    height: Tensor
    width: Tensor
    source_size: tuple[int, int]
    size: tuple[int, int]
    source_hw: Tensor | None = None


@dataclass
class FlipRecord(OpRecord):
    """Horizontal flip; ``applied`` is the flip flag."""


@dataclass
class ColorJitterRecord(OpRecord):
    """Colour jitter factors and the order they were applied in.

    ``order[b]`` is a permutation of (0, 1, 2, 3) = (brightness, contrast, saturation,
    hue): ``order[b, 0]`` was applied first (torchvision's ``fn_idx``)."""

    brightness: Tensor  # [B] multiplicative factor, 1 = identity
    contrast: Tensor  # [B], 1 = identity
    saturation: Tensor  # [B], 1 = identity
    hue: Tensor  # [B] in [-0.5, 0.5], 0 = identity
    order: Tensor  # [B, 4] long


@dataclass
class GrayscaleRecord(OpRecord):
    """Grayscale conversion (3 output channels); ``applied`` is the flag."""


@dataclass
class BlurRecord(OpRecord):
    """Gaussian blur with per-sample σ (0 where skipped) and a fixed odd kernel size."""

    sigma: Tensor  # [B]
    kernel_size: int


@dataclass
class SolarizeRecord(OpRecord):
    """Solarize: pixels ≥ ``threshold`` are inverted; ``applied`` is the flag."""

    threshold: float


@dataclass
class Rot90Record(OpRecord):
    """Quarter turns: ``k`` counter-clockwise 90° turns (torch.rot90 over (H, W))."""

    k: Tensor  # [B] long in {0, 1, 2, 3}


@dataclass
class RotationRecord(OpRecord):
    """Continuous rotation about the image centre, counter-clockwise, in degrees."""

    angle: Tensor  # [B]


@dataclass
class AffineRecord(OpRecord):
    """Translation (pixels, (x, y)) and isotropic scale about the image centre."""

    translate: Tensor  # [B, 2]
    scale: Tensor  # [B]


@dataclass
class ViewParams:
    """Parameters of every op applied to one view (``None`` = op not in the pipeline).

    ``chunks`` is set when parameters were drawn once per chunk of the batch (CARE):
    sample b belongs to chunk ``b // (B // chunks)`` and all samples of a chunk share
    their parameters.
    """

    crop: CropRecord | None = None
    flip: FlipRecord | None = None
    color_jitter: ColorJitterRecord | None = None
    grayscale: GrayscaleRecord | None = None
    blur: BlurRecord | None = None
    solarize: SolarizeRecord | None = None
    rot90: Rot90Record | None = None
    rotation: RotationRecord | None = None
    affine: AffineRecord | None = None
    chunks: int | None = None

    @classmethod
    def empty(cls) -> ViewParams:
        """A view with no ops (e.g. a 3D render used as is)."""
        return cls()

    def records(self) -> dict[str, OpRecord]:
        """The records present, by field name."""
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if isinstance(getattr(self, f.name), OpRecord)
        }

    def is_empty(self) -> bool:
        return not self.records()

    def _map(self, fn: Callable[[OpRecord], OpRecord]) -> ViewParams:
        return replace(self, **{name: fn(record) for name, record in self.records().items()})

    def select(self, index: Tensor) -> ViewParams:
        """The parameters of samples ``index`` (drops the chunk layout)."""
        out = self._map(lambda r: r.select(index))
        out.chunks = None
        return out

    def to(self, device: torch.device | str) -> ViewParams:
        return self._map(lambda r: r.to(device))
