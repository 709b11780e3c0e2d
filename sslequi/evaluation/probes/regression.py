"""Regression probes on dataset latents (evaluation.md §5): relative rotation, absolute
rotation, colour and translation, each registered under its own name.

Input: the representation of two views [y₁ ‖ y₂] (one view for ``abs_rotation``); target:
the relative action of the pair from the one actions module. Both R² definitions are
reported with their constant-predictor floors on the same split (§4); quaternion targets add
sign-canonicalised R² and a sign-invariant error.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from sslequi.actions import ActionOptions
from sslequi.data.base import ObjectDataset
from sslequi.evaluation import metrics
from sslequi.evaluation.predictor import UnsupportedProbe
from sslequi.evaluation.probes import Probe, register_probe
from sslequi.evaluation.probes._shared import fit_on_splits
from sslequi.evaluation.probes.training import (
    TargetFn,
    absolute_rotation_targets,
    action_targets,
)

if TYPE_CHECKING:
    from sslequi.evaluation.runner import Evaluation

# name → (action encoding or "absolute", views per input, min latent width, target text)
REGRESSION_TARGETS: dict[str, tuple[str, int, int, str]] = {
    "rotation": ("rotation_quat", 2, 3, "quat(R1^T R2) xyzw"),
    "abs_rotation": ("absolute", 1, 3, "quat(R) xyzw"),
    "color": ("color_delta", 2, 7, "latent2[3,6]-latent1[3,6]"),
    "translation_object": ("translation_object", 2, 10, "t2-t1"),
    "translation_base": ("translation_base", 2, 10, "R2t2-R1t1"),
}
QUATERNION_PROBES = ("rotation", "abs_rotation")


def regression_scores(
    targets: Tensor, predictions: Tensor, quaternion: bool
) -> dict[str, tuple[float, float | None]]:
    """Both R² definitions with their constant-predictor floors on the same split (§4).

    Quaternion targets add R² on w ≥ 0-canonicalised targets and predictions and the
    sign-invariant error 1 − ⟨q, q̂/‖q̂‖⟩² (floor: the mean target as a constant prediction).
    """
    scores: dict[str, tuple[float, float | None]] = {
        "r2_global": (
            metrics.r2_global(targets, predictions),
            metrics.constant_floor_global(targets),
        ),
        "r2_per_component": (
            metrics.r2_per_component(targets, predictions),
            metrics.constant_floor_per_component(targets),
        ),
    }
    if quaternion:
        canon_t = metrics.canonicalize_quaternion(targets)
        canon_p = metrics.canonicalize_quaternion(predictions)
        scores["r2_global_canonical"] = (
            metrics.r2_global(canon_t, canon_p),
            metrics.constant_floor_global(canon_t),
        )
        scores["r2_per_component_canonical"] = (
            metrics.r2_per_component(canon_t, canon_p),
            metrics.constant_floor_per_component(canon_t),
        )
        mean_prediction = targets.mean(0, keepdim=True).expand_as(targets)
        scores["sign_invariant_error"] = (
            metrics.sign_invariant_error(targets, predictions),
            metrics.sign_invariant_error(targets, mean_prediction),
        )
    return scores


class RegressionProbe(Probe):
    """One latent regression (the registered subclasses below name it)."""

    def check(self, evaluation: Evaluation) -> None:
        train = evaluation.datasets[evaluation.cfg.train_split]
        need = REGRESSION_TARGETS[self.name][2]
        width = train.info.latent_dim
        if width is None or width < need:
            raise UnsupportedProbe(
                f"probe {self.name!r} needs dataset latents of width ≥ {need}, but dataset "
                f"{type(train).__name__} has " + ("none" if width is None else f"width {width}")
            )
        if not isinstance(train, ObjectDataset):
            raise UnsupportedProbe(
                f"probe {self.name!r} needs an object dataset with several views per object"
            )

    def targets_for(self, evaluation: Evaluation, split: str, live: bool) -> TargetFn:
        latents, _ = evaluation.latents_labels(split, live)
        if latents is None:
            raise UnsupportedProbe(f"probe {self.name!r}: split {split!r} has no latents")
        canonical = evaluation.cfg.rotation_target == "canonical"
        options = ActionOptions(canonicalize_quaternion=canonical)
        action = REGRESSION_TARGETS[self.name][0]
        if action == "absolute":
            return absolute_rotation_targets(latents, options)
        return action_targets(latents, action, options)

    def run(self, evaluation: Evaluation, part: str) -> None:
        probe = self.name
        _, views_in, _, target_text = REGRESSION_TARGETS[probe]
        training = evaluation.head_training(probe, single_view=views_in == 1)
        live = evaluation.live_for(probe)
        train_targets = self.targets_for(evaluation, evaluation.cfg.train_split, live)
        sample = train_targets(torch.zeros(1, dtype=torch.long), torch.arange(views_in)[None])
        _, outcome = fit_on_splits(
            evaluation,
            f"{probe}/{part}",
            part,
            lambda split, live: self.targets_for(evaluation, split, live),
            "regression",
            int(sample.shape[-1]),
            views_in,
            training,
            live,
        )
        if probe in QUATERNION_PROBES and evaluation.cfg.rotation_target == "canonical":
            target_text += " w>=0"
        common = evaluation.training_fields(training, outcome)
        common.update(
            bn_mode=evaluation.cfg.bn_mode if live else "eval",
            feature_mode="live" if live else "cached",
            target=target_text,
            extra=f"epochs_run={outcome.epochs_run};best_epoch={outcome.best_epoch};"
            f"eval_draws={evaluation.cfg.eval_draws_per_object}",
        )
        for split, predictions in outcome.predictions.items():
            targets = outcome.targets[split]
            scores = regression_scores(targets, predictions, quaternion=probe in QUATERNION_PROBES)
            for metric, (value, floor) in scores.items():
                protocol = evaluation.protocol_for(probe, part, metric, **common)
                evaluation.add_row(protocol, metric, split, value, floor, len(targets))


@register_probe("rotation")
class RotationProbe(RegressionProbe):
    """quat(R₁ᵀR₂) from [y₁ ‖ y₂] (§5.1). Floors: R²_global ≈ 0.229, R²_pc 0."""


@register_probe("abs_rotation")
class AbsoluteRotationProbe(RegressionProbe):
    """quat(R) of one view (§5.2). Floor: R²_global ≈ 0.460."""


@register_probe("color")
class ColorProbe(RegressionProbe):
    """(Δfloor_hue, Δspot_hue) from [y₁ ‖ y₂] (§5.3). Floors ≈ 0."""


@register_probe("translation_object")
class ObjectTranslationProbe(RegressionProbe):
    """t₂ − t₁ in the object frame (3DIEBench-T, §5.4)."""


@register_probe("translation_base")
class BaseTranslationProbe(RegressionProbe):
    """R₂t₂ − R₁t₁ in the base frame (3DIEBench-T, §5.4)."""
