"""Augmentation-parameter R² per group (evaluation.md §9; ``sslequi.evaluation.augparams``):
crop box, jitter factors and blur σ of the relative 9-d action between two augmented views."""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import Tensor

from sslequi.evaluation.augparams import AUG_GROUPS, PairFeatureSource, augmented_pairs
from sslequi.evaluation.predictor import UnsupportedProbe
from sslequi.evaluation.probes import Probe, register_probe
from sslequi.evaluation.probes.regression import regression_scores
from sslequi.evaluation.probes.training import SplitData, fit_probe, head_text
from sslequi.evaluation.protocol import HeadTraining

if TYPE_CHECKING:
    from sslequi.evaluation.runner import Evaluation


@register_probe("aug_params")
class AugParamsProbe(Probe):
    """One head per parameter group on [f(x₀) ‖ f(x₁)] of fixed augmented pairs."""

    def check(self, evaluation: Evaluation) -> None:
        augment = evaluation.augment
        if augment is None or not augment.views:
            raise UnsupportedProbe(
                "probe 'aug_params' needs an augmentation recipe that records parameters "
                f"(augment={None if augment is None else augment.name!r}); set augment=<recipe>"
            )

    def run(self, evaluation: Evaluation, part: str) -> None:
        cfg = evaluation.cfg
        settings = cfg.probe.aug_params
        chosen = evaluation.columns(part, "probe 'aug_params'")
        augment = evaluation.augment
        assert augment is not None
        pairs: dict[str, tuple[Tensor, Tensor]] = {}
        for index, split in enumerate([cfg.train_split, *evaluation.eval_splits]):
            pairs[split] = augmented_pairs(
                evaluation.method,
                evaluation.datasets[split],
                augment,
                chosen,
                settings.draws if split == cfg.train_split else 1,
                cfg.seed + 7717 * index,
                evaluation.device,
                cfg.batch_size,
                cfg.progress,
                evaluation.action_options,
            )
        for group, (columns, head) in AUG_GROUPS.items():
            training = HeadTraining(
                head=head,
                hidden=list(settings.hidden),
                lr=settings.lr,
                epochs=settings.epochs,
                batch_size=settings.batch_size,
            )

            def split_data(split: str, cols: slice = columns) -> SplitData:
                feats, actions = pairs[split]
                targets = actions[:, cols]
                source = PairFeatureSource(feats, evaluation.device)
                return SplitData(
                    split, source, lambda objects, views: targets[objects.cpu()], len(feats), 1
                )

            outcome = fit_probe(
                split_data(cfg.train_split),
                [split_data(s) for s in evaluation.eval_splits],
                "regression",
                columns.stop - columns.start,
                1,
                training,
                cfg.seed,
                evaluation.device,
                1,
                cfg.progress,
                f"aug_params/{group}/{part}",
            )
            common = dict(
                head=head_text(training),
                optimizer="adam",
                lr=settings.lr,
                epochs=settings.epochs,
                batch_size=settings.batch_size,
                selection=outcome.selection,
                target=f"aug_params_9d[{columns.start}:{columns.stop}] {group}",
                n_train=outcome.n_fit,
                steps=outcome.steps,
                extra=f"augment={augment.name};fixed draws={settings.draws}",
            )
            for split, predictions in outcome.predictions.items():
                scores = regression_scores(outcome.targets[split], predictions, quaternion=False)
                for metric, (value, floor) in scores.items():
                    name = f"{group}_{metric}"
                    protocol = evaluation.protocol_for("aug_params", part, name, **common)
                    evaluation.add_row(protocol, name, split, value, floor, len(predictions))
