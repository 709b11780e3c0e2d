"""Linear classification probe (evaluation.md §2): top-1 / top-5 on one view per input.

Paper protocol: one random view per object per epoch, scored on one seeded view per val
object. Small-set protocol: every view of every fit object each epoch, scored on every view.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from sslequi.evaluation import metrics
from sslequi.evaluation.probes import Probe, register_probe
from sslequi.evaluation.probes._shared import fit_on_splits
from sslequi.evaluation.probes.training import TargetFn, label_targets

if TYPE_CHECKING:
    from sslequi.evaluation.runner import Evaluation


@register_probe("linear")
class LinearProbe(Probe):
    """Class labels from a frozen representation; the majority class is the floor."""

    def run(self, evaluation: Evaluation, part: str) -> None:
        training = evaluation.head_training("linear", single_view=True)
        live = evaluation.live_for("linear")

        def targets_for(split: str, live: bool) -> TargetFn:
            return label_targets(evaluation.latents_labels(split, live)[1])

        classes = int(evaluation.datasets[evaluation.cfg.train_split].info.num_classes)
        _, outcome = fit_on_splits(
            evaluation,
            f"linear/{part}",
            part,
            targets_for,
            "classification",
            classes,
            1,
            training,
            live,
        )
        common = evaluation.training_fields(training, outcome)
        common.update(
            bn_mode=evaluation.cfg.bn_mode if live else "eval",
            feature_mode="live" if live else "cached",
            target="label",
            extra=f"epochs_run={outcome.epochs_run};best_epoch={outcome.best_epoch};"
            f"eval_draws={evaluation.cfg.eval_draws_per_object}",
        )
        for split, logits in outcome.predictions.items():
            labels = outcome.targets[split]
            majority = float(torch.bincount(labels).max()) / len(labels)
            for k in (1, 5):
                if k > logits.shape[1]:
                    continue
                protocol = evaluation.protocol_for("linear", part, f"top{k}", **common)
                value = metrics.topk_accuracy(logits, labels, k)
                floor = majority if k == 1 else None
                evaluation.add_row(protocol, f"top{k}", split, value, floor, len(labels))
