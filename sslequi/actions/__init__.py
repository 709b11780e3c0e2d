"""The one actions module: relative transformations between views.

Each encoding named in ``sslequi.types.ACTION_DIMS`` has exactly one function, registered
with ``@register_action``. 3D encodings (from dataset latents) live in ``rotation.py``;
2D encodings (from recorded ``ViewParams``) in ``augment.py``. ``compute_actions`` fills an
``Actions`` with the encodings a method declared, between consecutive views.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from torch import Tensor

from sslequi.augment.params import ViewParams
from sslequi.registry import Registry
from sslequi.types import ACTION_DIMS, Actions


@dataclass(frozen=True)
class ActionOptions:
    """Options that change an encoding (defaults follow the papers)."""

    canonicalize_quaternion: bool = False  # force w ≥ 0 (off: the official scipy path)
    normalize_per_sequence: bool = False  # seq-JEPA 9-value encoding option


@dataclass
class ActionInputs:
    """What an encoding may read: latents [B, V, L] and/or per-view params."""

    latents: Tensor | None
    params: list[ViewParams]
    options: ActionOptions = field(default_factory=ActionOptions)


ActionFn = Callable[[ActionInputs], Tensor]  # returns [B, V − 1, k]
ACTIONS: Registry[ActionFn] = Registry("action encoding")
register_action = ACTIONS.register


def compute_actions(
    names: tuple[str, ...],
    latents: Tensor | None,
    params: list[ViewParams],
    options: ActionOptions | None = None,
) -> Actions:
    """Compute each declared encoding between consecutive views."""
    inputs = ActionInputs(latents=latents, params=params, options=options or ActionOptions())
    values: dict[str, Tensor] = {}
    for name in names:
        value = ACTIONS.get(name)(inputs)
        expected = ACTION_DIMS[name]
        if value.shape[-1] != expected:
            raise ValueError(
                f"action {name!r} produced width {value.shape[-1]}, expected {expected}"
            )
        values[name] = value
    return Actions(**values)


def latent_encodings() -> frozenset[str]:
    """The encodings computed from dataset latents (the ones ``rotation.py`` registers)."""
    from sslequi.actions import fixation, rotation

    modules = (rotation.__name__, fixation.__name__)
    return frozenset(e.name for e in ACTIONS if e.obj.__module__ in modules)


def _register_builtin_encodings() -> None:
    from sslequi.actions import augment, fixation, rotation  # noqa: F401


_register_builtin_encodings()
