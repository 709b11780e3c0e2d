"""Fixation-offset actions of seq-JEPA's predictive learning across saccades (PLS,
methods.md §9.3): the dataset ``stl10_pls`` records each glimpse's fixation centre as its
latent (row, col)/96; the action from glimpse i to glimpse j is the difference."""

from __future__ import annotations

from torch import Tensor

from sslequi.actions import ActionInputs, register_action

FIXATION_WIDTH = 2


@register_action("fixation_offset")
def fixation_offset(inputs: ActionInputs) -> Tensor:
    """(row, col)_{i+1} − (row, col)_i between consecutive glimpses: [B, V − 1, 2]."""
    latents = inputs.latents
    if latents is None or latents.shape[-1] != FIXATION_WIDTH:
        width = None if latents is None else latents.shape[-1]
        raise ValueError(
            "action 'fixation_offset' needs fixation latents (row, col)/size of width 2 "
            f"(dataset stl10_pls); this batch has latents of width {width}"
        )
    latents = latents.float()
    return latents[:, 1:] - latents[:, :-1]
