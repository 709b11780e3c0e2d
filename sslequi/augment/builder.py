"""RawBatch (uint8, on the device) → Batch: augmentation, normalisation, actions.

Interim version: converts and normalises the views a dataset delivered, with no 2D
augmentation (the 3DIEBench protocol). The augmentation pipeline extends this.
"""

from __future__ import annotations

import torch

from sslequi.actions import ActionOptions, compute_actions
from sslequi.augment.params import ViewParams
from sslequi.data.base import DatasetInfo
from sslequi.types import Batch, MethodSpec, RawBatch


class BatchBuilder:
    """Builds the ``Batch`` a method declared from a collated ``RawBatch``."""

    def __init__(
        self, spec: MethodSpec, info: DatasetInfo, action_options: ActionOptions | None = None
    ) -> None:
        self.spec = spec
        self.info = info
        self.action_options = action_options or ActionOptions()

    def __call__(self, raw: RawBatch) -> Batch:
        images = raw.images
        if images.shape[1] < self.spec.num_views:
            images = images[:, [i % images.shape[1] for i in range(self.spec.num_views)]]
        mean = torch.tensor(self.info.mean, device=images.device).view(1, 3, 1, 1)
        std = torch.tensor(self.info.std, device=images.device).view(1, 3, 1, 1)
        views = [(images[:, i].float() / 255.0 - mean) / std for i in range(self.spec.num_views)]
        params = [ViewParams.empty() for _ in views]
        actions = compute_actions(self.spec.actions, raw.latents, params, self.action_options)
        return Batch(
            views=views,
            params=params,
            actions=actions,
            labels=raw.labels,
            index=raw.index,
            latents=raw.latents,
        )


def make_batch_builder(
    spec: MethodSpec,
    info: DatasetInfo,
    augment: object,
    action_options: ActionOptions | None = None,
) -> BatchBuilder:
    """The trainer's and evaluators' single entry point to build batches."""
    del augment  # interim: no 2D augmentation yet
    return BatchBuilder(spec, info, action_options)
