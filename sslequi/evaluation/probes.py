"""Probe heads and their training loop over per-epoch view draws (evaluation.md §2, §5).

A probe sees one split through an ``InputSource`` (cached features, or live forwards in
``live.py``) and a ``TargetFn`` (labels, or actions computed by ``sslequi.actions`` from the
latents of the drawn views). Every epoch draws fresh views per object from a generator
seeded by (seed, epoch), so the cached and live paths see exactly the same pairs in the
same order. Evaluation uses fixed, seeded view draws (a deterministic val score, unlike
the unseeded redraws of the official scripts, §11 pitfall 6).
"""

from __future__ import annotations

import copy
import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from sslequi.actions import ActionOptions, compute_actions
from sslequi.augment.params import ViewParams
from sslequi.evaluation import metrics
from sslequi.evaluation.protocol import HeadTraining

TaskKind = Literal["regression", "classification"]
TargetFn = Callable[[Tensor, Tensor], Tensor]  # (objects [B], views [B, k]) → targets


def build_head(training: HeadTraining, in_dim: int, out_dim: int) -> nn.Module:
    """Linear(in, out), or SIE's ``--deep-end`` MLP in → 1024 → ReLU → 1024 → ReLU → out."""
    if training.head == "linear":
        return nn.Linear(in_dim, out_dim)
    layers: list[nn.Module] = []
    width = in_dim
    for hidden in training.hidden:
        layers += [nn.Linear(width, hidden), nn.ReLU()]
        width = hidden
    layers.append(nn.Linear(width, out_dim))
    return nn.Sequential(*layers)


def build_optimizer(training: HeadTraining, params: list[nn.Parameter]) -> torch.optim.Optimizer:
    if training.optimizer == "adam":
        return torch.optim.Adam(params, lr=training.lr, weight_decay=training.weight_decay)
    if training.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=training.lr, weight_decay=training.weight_decay)
    return torch.optim.SGD(
        params, lr=training.lr, momentum=training.momentum, weight_decay=training.weight_decay
    )


class InputSource(ABC):
    """Probe inputs for (object, views) index pairs: [B, k·d] (views concatenated)."""

    dim: int  # width d of one view's features

    @abstractmethod
    def inputs(self, objects: Tensor, views: Tensor) -> Tensor: ...


class CachedSource(InputSource):
    """Gathers rows of a [N, V, d] feature tensor held on the probe device."""

    def __init__(self, features: Tensor, device: torch.device) -> None:
        self.features = features.to(device, torch.float32)
        self.dim = int(features.shape[-1])

    def inputs(self, objects: Tensor, views: Tensor) -> Tensor:
        objects = objects.to(self.features.device)
        views = views.to(self.features.device)
        return self.features[objects.unsqueeze(1), views].flatten(1)


@dataclass
class SplitData:
    """One split as a probe sees it."""

    name: str
    source: InputSource
    targets: TargetFn
    num_objects: int
    num_views: int


@dataclass
class ProbeOutcome:
    """Predictions and targets per scored split, and how training went."""

    predictions: dict[str, Tensor]
    targets: dict[str, Tensor]
    counts: dict[str, int]
    epochs_run: int
    best_epoch: int
    selection: str
    n_fit: int
    history: list[float] = field(default_factory=list)  # holdout score per epoch


def epoch_generator(seed: int, epoch: int, stream: int = 0) -> torch.Generator:
    """The generator of one epoch's draws; shared by the cached and live paths."""
    return torch.Generator().manual_seed(1_000_003 * seed + 7919 * stream + epoch + 1)


def draw_views(num_objects: int, num_views: int, k: int, generator: torch.Generator) -> Tensor:
    """k distinct views per object, uniformly without replacement: [N, k]."""
    if k > num_views:
        raise ValueError(
            f"the probe needs {k} distinct views per object but the split has {num_views}"
        )
    if num_views == 1:
        return torch.zeros(num_objects, 1, dtype=torch.long)
    return torch.rand(num_objects, num_views, generator=generator).argsort(dim=1)[:, :k]


