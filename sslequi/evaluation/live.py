"""Paper-protocol mode: re-embed the drawn views with the frozen backbone every probe epoch.

This is what the SIE/CapsIE/EquiCaps scripts do (evaluation.md §5.1, §12). With eval-mode
BatchNorm it must give the same answer as the cached fast path (same seed, same per-epoch
draws, see ``probes.fit_probe``); with ``bn_mode="train"`` it reproduces the train-mode
BatchNorm of SIE, CapsIE, seq-JEPA and CARE-CIFAR (running statistics drift on probe data;
§11 pitfall 5). The method's buffers are restored when the probe ends, so one probe's
drift never leaks into the next.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor

from sslequi.data.base import ImageDataset, ObjectDataset
from sslequi.evaluation.features import iterate_objects, normalise
from sslequi.evaluation.probes import InputSource
from sslequi.methods.base import Method


class ImageBank:
    """uint8 images of a split, preloaded when they fit in ``max_bytes``, else streamed.

    ``latents`` [N, V, L] | None and ``labels`` [N] are always held (one pass at start).
    """

    def __init__(
        self,
        dataset: ImageDataset,
        max_bytes: int = 4 << 30,
        batch_size: int = 64,
        num_workers: int = 0,
    ) -> None:
        self.dataset = dataset
        first = dataset.views_of(0) if isinstance(dataset, ObjectDataset) else dataset[0]
        per_object = first.images[: None if isinstance(dataset, ObjectDataset) else 1]
        self.num_views = int(per_object.shape[0])
        preload = per_object.numel() * len(dataset) <= max_bytes
        images, latents, labels = [], [], []
        for batch_images, batch_latents, batch_labels in iterate_objects(
            dataset, "all", batch_size, num_workers
        ):
            if preload:
                images.append(batch_images)
            if batch_latents is not None:
                latents.append(batch_latents)
            labels.append(batch_labels)
        self.images: Tensor | None = torch.cat(images) if preload else None
        self.latents: Tensor | None = torch.cat(latents) if latents else None
        self.labels = torch.cat(labels)

    @property
    def num_objects(self) -> int:
        return int(self.labels.shape[0])

    def gather(self, objects: Tensor, views: Tensor) -> Tensor:
        """uint8 [B, k, C, H, W] for object/view index pairs."""
        objects, views = objects.cpu(), views.cpu()
        if self.images is not None:
            return self.images[objects.unsqueeze(1), views]
        rows = []
        for obj, obj_views in zip(objects.tolist(), views, strict=True):
            if isinstance(self.dataset, ObjectDataset):
                rows.append(self.dataset.views_of(obj).images[obj_views])
            else:
                rows.append(self.dataset[obj].images[:1][obj_views])
        return torch.stack(rows)


class LiveSource(InputSource):
    """Probe inputs computed by forwarding the drawn views through the frozen backbone."""

    def __init__(
        self,
        method: Method,
        bank: ImageBank,
        part: slice,
        bn_mode: str,
        device: torch.device,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        feature_dim: int,
    ) -> None:
        if bn_mode not in ("eval", "train"):
            raise ValueError(f"bn_mode must be 'eval' or 'train', got {bn_mode!r}")
        self.method = method
        self.bank = bank
        self.part = part
        self.bn_mode = bn_mode
        self.device = device
        self.mean, self.std = mean, std
        self.dim = len(range(feature_dim)[part])

    @torch.no_grad()
    def inputs(self, objects: Tensor, views: Tensor) -> Tensor:
        images = self.bank.gather(objects, views).to(self.device)
        b, k = images.shape[:2]
        self.method.train(self.bn_mode == "train")
        encoded = self.method.encode(normalise(images.flatten(0, 1), self.mean, self.std))
        return encoded[:, self.part].reshape(b, k * self.dim).float()


@contextmanager
def frozen_method(method: Method) -> Iterator[Method]:
    """Freeze parameters for the probe and restore parameters, buffers and mode afterwards."""
    state = copy.deepcopy(method.state_dict())
    was_training = method.training
    flags = [p.requires_grad for p in method.parameters()]
    for p in method.parameters():
        p.requires_grad_(False)
    try:
        yield method
    finally:
        method.load_state_dict(state)
        for p, flag in zip(method.parameters(), flags, strict=True):
            p.requires_grad_(flag)
        method.train(was_training)
