"""seq-JEPA's sequence probes (methods.md §9.7, evaluation.md §2.1, §9).

``agg_linear``: linear top-1 on the aggregate z_AGG of M_val observed views
(``probe.agg_linear.views``) of each object and their relative actions, computed by the
method's own aggregator (``Method.aggregate``; seq-JEPA) from frozen per-view encoder
features. On object datasets (3DIEBench family, STL-10 PLS glimpses) the views are drawn
without replacement from the cached features of every view and the actions come from their
latents (``sslequi.actions``); on 2D datasets M_val views are rendered by the run's augment
recipe (its first view entry), with the run's action options (seq-JEPA: parameters
L2-normalised over the sequence, then differenced). ``draws`` fixed sequences per training
object (one per evaluation object) are aggregated once, in eval mode; the head then trains
on them like the linear probe (one sequence per object per epoch, or all of them under the
small-set protocol). Asking for more views than an object has fails before any compute.

``fixation``: the STL-10 PLS fixation-offset R² (seq-JEPA ``pos_regressor``): Linear(2D → 2)
on [f(x₁) ‖ f(x₂)] of two glimpses of an image, target the ``fixation_offset`` action,
Adam 1e-3, wd 0 (``main_pls.py``); both R² definitions.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import torch
from torch import Tensor
from torch.utils.data import DataLoader

from sslequi.actions import ActionOptions, compute_actions
from sslequi.augment.builder import BatchBuilder
from sslequi.augment.config import AugmentConfig
from sslequi.augment.params import ViewParams
from sslequi.data.base import ImageDataset, ObjectDataset
from sslequi.evaluation import metrics
from sslequi.evaluation.live import frozen_method
from sslequi.evaluation.predictor import UnsupportedProbe
from sslequi.evaluation.probes import Probe, register_probe
from sslequi.evaluation.probes._shared import fit_on_splits
from sslequi.evaluation.probes.regression import regression_scores
from sslequi.evaluation.probes.training import (
    CachedSource,
    SplitData,
    TargetFn,
    action_targets,
    draw_views,
    epoch_generator,
    fit_probe,
)
from sslequi.evaluation.protocol import AggregateSettings
from sslequi.types import MethodSpec, collate_samples

if TYPE_CHECKING:
    from sslequi.evaluation.runner import Evaluation

CHUNK = 1024


def _views_per_object(dataset: ImageDataset) -> int:
    return int(dataset.views_of(0).images.shape[0]) if isinstance(dataset, ObjectDataset) else 0


@register_probe("agg_linear")
class AggregateLinearProbe(Probe):
    """Linear classifier on z_AGG of M_val observed views (module docstring)."""

    per_part = False

    def settings(self, evaluation: Evaluation) -> AggregateSettings:
        return evaluation.cfg.probe.agg_linear

    def check(self, evaluation: Evaluation) -> None:
        method = evaluation.method
        if not callable(getattr(method, "aggregate", None)):
            raise UnsupportedProbe(
                f"probe 'agg_linear' reads a sequence aggregate; {type(method).__name__} has "
                "none (seq-JEPA's z_AGG)"
            )
        if evaluation.cfg.bn_mode == "train" or evaluation.cfg.mode == "live":
            raise UnsupportedProbe(
                "probe 'agg_linear' aggregates cached eval-mode features: use mode=cached "
                "bn_mode=eval"
            )
        settings = self.settings(evaluation)
        if settings.views < 1 or settings.draws < 1:
            raise ValueError("probe.agg_linear.views and probe.agg_linear.draws must be ≥ 1")
        for split in [evaluation.cfg.train_split, *evaluation.eval_splits]:
            dataset = evaluation.datasets[split]
            have = _views_per_object(dataset)
            if isinstance(dataset, ObjectDataset) and settings.views > have:
                raise ValueError(
                    f"probe.agg_linear.views={settings.views} asks for {settings.views} "
                    f"observed views per object, but the objects of split {split!r} have "
                    f"{have}; lower probe.agg_linear.views"
                )
            if not isinstance(dataset, ObjectDataset):
                augment = evaluation.augment
                if augment is None or not augment.views:
                    raise UnsupportedProbe(
                        "probe 'agg_linear' on a 2D dataset renders the observed views with "
                        "the run's augment recipe; this run has none (set augment=<recipe>)"
                    )

    def run(self, evaluation: Evaluation, part: str) -> None:
        cfg = evaluation.cfg
        settings = self.settings(evaluation)
        training = evaluation.head_training("agg_linear", single_view=True)
        splits = [cfg.train_split, *evaluation.eval_splits]
        data: dict[str, SplitData] = {}
        for index, split in enumerate(splits):
            draws = settings.draws if split == cfg.train_split else cfg.eval_draws_per_object
            z_agg, labels = self.aggregates(evaluation, split, draws, cfg.seed + 7717 * index)
            source = CachedSource(z_agg, evaluation.device)
            data[split] = SplitData(
                split,
                source,
                lambda objects, views, labels=labels: labels[objects.cpu()],
                int(z_agg.shape[0]),
                int(z_agg.shape[1]),
            )
        classes = int(evaluation.datasets[cfg.train_split].info.num_classes)
        outcome = fit_probe(
            data[cfg.train_split],
            [data[s] for s in evaluation.eval_splits],
            "classification",
            classes,
            1,
            training,
            cfg.seed,
            evaluation.device,
            1,
            cfg.progress,
            "agg_linear",
        )
        common = evaluation.training_fields(training, outcome)
        common.update(
            bn_mode="eval",
            feature_mode="cached",
            target="label",
            extra=f"M_val={settings.views};draws={settings.draws};epochs_run="
            f"{outcome.epochs_run};best_epoch={outcome.best_epoch}",
        )
        for split, logits in outcome.predictions.items():
            labels = outcome.targets[split]
            majority = float(torch.bincount(labels[labels >= 0]).max()) / len(labels)
            for k in (1, 5):
                if k > logits.shape[1]:
                    continue
                protocol = evaluation.protocol_for("agg_linear", "agg", f"top{k}", **common)
                value = metrics.topk_accuracy(logits, labels, k)
                floor = majority if k == 1 else None
                evaluation.add_row(protocol, f"top{k}", split, value, floor, len(labels))

    @torch.no_grad()
    def aggregates(
        self, evaluation: Evaluation, split: str, draws: int, seed: int
    ) -> tuple[Tensor, Tensor]:
        """z_AGG [N, draws, d] of ``draws`` sequences of M_val views per object, labels [N]."""
        dataset = evaluation.datasets[split]
        if isinstance(dataset, ObjectDataset):
            return self._from_objects(evaluation, split, draws, seed)
        return self._from_augmentations(evaluation, dataset, draws, seed)

    def _from_objects(
        self, evaluation: Evaluation, split: str, draws: int, seed: int
    ) -> tuple[Tensor, Tensor]:
        method = evaluation.method
        m = self.settings(evaluation).views
        cached = evaluation.features(split)
        if cached.latents is None and m > 1:
            raise UnsupportedProbe(f"probe 'agg_linear': split {split!r} has no latents")
        features = cached.features.float()
        n, v = features.shape[:2]
        action = str(method.sequence_action)  # type: ignore[attr-defined]
        options = evaluation.action_options
        out = []
        with frozen_method(method):
            method.eval()
            for draw in range(draws):
                views = draw_views(n, v, m, epoch_generator(seed, draw, stream=11))
                rows = torch.arange(n).unsqueeze(1)
                z = features[rows, views]
                actions = None
                if m > 1:
                    latents = cached.latents[rows, views]  # type: ignore[index]
                    params = [ViewParams.empty() for _ in range(m)]
                    actions = compute_actions((action,), latents, params, options).get(action)
                out.append(self._aggregate(evaluation, z, actions))
        return torch.stack(out, dim=1), cached.labels

    def _from_augmentations(
        self, evaluation: Evaluation, dataset: ImageDataset, draws: int, seed: int
    ) -> tuple[Tensor, Tensor]:
        method = evaluation.method
        m = self.settings(evaluation).views
        augment = evaluation.augment
        assert augment is not None
        observed = replace(augment.views[0], count=m)
        recipe: AugmentConfig = replace(augment, views=[observed], structure=None)
        action = str(method.sequence_action)  # type: ignore[attr-defined]
        spec = MethodSpec(num_views=m, structure="sequence", actions=(action,) if m > 1 else ())
        device = evaluation.device
        builder = BatchBuilder(
            spec,
            dataset.info,
            recipe,
            evaluation.action_options,
            generator=torch.Generator(device=device).manual_seed(seed),
        )
        loader = DataLoader(
            dataset, batch_size=evaluation.cfg.batch_size, shuffle=False, collate_fn=collate_samples
        )
        per_draw: list[Tensor] = []
        labels: list[Tensor] = []
        with frozen_method(method):
            method.eval()
            for draw in range(draws):
                chunks = []
                for raw in loader:
                    batch = builder(raw.to(device))
                    b = batch.batch_size
                    z = method.encode(torch.cat(batch.views)).reshape(m, b, -1).transpose(0, 1)
                    actions = batch.actions.get(action) if m > 1 else None
                    chunks.append(self._aggregate(evaluation, z, actions))
                    if draw == 0:
                        labels.append(raw.labels.cpu())
                per_draw.append(torch.cat(chunks))
        return torch.stack(per_draw, dim=1), torch.cat(labels)

    @staticmethod
    def _aggregate(evaluation: Evaluation, z: Tensor, actions: Tensor | None) -> Tensor:
        method = evaluation.method
        device = evaluation.device
        out = []
        for start in range(0, z.shape[0], CHUNK):
            part = slice(start, start + CHUNK)
            acts = None if actions is None else actions[part].to(device).float()
            out.append(method.aggregate(z[part].to(device), acts).float().cpu())  # type: ignore[operator]
        return torch.cat(out)


@register_probe("fixation")
class FixationProbe(Probe):
    """Fixation offset (row, col)/96 between two glimpses from [f(x₁) ‖ f(x₂)] (PLS)."""

    def check(self, evaluation: Evaluation) -> None:
        train = evaluation.datasets[evaluation.cfg.train_split]
        if not isinstance(train, ObjectDataset) or train.info.latent_dim != 2:
            raise UnsupportedProbe(
                "probe 'fixation' needs glimpse sequences with fixation latents (dataset "
                f"stl10_pls); got {type(train).__name__}"
            )

    def run(self, evaluation: Evaluation, part: str) -> None:
        training = evaluation.head_training("fixation", single_view=False)
        live = evaluation.live_for("fixation")
        options = ActionOptions()

        def targets_for(split: str, live: bool) -> TargetFn:
            latents, _ = evaluation.latents_labels(split, live)
            if latents is None:
                raise UnsupportedProbe(f"probe 'fixation': split {split!r} has no latents")
            return action_targets(latents, "fixation_offset", options)

        _, outcome = fit_on_splits(
            evaluation, f"fixation/{part}", part, targets_for, "regression", 2, 2, training, live
        )
        common = evaluation.training_fields(training, outcome)
        common.update(
            bn_mode=evaluation.cfg.bn_mode if live else "eval",
            feature_mode="live" if live else "cached",
            target="(row,col)_2/96-(row,col)_1/96",
            extra=f"epochs_run={outcome.epochs_run};best_epoch={outcome.best_epoch}",
        )
        for split, predictions in outcome.predictions.items():
            scores = regression_scores(outcome.targets[split], predictions, quaternion=False)
            for metric, (value, floor) in scores.items():
                protocol = evaluation.protocol_for("fixation", part, metric, **common)
                evaluation.add_row(protocol, metric, split, value, floor, len(predictions))
