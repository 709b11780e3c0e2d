"""The typed contracts of the data flow: what a method asks for, what a batch holds,
and what a training step returns.

dataset item (``Sample``) → collate (``RawBatch``, uint8) → device → augmentation
pipeline (views + ``ViewParams``) → relative actions (``Actions``) → ``Batch`` →
``Method.forward`` → ``StepOutput``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Literal

import torch
from torch import Tensor

if TYPE_CHECKING:
    from sslequi.augment.params import ViewParams

ViewStructure = Literal["pairs", "triplets", "sequence", "multicrop"]

# Every relative-action encoding the harness knows, with its width per view pair.
# Methods name the ones they need in ``MethodSpec.actions``; ``sslequi.actions``
# computes exactly those (3D ones from dataset latents, 2D ones from ``ViewParams``).
ACTION_DIMS: dict[str, int] = {
    "rotation_quat": 4,  # quat(R_iᵀ R_j), (x, y, z, w), scipy path (datasets.md §1.5)
    "rotation_matrix": 9,  # R_iᵀ R_j, row-major
    "rotation_euler": 3,  # as_euler('xyz') of R_iᵀ R_j
    "color_delta": 2,  # latent_j[[3, 6]] − latent_i[[3, 6]]
    "rot_color": 6,  # [rotation_quat, color_delta] (SIE-RotColor, seq-JEPA rotcolor)
    "all_latents": 8,  # [rotation_quat, Δ latents 3, 4, 5, 6] (seq-JEPA 'all')
    "translation_object": 3,  # t_j − t_i (3DIEBench-T)
    "translation_base": 3,  # R_j t_j − R_i t_i (3DIEBench-T)
    "transform_object": 16,  # M_i⁻¹ M_j, M = T(t)·R, row-major 4×4 (3DIEBench-T, EquiCaps)
    "transform_base": 16,  # M_i⁻¹ M_j, M = R·T(t), row-major 4×4 (3DIEBench-T, EquiCaps)
    "aug_params_9d": 9,  # seq-JEPA: crop box (4), jitter factors (4), blur σ (1)
    "aug_params_full": 15,  # 9d + flip, grayscale, solarize, rotation (cos, sin), rot90 k
    "fixation_offset": 2,  # seq-JEPA PLS: (row, col)_j/96 − (row, col)_i/96 (methods.md §9.3)
}


@dataclass(frozen=True)
class RotatedViewSpec:
    """E-SSL's extra small view, rotated by 0/90/180/270 degrees (methods.md §7.2)."""

    size: int  # output side in pixels (16 on CIFAR, 96 on ImageNet)
    scale: tuple[float, float] = (0.2, 1.0)  # random-resized-crop scale of the source view
    source_view: int = 0


@dataclass(frozen=True)
class MethodSpec:
    """What a method consumes. The data side produces exactly this, or fails at config time.

    ``num_views`` counts the main views (2 for pairs, 3 for triplets, M+1 for a seq-JEPA
    sequence whose last view is the target). Actions are computed between consecutive
    views (view i → view i+1).
    """

    num_views: int = 2
    structure: ViewStructure = "pairs"
    actions: tuple[str, ...] = ()
    rotated_view: RotatedViewSpec | None = None
    chunk_shared_params: bool = False  # CARE: one parameter set per batch chunk
    needs_params: bool = False  # the method reads ViewParams directly
    needs_latents: bool = False

    def __post_init__(self) -> None:
        if self.num_views < 1:
            raise ValueError(f"MethodSpec.num_views must be ≥ 1, got {self.num_views}")
        unknown = [a for a in self.actions if a not in ACTION_DIMS]
        if unknown:
            raise ValueError(f"unknown action encoding(s) {unknown}; known: {sorted(ACTION_DIMS)}")
        if self.actions and self.num_views < 2:
            raise ValueError("actions need at least two views")


@dataclass
class Sample:
    """One dataset item: V uint8 images of one object (or one image to be augmented V ways)."""

    images: Tensor  # [V, C, H, W] uint8
    latents: Tensor | None  # [V, L] float32 dataset latents (3DIEBench family), else None
    label: int
    index: int
    # Full-image crops cut in the worker (ImageFolder, ``full_image_crops``): ``images`` are
    # then the V cropped main views, ``rotated`` E-SSL's cropped small view [C, s, s] (or
    # None), and ``crop_boxes`` [V (+1 rotated), 7] = (top, left, height, width, source
    # height, source width, applied) in source pixels.
    rotated: Tensor | None = None
    crop_boxes: Tensor | None = None


@dataclass
class RawBatch:
    """A collated batch, still uint8 and un-augmented (what DataLoader workers produce)."""

    images: Tensor  # [B, V, C, H, W] uint8
    latents: Tensor | None  # [B, V, L] float32
    labels: Tensor  # [B] int64
    index: Tensor  # [B] int64
    rotated: Tensor | None = None  # [B, C, s, s] uint8: worker-cropped rotated view
    crop_boxes: Tensor | None = None  # [B, V (+1), 7] float32: worker crop boxes (Sample)

    def to(self, device: torch.device | str, non_blocking: bool = True) -> RawBatch:
        def move(t: Tensor | None) -> Tensor | None:
            return None if t is None else t.to(device, non_blocking=non_blocking)

        return RawBatch(
            images=self.images.to(device, non_blocking=non_blocking),
            latents=move(self.latents),
            labels=self.labels.to(device, non_blocking=non_blocking),
            index=self.index.to(device, non_blocking=non_blocking),
            rotated=move(self.rotated),
            crop_boxes=move(self.crop_boxes),
        )

    def pin_memory(self) -> RawBatch:
        def pin(t: Tensor | None) -> Tensor | None:
            return None if t is None else t.pin_memory()

        return RawBatch(
            images=self.images.pin_memory(),
            latents=pin(self.latents),
            labels=self.labels.pin_memory(),
            index=self.index.pin_memory(),
            rotated=pin(self.rotated),
            crop_boxes=pin(self.crop_boxes),
        )


