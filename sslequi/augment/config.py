"""The typed schema of the ``augment`` config group."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class AugmentConfig:
    """Augmentation recipe. ``none`` = the 3DIEBench protocol (views are distinct renders)."""

    name: str = "none"
