"""What the trained probes share: fitting a head on one representation of every split."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from sslequi.evaluation.live import frozen_method
from sslequi.evaluation.probes.training import (
    ProbeOutcome,
    SplitData,
    TargetFn,
    TaskKind,
    fit_probe,
)
from sslequi.evaluation.protocol import HeadTraining

if TYPE_CHECKING:
    from sslequi.evaluation.runner import Evaluation

TargetsFor = Callable[[str, bool], TargetFn]  # (split, live) → targets


def fit_on_splits(
    evaluation: Evaluation,
    label: str,
    part: str,
    targets_for: TargetsFor,
    kind: TaskKind,
    out_dim: int,
    views_in: int,
    training: HeadTraining,
    live: bool,
) -> tuple[SplitData, ProbeOutcome]:
    """Train on the train split, predict on every eval split (embedded in eval mode, with
    any drifted BN statistics, evaluation.md §11.5); returns the train split and outcome."""
    cfg = evaluation.cfg
    train = evaluation.split_data(
        cfg.train_split, part, targets_for(cfg.train_split, live), live, cfg.bn_mode == "train"
    )
    evals = [
        evaluation.split_data(split, part, targets_for(split, live), live, train_mode_bn=False)
        for split in evaluation.eval_splits
    ]
    with frozen_method(evaluation.method):
        outcome = fit_probe(
            train,
            evals,
            kind,
            out_dim,
            views_in,
            training,
            cfg.seed,
            evaluation.device,
            cfg.eval_draws_per_object,
            cfg.progress,
            label,
        )
    return train, outcome