def collate_samples(samples: list[Sample]) -> RawBatch:
    """Stack uint8 samples; no augmentation happens in workers (except the full-image
    crops of ImageFolder sets, whose boxes travel along in ``crop_boxes``)."""
    latents = None
    if samples[0].latents is not None:
        latents = torch.stack([s.latents for s in samples])  # type: ignore[misc]
    rotated = crop_boxes = None
    if samples[0].rotated is not None:
        rotated = torch.stack([s.rotated for s in samples])  # type: ignore[misc]
    if samples[0].crop_boxes is not None:
        crop_boxes = torch.stack([s.crop_boxes for s in samples])  # type: ignore[misc]
    return RawBatch(
        images=torch.stack([s.images for s in samples]),
        latents=latents,
        labels=torch.tensor([s.label for s in samples], dtype=torch.long),
        index=torch.tensor([s.index for s in samples], dtype=torch.long),
        rotated=rotated,
        crop_boxes=crop_boxes,
    )


@dataclass
class Actions:
    """Relative transformations between consecutive views, one field per encoding.

    Each present field has shape [B, V − 1, k] (k from ``ACTION_DIMS``); field ``i`` along
    dim 1 is the action taking view i to view i + 1. Only the encodings the method
    declared are filled; the rest stay ``None``.
    """

    rotation_quat: Tensor | None = None
    rotation_matrix: Tensor | None = None
    rotation_euler: Tensor | None = None
    color_delta: Tensor | None = None
    rot_color: Tensor | None = None
    all_latents: Tensor | None = None
    translation_object: Tensor | None = None
    translation_base: Tensor | None = None
    transform_object: Tensor | None = None
    transform_base: Tensor | None = None
    aug_params_9d: Tensor | None = None
    aug_params_full: Tensor | None = None
    fixation_offset: Tensor | None = None

    def get(self, name: str) -> Tensor:
        """The encoding ``name``; fails clearly if it was not declared/computed."""
        if name not in ACTION_DIMS:
            raise KeyError(f"unknown action encoding {name!r}; known: {sorted(ACTION_DIMS)}")
        value = getattr(self, name)
        if value is None:
            raise KeyError(
                f"action {name!r} was not computed for this batch: declare it in the "
                "method's MethodSpec.actions"
            )
        return value

    def pair(self, name: str, step: int = 0) -> Tensor:
        """The action from view ``step`` to view ``step + 1``: [B, k]."""
        return self.get(name)[:, step]

    def present(self) -> tuple[str, ...]:
        return tuple(f.name for f in fields(self) if getattr(self, f.name) is not None)


@dataclass
class RotatedViews:
    """E-SSL's extra view, rotated four ways: images [4B, C, h, w], labels k ∈ {0,1,2,3}."""

    images: Tensor
    labels: Tensor  # [4B] int64, number of 90° counter-clockwise turns


@dataclass
class Batch:
    """Everything a method's ``forward`` may read, on the device.

    ``views[i]`` is [B, C, H, W] float, normalised (multi-crop views may differ in size).
    ``params[i]`` records every augmentation applied to view i.
    """

    views: list[Tensor]
    params: list[ViewParams]
    actions: Actions
    labels: Tensor  # [B]
    index: Tensor  # [B]
    latents: Tensor | None = None  # [B, V, L]
    rotated: RotatedViews | None = None

    @property
    def batch_size(self) -> int:
        return int(self.labels.shape[0])

    @property
    def num_views(self) -> int:
        return len(self.views)


@dataclass
class StepOutput:
    """What one training step returns.

    ``loss`` is the scalar to back-propagate; ``terms`` are its named parts, detached,
    for logging; ``features`` are the detached backbone features of each view that the
    online probes read ([B, D] each).
    """

    loss: Tensor
    terms: dict[str, Tensor] = field(default_factory=dict)
    features: list[Tensor] = field(default_factory=list)


@dataclass(frozen=True)
class Parts:
    """How a backbone representation splits: slices over the feature dimension."""

    invariant: slice | None = None
    equivariant: slice | None = None


# "pooled": Method.encode; "feature_map": the last pre-pool map; "layer1".."layer4": the
# map of that backbone stage (Method.stage_map; the stage probes, eval layers=[...]).
RepresentationSource = Literal["pooled", "feature_map", "layer1", "layer2", "layer3", "layer4"]
STAGE_SOURCES: tuple[str, ...] = ("layer1", "layer2", "layer3", "layer4")


@dataclass(frozen=True)
class Representation:
    """A named representation that probes read (``Method.representations()``).

    Either ``columns``, a slice of the pooled backbone output ``Method.encode`` (the
    ``full``/``invariant``/``equivariant`` parts), or ``compute``, a function of the
    pooled output or of the pre-pool map ``Method.feature_map`` (``source``), such as a
    projector output, a capsule head or an aggregator over views. Either kind is extracted
    once per view and cached like backbone features. ``default`` representations are
    probed when ``parts=[auto]``.
    """

    name: str
    columns: slice | None = None
    compute: Callable[[Tensor], Tensor] | None = None
    source: RepresentationSource = "pooled"
    default: bool = True

    def __post_init__(self) -> None:
        if (self.columns is None) == (self.compute is None):
            raise ValueError(
                f"representation {self.name!r}: give exactly one of columns or compute"
            )
        if self.columns is not None and self.source != "pooled":
            raise ValueError(f"representation {self.name!r}: columns slice the pooled output")
