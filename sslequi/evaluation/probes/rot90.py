"""4-fold rotation accuracy (evaluation.md §8): view 0 of every object in the four rotations
k·90° (CCW), a linear head trained with cross-entropy; chance 25 %."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sslequi.evaluation import metrics
from sslequi.evaluation.probes import Probe, register_probe
from sslequi.evaluation.probes.training import CachedSource, SplitData, fit_probe

if TYPE_CHECKING:
    from sslequi.evaluation.runner import Evaluation


@register_probe("rot90")
class Rot90Probe(Probe):
    """Which of the four rotations an image is in, from its frozen representation."""

    def run(self, evaluation: Evaluation, part: str) -> None:
        training = evaluation.head_training("rot90", single_view=True)

        def flat(split: str) -> SplitData:
            feats = evaluation.part_features(split, part, views="rot90")
            n = feats.shape[0] * 4
            source = CachedSource(feats.reshape(n, 1, -1), evaluation.device)
            return SplitData(split, source, lambda objects, views: objects.cpu() % 4, n, 1)

        cfg = evaluation.cfg
        outcome = fit_probe(
            flat(cfg.train_split),
            [flat(split) for split in evaluation.eval_splits],
            "classification",
            4,
            1,
            training,
            cfg.seed,
            evaluation.device,
            1,
            cfg.progress,
            f"rot90/{part}",
        )
        common = evaluation.training_fields(training, outcome)
        common.update(target="k of rot90(k) CCW", extra="view 0 of each object; 4 rotations each")
        for split, logits in outcome.predictions.items():
            labels = outcome.targets[split]
            protocol = evaluation.protocol_for("rot90", part, "accuracy", **common)
            value = metrics.topk_accuracy(logits, labels, 1)
            evaluation.add_row(protocol, "accuracy", split, value, 0.25, len(labels))
            predicted = logits.argmax(1)
            for k in range(4):
                mask = labels == k
                per_k = float((predicted[mask] == k).double().mean())
                evaluation.add_row(protocol, f"accuracy_k{k}", split, per_k, 0.25, int(mask.sum()))