def fit_probe(
    train: SplitData,
    evals: list[SplitData],
    kind: TaskKind,
    out_dim: int,
    views_per_input: int,
    training: HeadTraining,
    seed: int,
    device: torch.device,
    eval_draws_per_object: int = 1,
    progress: bool = True,
    label: str = "probe",
) -> ProbeOutcome:
    """Train one head on ``train`` and predict on its fixed train draw and every eval split."""
    training.validate(label)
    k = views_per_input
    all_objects = torch.arange(train.num_objects)
    split_gen = epoch_generator(seed, 0, stream=1)
    holdout = torch.empty(0, dtype=torch.long)
    fit_objects = all_objects
    if training.early_stopping:
        order = torch.randperm(train.num_objects, generator=split_gen)
        n_hold = max(1, round(training.holdout_fraction * train.num_objects))
        if n_hold >= train.num_objects:
            raise ValueError(f"{label}: holdout_fraction leaves no training objects")
        holdout, fit_objects = order[:n_hold].sort().values, order[n_hold:].sort().values

    def fixed(objects: Tensor, num_views: int, stream: int) -> tuple[Tensor, Tensor]:
        gen = epoch_generator(seed, 0, stream=stream)
        reps = objects.repeat(eval_draws_per_object)
        return reps, draw_views(len(reps), num_views, k, gen)

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        head = build_head(training, k * train.source.dim, out_dim).to(device)
    optimizer = build_optimizer(training, list(head.parameters()))
    scheduler = (
        torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=training.epochs)
        if training.schedule == "cosine"
        else None
    )
    loss_fn: Callable[[Tensor, Tensor], Tensor] = (
        nn.functional.mse_loss if kind == "regression" else nn.functional.cross_entropy
    )
    holdout_set = fixed(holdout, train.num_views, stream=2) if len(holdout) else None
    best_score, best_epoch, best_state, stale = -math.inf, training.epochs, None, 0
    history: list[float] = []
    epochs_run = 0
    bar = tqdm(range(training.epochs), desc=label, unit="ep", disable=not progress, leave=False)
    for epoch in bar:
        gen = epoch_generator(seed, epoch)
        order = fit_objects[torch.randperm(len(fit_objects), generator=gen)]
        views = draw_views(len(order), train.num_views, k, gen)
        targets = train.targets(order, views).to(device)
        head.train()
        for start in range(0, len(order), training.batch_size):
            batch = slice(start, start + training.batch_size)
            x = train.source.inputs(order[batch], views[batch]).to(device)
            loss = loss_fn(head(x), targets[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        if scheduler is not None:
            scheduler.step()
        epochs_run = epoch + 1
        if holdout_set is not None:
            score = _score(kind, *_predict(head, train, *holdout_set, device))
            history.append(score)
            if score > best_score:
                best_score, best_epoch, stale = score, epoch + 1, 0
                best_state = copy.deepcopy(head.state_dict())
            else:
                stale += 1
                if stale >= training.patience:
                    break
    bar.close()
    selection = "last"
    if best_state is not None:
        head.load_state_dict(best_state)
        selection = "best_holdout"
    else:
        best_epoch = epochs_run

    predictions: dict[str, Tensor] = {}
    targets_out: dict[str, Tensor] = {}
    counts: dict[str, int] = {}
    scored = [("train", train, fit_objects, 3)]
    if len(holdout):
        scored.append(("holdout", train, holdout, 2))
    scored += [
        (split.name, split, torch.arange(split.num_objects), 4 + i) for i, split in enumerate(evals)
    ]
    for name, split, objects, stream in scored:
        objs, views = fixed(objects, split.num_views, stream)
        y_hat, y = _predict(head, split, objs, views, device)
        predictions[name], targets_out[name], counts[name] = y_hat, y, len(objs)
    return ProbeOutcome(
        predictions=predictions,
        targets=targets_out,
        counts=counts,
        epochs_run=epochs_run,
        best_epoch=best_epoch,
        selection=selection,
        n_fit=len(fit_objects),
        history=history,
    )


@torch.no_grad()
def _predict(
    head: nn.Module,
    split: SplitData,
    objects: Tensor,
    views: Tensor,
    device: torch.device,
    chunk: int = 4096,
) -> tuple[Tensor, Tensor]:
    head.eval()
    outputs = [
        head(split.source.inputs(objects[s : s + chunk], views[s : s + chunk]).to(device)).cpu()
        for s in range(0, len(objects), chunk)
    ]
    return torch.cat(outputs), split.targets(objects, views).cpu()


def _score(kind: TaskKind, predictions: Tensor, targets: Tensor) -> float:
    if kind == "regression":
        return metrics.r2_global(targets, predictions)
    return metrics.topk_accuracy(predictions, targets, 1)


# ----------------------------------------------------------------------------- targets


def label_targets(labels: Tensor) -> TargetFn:
    """Class label of the object (classification)."""
    return lambda objects, views: labels[objects.cpu()]


def view_index_targets() -> TargetFn:
    """The view index itself (rot90: view k is the image rotated by k·90°)."""
    return lambda objects, views: views[:, 0].cpu()


def _pair_latents(latents: Tensor, objects: Tensor, views: Tensor) -> Tensor:
    return latents[objects.cpu().unsqueeze(1), views.cpu()]


def action_targets(latents: Tensor, action: str, options: ActionOptions) -> TargetFn:
    """Relative action view₁ → view₂ from the one actions module (e.g. quat(R₁ᵀR₂))."""

    def targets(objects: Tensor, views: Tensor) -> Tensor:
        pair = _pair_latents(latents, objects, views)
        params = [ViewParams.empty() for _ in range(pair.shape[1])]
        return compute_actions((action,), pair, params, options).pair(action).float()

    return targets


def absolute_rotation_targets(latents: Tensor, options: ActionOptions) -> TargetFn:
    """quat(R) of one view: the relative action from the identity (zero Euler angles)."""

    def targets(objects: Tensor, views: Tensor) -> Tensor:
        view = _pair_latents(latents, objects, views[:, :1])
        pair = torch.cat([torch.zeros_like(view), view], dim=1)
        params = [ViewParams.empty(), ViewParams.empty()]
        return compute_actions(("rotation_quat",), pair, params, options).pair("rotation_quat")

    return targets
