"""Random resized crops on the full decoded image, cut in DataLoader workers (ImageFolder).

The one deliberate exception to "no augmentation in workers" (issue 11; methods.md §7.4):
the official ImageNet code samples ``RandomResizedCrop`` on the whole decoded image, whose
size varies per image, so the crop cannot run on a collated batch. For ImageFolder-type
sets with ``dataset.full_image_crops: true`` the worker

1. decodes the image (uint8, its own H × W),
2. samples each view's box (the main views, then E-SSL's rotated view) with
   torchvision's ``RandomResizedCrop.get_params`` (``RandomResizedCrop.sample``), from
   torch's generator that ``SeededItems`` seeds per item from the trainer's sampler
   position — so a resumed run, any ``num_workers``, draws the same boxes,
3. cuts and resizes each box with the recipe's interpolation (torchvision
   ``resized_crop`` on uint8, antialiased as PIL),

and returns the uint8 views with the boxes in source pixels. The device pipeline turns the
boxes into the views' ``CropRecord`` (``source_hw`` holds each image's size) and runs every
other op batched as usual. Replaying a view re-decodes the source and cuts the recorded
box (``FullImageCrops.replay``): the same uint8 pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as tvf

from sslequi.augment.ops import AugmentConfigError, CropConfig, RandomResizedCrop
from sslequi.augment.params import CropRecord
from sslequi.augment.pipeline import AugmentPipeline, ViewPipeline

BOX_FIELDS = ("top", "left", "height", "width", "source_height", "source_width", "applied")
_MODES = {"bilinear": InterpolationMode.BILINEAR, "bicubic": InterpolationMode.BICUBIC}


def sample_box(config: CropConfig, height: int, width: int) -> Tensor:
    """[7] box of one view on an ``height`` × ``width`` image (``BOX_FIELDS``), drawn
    from torch's default generator exactly as the batched op draws one sample."""
    record = RandomResizedCrop(config).sample(1, (height, width), torch.device("cpu"), None)
    return torch.stack(
        [
            record.top[0],
            record.left[0],
            record.height[0],
            record.width[0],
            torch.tensor(float(height)),
            torch.tensor(float(width)),
            record.applied[0].float(),
        ]
    )


def cut(image: Tensor, box: Tensor, config: CropConfig, size: int) -> Tensor:
    """Crop ``box`` out of the uint8 ``image`` [C, H, W] and resize it to ``size``²."""
    top, left, height, width = (int(v) for v in box[:4].tolist())
    return tvf.resized_crop(
        image,
        top,
        left,
        height,
        width,
        [size, size],
        interpolation=_MODES[config.interpolation],
        antialias=config.antialias,
    )


@dataclass(frozen=True)
class FullImageCrops:
    """The crops a worker cuts from each decoded image: one per main view, and E-SSL's
    rotated view. Picklable, so DataLoader workers receive it with the dataset."""

    views: tuple[CropConfig, ...]
    sizes: tuple[int, ...]
    rotated: CropConfig | None = None
    rotated_size: int = 0

    def __call__(self, image: Tensor) -> tuple[Tensor, Tensor | None, Tensor]:
        """uint8 [C, H, W] → (views [V, C, s, s], rotated [C, r, r] or None, boxes)."""
        height, width = image.shape[-2:]
        configs = list(self.views) + ([self.rotated] if self.rotated is not None else [])
        boxes = torch.stack([sample_box(c, int(height), int(width)) for c in configs])
        return self.replay(image, boxes)

    def replay(self, image: Tensor, boxes: Tensor) -> tuple[Tensor, Tensor | None, Tensor]:
        """The same views cut from recorded ``boxes`` [V (+1), 7] (replay, tests)."""
        views = torch.stack(
            [
                cut(image, boxes[i], c, s)
                for i, (c, s) in enumerate(zip(self.views, self.sizes, strict=True))
            ]
        )
        rotated = None
        if self.rotated is not None:
            rotated = cut(image, boxes[len(self.views)], self.rotated, self.rotated_size)
        return views, rotated, boxes


def _leading_crop(view: ViewPipeline, default_size: int) -> tuple[CropConfig, int]:
    if not view.ops or not isinstance(view.ops[0], RandomResizedCrop):
        raise AugmentConfigError(
            f"dataset.full_image_crops: view {view.name!r} must start with a crop op (the "
            "worker cuts it from the full image)"
        )
    if view.chunk_shared:
        raise AugmentConfigError(
            f"dataset.full_image_crops: view {view.name!r} is chunk-shared; its crop is drawn "
            "per batch chunk and cannot be cut per image in a worker"
        )
    config = view.ops[0].config
    return config, config.size or default_size


def full_image_crops_for(pipeline: AugmentPipeline, default_size: int) -> FullImageCrops:
    """The worker crops of ``pipeline`` (every view must start with a crop; main views of
    one size); ``AugmentConfigError`` otherwise, before any compute."""
    if pipeline.distinct_views:
        raise AugmentConfigError("dataset.full_image_crops needs a 2D dataset (one image per item)")
    crops = [_leading_crop(view, default_size) for view in pipeline.views]
    sizes = {size for _, size in crops}
    if len(sizes) > 1:
        raise AugmentConfigError(
            f"dataset.full_image_crops: the main views have different sizes {sorted(sizes)}; "
            "they are stacked per item"
        )
    rotated, rotated_size = None, 0
    if pipeline.rotated is not None:
        rotated, rotated_size = _leading_crop(pipeline.rotated, default_size)
    return FullImageCrops(
        views=tuple(c for c, _ in crops),
        sizes=tuple(s for _, s in crops),
        rotated=rotated,
        rotated_size=rotated_size,
    )


def crop_record(boxes: Tensor, size: int) -> CropRecord:
    """The ``CropRecord`` of one view from its worker boxes [B, 7] (source pixels)."""
    boxes = boxes.float()
    return CropRecord(
        applied=boxes[:, 6] > 0.5,
        top=boxes[:, 0],
        left=boxes[:, 1],
        height=boxes[:, 2],
        width=boxes[:, 3],
        source_size=(0, 0),  # per image: source_hw
        size=(size, size),
        source_hw=boxes[:, 4:6],
    )
