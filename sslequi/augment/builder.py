"""RawBatch (uint8, on the device) → Batch: augmentation, normalisation, actions.

The one entry point the trainer and evaluators use (``make_batch_builder``). 2D datasets
deliver one image per item (``info.distinct_views`` False) and the pipeline renders every
view from it; 3D datasets deliver distinct renders, which the pipeline converts and
normalises and, if the recipe lists ops, augments. The recipe ``none`` (or ``None``) is
the 3DIEBench protocol: no 2D augmentation.
"""

from __future__ import annotations

import torch

from sslequi.actions import ActionOptions, compute_actions
from sslequi.augment.config import AugmentConfig
from sslequi.augment.ops import rot90
from sslequi.augment.params import CropRecord, ViewParams
from sslequi.augment.pipeline import AugmentPipeline, build_pipeline
from sslequi.augment.worker_crops import crop_record
from sslequi.data.base import DatasetInfo
from sslequi.types import Batch, MethodSpec, RawBatch, RotatedViews


def rotate_four_ways(images: torch.Tensor) -> RotatedViews:
    """[B, C, s, s] → 4B images [x, rot90 x, rot180 x, rot270 x] with labels k
    (k counter-clockwise quarter turns), as E-SSL's ``rotate_images`` (methods.md §7.2)."""
    b = images.shape[0]
    labels = torch.arange(4, device=images.device).repeat_interleave(b)
    return RotatedViews(images=rot90(images.repeat(4, 1, 1, 1), labels), labels=labels)


class BatchBuilder:
    """Builds the ``Batch`` a method declared from a collated ``RawBatch``.

    ``generator`` None draws from torch's default generator of the batch's device, whose
    state the trainer checkpoints, so a resumed run continues the same stream."""

    def __init__(
        self,
        spec: MethodSpec,
        info: DatasetInfo,
        augment: AugmentConfig | None = None,
        action_options: ActionOptions | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        self.spec = spec
        self.info = info
        self.augment = augment or AugmentConfig()
        self.action_options = action_options or ActionOptions()
        self.generator = generator
        self.pipeline: AugmentPipeline = build_pipeline(self.augment, spec, info)

    def __call__(self, raw: RawBatch) -> Batch:
        if raw.crop_boxes is not None:  # full-image crops cut in workers
            crops, rotated_crop = worker_crop_records(raw, len(self.pipeline.views))
            params, rotated_params = self.pipeline.sample_precropped(
                raw.images, crops, rotated_crop, self.generator
            )
        else:
            params, rotated_params = self.pipeline.sample(raw.images, self.generator)
        return self.render(raw, params, rotated_params)

    def render(
        self, raw: RawBatch, params: list[ViewParams], rotated_params: ViewParams | None = None
    ) -> Batch:
        """The batch for recorded ``params`` (replay: the same params give the same views)."""
        if raw.crop_boxes is not None:
            views, rotated = self.pipeline.apply_precropped(
                raw.images, raw.rotated, params, rotated_params
            )
        else:
            views, rotated = self.pipeline.apply(raw.images, params, rotated_params)
        available = raw.images.shape[1]
        latents = raw.latents
        if latents is not None and self.pipeline.distinct_views:
            sources = [self.pipeline.source_of(i, available) for i in range(len(views))]
            if sources != list(range(available)):
                latents = latents[:, sources]
        actions = compute_actions(self.spec.actions, latents, params, self.action_options)
        return Batch(
            views=views,
            params=params,
            actions=actions,
            labels=raw.labels,
            index=raw.index,
            latents=latents,
            rotated=None if rotated is None else rotate_four_ways(rotated),
        )


def worker_crop_records(
    raw: RawBatch, num_views: int
) -> tuple[list[CropRecord], CropRecord | None]:
    """The crop records of worker-cropped views from ``raw.crop_boxes`` [B, V (+1), 7]."""
    assert raw.crop_boxes is not None
    crops = [crop_record(raw.crop_boxes[:, i], raw.images.shape[-1]) for i in range(num_views)]
    rotated = None
    if raw.rotated is not None:
        rotated = crop_record(raw.crop_boxes[:, num_views], raw.rotated.shape[-1])
    return crops, rotated


def make_batch_builder(
    spec: MethodSpec,
    info: DatasetInfo,
    augment: object,
    action_options: ActionOptions | None = None,
) -> BatchBuilder:
    """The trainer's and evaluators' single entry point to build batches.

    ``augment``: an ``AugmentConfig`` (or a structured OmegaConf node of one), or None /
    name 'none' for no 2D augmentation. The recipe is validated against the method's
    ``spec`` and the dataset here, before any compute."""
    return BatchBuilder(spec, info, _as_config(augment), action_options)


def _as_config(augment: object) -> AugmentConfig | None:
    if augment is None or isinstance(augment, AugmentConfig):
        return augment
    from omegaconf import DictConfig, OmegaConf

    if isinstance(augment, DictConfig):
        merged = OmegaConf.merge(OmegaConf.structured(AugmentConfig), augment)
        config = OmegaConf.to_object(merged)
        assert isinstance(config, AugmentConfig)
        return config
    raise TypeError(f"augment must be an AugmentConfig or None, got {type(augment).__name__}")
