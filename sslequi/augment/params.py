"""Recorded per-view augmentation parameters.

Interim contract (the augmentation pipeline fills in one typed record per op): a
``ViewParams`` holds one optional record per op, each with named tensor fields of shape
[B] or [B, k] and an ``applied`` mask [B]. A view that was not augmented (two renders of
a 3D object) has every record ``None``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ViewParams:
    """Parameters of every op applied to one view (``None`` = op not in the pipeline)."""

    @classmethod
    def empty(cls) -> ViewParams:
        return cls()
