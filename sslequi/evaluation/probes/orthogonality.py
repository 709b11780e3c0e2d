"""Orthogonal-equivariance probe (``probes=[orthogonality]``; ``sslequi.evaluation.orthogonality``):
for n held-out images and augmentation pairs (t₁, t₂) shared by all of them, the Procrustes
relative residual ‖Z¹Q* − Z²‖/‖Z²‖ (Q* = UVᵀ) and the Gram mismatch, per augmentation family,
each with its floor (Z²'s rows permuted). Scores the declared representations named in
``probe.orthogonality.parts`` (default: the backbone ``full`` and the unit ``projector``
output, where the method declares one); n ≥ 2d images per draw, ≥ 20 draws per family.
"""

from __future__ import annotations

import statistics
from typing import TYPE_CHECKING

import torch

from sslequi.augment.config import load_augment_config
from sslequi.evaluation.orthogonality import (
    DrawScores,
    family_names,
    family_pipelines,
    family_view,
    held_out_images,
    represent,
    score_pair,
    shared_pair,
)
from sslequi.evaluation.predictor import UnsupportedProbe
from sslequi.evaluation.probes import Probe, register_probe

if TYPE_CHECKING:
    from torch import Tensor

    from sslequi.augment.config import AugmentConfig, ViewConfig
    from sslequi.evaluation.runner import Evaluation
    from sslequi.types import Representation


def _recipe(evaluation: Evaluation) -> AugmentConfig:
    name = evaluation.cfg.probe.orthogonality.recipe
    if name != "run":
        return load_augment_config(name)
    run_recipe = evaluation.augment
    if run_recipe is None or not run_recipe.views:
        raise UnsupportedProbe(
            "probe 'orthogonality' with probe.orthogonality.recipe=run needs a run whose "
            "augment recipe has views; name a recipe instead (e.g. care)"
        )
    return run_recipe


@register_probe("orthogonality")
class OrthogonalityProbe(Probe):
    """Procrustes residual and Gram mismatch per augmentation family, with floors."""

    per_part = False  # scores its own list of representations (settings.parts)

    def check(self, evaluation: Evaluation) -> None:
        settings = evaluation.cfg.probe.orthogonality
        try:
            settings.validate()
        except ValueError as error:
            raise UnsupportedProbe(str(error)) from None
        view = family_view(_recipe(evaluation))
        known = family_names(view)
        unknown = [f for f in settings.families if f not in known]
        if unknown:
            raise UnsupportedProbe(
                f"probe.orthogonality.families {unknown} are not ops of the recipe's view; "
                f"choose from {known}"
            )
        if not self.parts(evaluation):
            raise UnsupportedProbe(
                f"probe.orthogonality.parts {settings.parts} names no representation the "
                f"method declares ({sorted(evaluation.representations)})"
            )

    @staticmethod
    def parts(evaluation: Evaluation) -> list[str]:
        declared = evaluation.representations
        return [p for p in evaluation.cfg.probe.orthogonality.parts if p in declared]

    def run(self, evaluation: Evaluation, part: str) -> None:
        cfg = evaluation.cfg
        settings = cfg.probe.orthogonality
        recipe = _recipe(evaluation)
        view = family_view(recipe)
        families = list(settings.families) or family_names(view)
        method = evaluation.method
        device = evaluation.device
        was_training = method.training
        method.eval()
        try:
            for index, split in enumerate(evaluation.eval_splits):
                dataset = evaluation.datasets[split]
                picker = torch.Generator().manual_seed(cfg.seed + 9173 * index)
                pool = held_out_images(dataset, settings.pool, picker).to(device)
                for name in self.parts(evaluation):
                    rep = evaluation.representations[name]
                    width = represent(method, rep, pool[:2].float() / 255, 2).shape[1]
                    n = settings.images or 2 * width
                    if n < 2 * width or n > pool.shape[0]:
                        raise UnsupportedProbe(
                            f"probe 'orthogonality' on {name!r} (d = {width}) needs "
                            f"probe.orthogonality.images = n with 2d = {2 * width} ≤ n ≤ the "
                            f"{pool.shape[0]} held-out images of split {split!r} (got n = {n})"
                        )
                    for family in families:
                        scores = self._draws(evaluation, rep, pool, view, family, n, index)
                        self._add_rows(evaluation, name, split, family, recipe.name, n, scores)
        finally:
            method.train(was_training)

    @staticmethod
    def _draws(
        evaluation: Evaluation,
        rep: Representation,
        pool: Tensor,
        view: ViewConfig,
        family: str,
        n: int,
        split_index: int,
    ) -> list[DrawScores]:
        """``draws`` shared pairs of ``family``, each on n fresh images of the pool."""
        cfg = evaluation.cfg
        settings = cfg.probe.orthogonality
        info = evaluation.datasets[cfg.train_split].info
        pipelines = family_pipelines(view, family, info)
        seed = cfg.seed + 7717 * split_index + sum(map(ord, family))
        picker = torch.Generator().manual_seed(seed)
        augmenter = torch.Generator(device=evaluation.device).manual_seed(seed)
        scores = []
        for _ in range(settings.draws):
            chosen = torch.randperm(pool.shape[0], generator=picker)[:n].to(pool.device)
            x_1, x_2 = shared_pair(pipelines, pool[chosen], augmenter)
            z_1 = represent(evaluation.method, rep, x_1, cfg.batch_size)
            z_2 = represent(evaluation.method, rep, x_2, cfg.batch_size)
            scores.append(score_pair(z_1, z_2, picker))
        return scores

    @staticmethod
    def _add_rows(
        evaluation: Evaluation,
        part: str,
        split: str,
        family: str,
        recipe: str,
        n: int,
        scores: list[DrawScores],
    ) -> None:
        """Mean residual and Gram mismatch over the draws, each with its mean floor."""
        settings = evaluation.cfg.probe.orthogonality
        extra = (
            f"recipe={recipe};family={family};n={n} images/draw;draws={settings.draws};"
            "Q*=UV^T of SVD(Z1^T Z2);floor=Z2 rows permuted"
        )
        for metric, values, floors in (
            ("residual", [s.residual for s in scores], [s.residual_floor for s in scores]),
            ("gram_mismatch", [s.gram for s in scores], [s.gram_floor for s in scores]),
        ):
            protocol = evaluation.protocol_for(
                "orthogonality",
                part,
                f"{metric}_relative_frobenius",
                target=f"shared pair, family {family}",
                n_train=n,
                extra=extra,
            )
            name = f"{metric}_{family}"
            evaluation.add_row(
                protocol, name, split, statistics.mean(values), statistics.mean(floors), len(scores)
            )
