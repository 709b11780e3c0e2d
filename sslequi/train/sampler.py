"""A shuffling sampler that can start mid-epoch and shards over ranks (exact resume, DDP).

Epoch ``e``'s order is ``randperm(n)`` from a generator seeded with ``(seed, e)``, so it is
the same in every process; rank ``r`` of ``w`` takes every ``w``-th index starting at ``r``
(the tail that does not divide evenly is dropped, as ``DistributedSampler(drop_last=True)``
does). ``set_position(epoch, start)`` skips the ``start`` indices this rank already used.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler

_EPOCH_STRIDE = 1_000_003  # keeps (seed, epoch) → generator seed injective for small seeds


class ResumableSampler(Sampler[int]):
    """Per-rank indices of one epoch, from a given position."""

    def __init__(
        self, length: int, seed: int, rank: int = 0, world_size: int = 1, shuffle: bool = True
    ) -> None:
        if length < world_size:
            raise ValueError(f"dataset of {length} items cannot be sharded over {world_size} ranks")
        self.length = length
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.shuffle = shuffle
        self.per_rank = length // world_size
        self.epoch = 0
        self.start = 0

    def set_position(self, epoch: int, start: int) -> None:
        if not 0 <= start <= self.per_rank:
            raise ValueError(f"start {start} outside [0, {self.per_rank}]")
        self.epoch = epoch
        self.start = start

    def epoch_indices(self, epoch: int) -> torch.Tensor:
        """This rank's full index order for ``epoch``."""
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed * _EPOCH_STRIDE + epoch)
            order = torch.randperm(self.length, generator=generator)
        else:
            order = torch.arange(self.length)
        return order[self.rank : self.per_rank * self.world_size : self.world_size]

    def __iter__(self) -> Iterator[int]:
        yield from self.epoch_indices(self.epoch)[self.start :].tolist()

    def __len__(self) -> int:
        return self.per_rank - self.start
