"""Gathering across processes for losses that need the global batch (methods.md §1.4)."""

from __future__ import annotations

import torch
import torch.distributed as dist
from lightly.utils.dist import gather as _gather_with_grad
from torch import Tensor


def gather(tensor: Tensor) -> Tensor:
    """Concatenate ``tensor`` over all ranks, keeping gradients; identity when not distributed."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return tensor
    return torch.cat(_gather_with_grad(tensor), dim=0)
