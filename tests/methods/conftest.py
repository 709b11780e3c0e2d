"""Shared fixtures for the method tests: a tiny backbone and batches built from a spec."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from sslequi.types import ACTION_DIMS, Actions, Batch, MethodSpec, RotatedViews

IMAGE_SIZE = 16


class TinyBackbone(nn.Module):
    """conv → BN → ReLU → pool → linear: a few thousand parameters, [B, 3, H, W] → [B, D]."""

    def __init__(self, feature_dim: int = 16) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, 8, 3, stride=2, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(8, feature_dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def spec_batch(spec: MethodSpec, batch_size: int = 8, seed: int = 0) -> Batch:
    """A random Batch holding exactly what ``spec`` declares (nothing more)."""
    gen = torch.Generator().manual_seed(seed)
    views = [
        torch.randn(batch_size, 3, IMAGE_SIZE, IMAGE_SIZE, generator=gen)
        for _ in range(spec.num_views)
    ]
    actions = Actions(
        **{
            name: torch.randn(batch_size, spec.num_views - 1, ACTION_DIMS[name], generator=gen)
            for name in spec.actions
        }
    )
    rotated = None
    if spec.rotated_view is not None:
        size = spec.rotated_view.size
        small = torch.randn(batch_size, 3, size, size, generator=gen)
        rotated = RotatedViews(
            images=torch.cat([torch.rot90(small, k, dims=(2, 3)) for k in range(4)]),
            labels=torch.arange(4).repeat_interleave(batch_size),
        )
    return Batch(
        views=views,
        params=[],
        actions=actions,
        labels=torch.zeros(batch_size, dtype=torch.long),
        index=torch.arange(batch_size),
        rotated=rotated,
    )


@pytest.fixture
def tiny_backbone() -> Callable[[int], TinyBackbone]:
    torch.manual_seed(0)
    return TinyBackbone


@pytest.fixture
def make_spec_batch() -> Callable[..., Batch]:
    return spec_batch
