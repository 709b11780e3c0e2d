"""2D relative-action encodings computed from recorded augmentation parameters.

Per view i a parameter vector t_i is read from its ``ViewParams``; the action from view i
to view i + 1 is built from t_i and t_{i+1}:

- ``aug_params_9d`` (seq-JEPA, methods.md §9.3): t = [crop top, left, height, width (source
  pixels), brightness, contrast, saturation, hue factors ((1, 1, 1, 0) when jitter was
  skipped), blur σ (0 when skipped)]; action = t_{i+1} − t_i. With
  ``ActionOptions.normalize_per_sequence`` each parameter is first L2-normalised over the
  views of its sample (the (B, V, 9) tensor along V), as the seq-JEPA code does.
- ``aug_params_full``: the 9 values above, then Δflip, Δgrayscale, Δsolarize (each in
  {−1, 0, 1}), the relative continuous rotation Δθ as (cos Δθ, sin Δθ), and the relative
  quarter turn (k_{i+1} − k_i) mod 4: 15 values. Differences are antisymmetric; cos Δθ is
  symmetric and the quarter turn is antisymmetric modulo 4.

Ops missing from a view's pipeline count as identity (no crop: the zero box).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from sslequi.actions import ActionInputs, register_action
from sslequi.augment.params import ViewParams


def _batch_size(params: list[ViewParams]) -> tuple[int, torch.device]:
    for view in params:
        for record in view.records().values():
            return record.batch_size, record.applied.device
    raise ValueError(
        "2D action encodings need recorded augmentation parameters, but no view has any "
        "(is the augment recipe 'none'?)"
    )


def view_vector_9d(view: ViewParams, batch_size: int, device: torch.device) -> Tensor:
    """[B, 9]: crop box, jitter factors, blur σ of one view (identity where absent)."""
    columns: list[Tensor] = []
    if view.crop is not None:
        c = view.crop
        columns += [c.top, c.left, c.height, c.width]
    else:
        columns += [torch.zeros(batch_size, device=device)] * 4
    if view.color_jitter is not None:
        j = view.color_jitter
        columns += [j.brightness, j.contrast, j.saturation, j.hue]
    else:
        one, zero = torch.ones(batch_size, device=device), torch.zeros(batch_size, device=device)
        columns += [one, one, one, zero]
    columns.append(
        view.blur.sigma if view.blur is not None else torch.zeros(batch_size, device=device)
    )
    return torch.stack([c.float() for c in columns], dim=1)


def _flag(record: object | None, batch_size: int, device: torch.device) -> Tensor:
    if record is None:
        return torch.zeros(batch_size, device=device)
    return record.applied.float()  # type: ignore[attr-defined]


def _sequence_9d(inputs: ActionInputs) -> Tensor:
    b, device = _batch_size(inputs.params)
    t = torch.stack([view_vector_9d(v, b, device) for v in inputs.params], dim=1)  # [B, V, 9]
    if inputs.options.normalize_per_sequence:
        t = F.normalize(t, dim=1)
    return t


@register_action("aug_params_9d")
def aug_params_9d(inputs: ActionInputs) -> Tensor:
    """seq-JEPA's 9-value action between consecutive views: [B, V − 1, 9]."""
    t = _sequence_9d(inputs)
    return t[:, 1:] - t[:, :-1]


@register_action("aug_params_full")
def aug_params_full(inputs: ActionInputs) -> Tensor:
    """The 9 values plus flip, grayscale, solarize, rotation (cos, sin), rot90: [B, V − 1, 15]."""
    b, device = _batch_size(inputs.params)
    base = aug_params_9d(inputs)
    flags = torch.stack(
        [
            torch.stack(
                [
                    _flag(v.flip, b, device),
                    _flag(v.grayscale, b, device),
                    _flag(v.solarize, b, device),
                ],
                dim=1,
            )
            for v in inputs.params
        ],
        dim=1,
    )  # [B, V, 3]
    angle = torch.stack(
        [
            torch.deg2rad(v.rotation.angle.float())
            if v.rotation is not None
            else torch.zeros(b, device=device)
            for v in inputs.params
        ],
        dim=1,
    )  # [B, V]
    turns = torch.stack(
        [
            v.rot90.k.float() if v.rot90 is not None else torch.zeros(b, device=device)
            for v in inputs.params
        ],
        dim=1,
    )
    d_angle = angle[:, 1:] - angle[:, :-1]
    return torch.cat(
        [
            base,
            flags[:, 1:] - flags[:, :-1],
            torch.cos(d_angle)[..., None],
            torch.sin(d_angle)[..., None],
            torch.remainder(turns[:, 1:] - turns[:, :-1], 4.0)[..., None],
        ],
        dim=-1,
    )
