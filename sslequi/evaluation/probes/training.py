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


def head_text(training: HeadTraining) -> str:
    """``linear`` or ``mlp(h1-h2-…)``: the head as recorded in a protocol."""
    if training.head == "linear":
        return "linear"
    return "mlp(" + "-".join(str(h) for h in training.hidden) + ")"


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
    steps: int = 0  # optimiser steps run
    max_epochs: int = 0  # epochs allowed (raised to reach ``min_steps``)


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


def all_view_tuples(objects: Tensor, num_views: int, k: int) -> tuple[Tensor, Tensor]:
    """Every view (k = 1) or every ordered pair of distinct views (k = 2) of each object."""
    if k == 1:
        views = torch.arange(num_views).repeat(len(objects)).unsqueeze(1)
        return objects.repeat_interleave(num_views), views
    if k == 2:
        if num_views < 2:
            raise ValueError(f"pairs need 2 distinct views per object, the split has {num_views}")
        grid = torch.cartesian_prod(torch.arange(num_views), torch.arange(num_views))
        pairs = grid[grid[:, 0] != grid[:, 1]]
        return objects.repeat_interleave(len(pairs)), pairs.repeat(len(objects), 1)
    raise ValueError(f"scoring on every view tuple is defined for 1 or 2 views, not {k}")


def draws_per_object(training: HeadTraining, num_views: int, k: int) -> int:
    """Draws per object per epoch, at most the number of distinct ordered view tuples."""
    distinct = math.perm(num_views, k) if num_views >= k else 1
    return max(1, min(training.draws_per_object, distinct))


def epoch_draws(
    objects: Tensor, num_views: int, k: int, training: HeadTraining, gen: torch.Generator
) -> tuple[Tensor, Tensor]:
    """One epoch's (objects, views) in training order: every view of each object
    (``all_views``), else ``draws_per_object`` draws of k distinct views per object."""
    if training.all_views and k == 1:
        objs, views = all_view_tuples(objects, num_views, 1)
    else:
        objs = objects.repeat(draws_per_object(training, num_views, k))
        views = draw_views(len(objs), num_views, k, gen)
    order = torch.randperm(len(objs), generator=gen)
    return objs[order], views[order]


class Standardized(InputSource):
    """(x − μ)/σ per feature with statistics fixed from the training split."""

    def __init__(self, source: InputSource, mean: Tensor, std: Tensor) -> None:
        self.source, self.dim = source, source.dim
        self.mean, self.std = mean, std

    @classmethod
    def fit(cls, source: CachedSource) -> tuple[Tensor, Tensor]:
        """Per-dimension mean and std over every view of every object of ``source``."""
        flat = source.features.reshape(-1, source.dim)
        return flat.mean(0), flat.std(0).clamp_min(1e-6)

    def inputs(self, objects: Tensor, views: Tensor) -> Tensor:
        x = self.source.inputs(objects, views)
        k = x.shape[1] // self.dim
        return (x - self.mean.repeat(k)) / self.std.repeat(k)


def standardize_splits(
    train: SplitData, evals: list[SplitData]
) -> tuple[SplitData, list[SplitData]]:
    """Every split standardised with the train split's statistics (cached features only)."""
    if not isinstance(train.source, CachedSource):
        raise ValueError("standardisation needs cached features (use protocol=paper with live)")
    mean, std = Standardized.fit(train.source)

    def wrap(split: SplitData) -> SplitData:
        source = Standardized(split.source, mean, std)
        return SplitData(split.name, source, split.targets, split.num_objects, split.num_views)

    return wrap(train), [wrap(split) for split in evals]


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
    """Train one head on ``train`` and predict on its fit objects, the holdout and every eval
    split: one seeded draw per object (``eval_draws_per_object``), or every view / ordered
    view pair with ``training.score_all_views``."""
    training.validate(label)
    k = views_per_input
    if training.standardize:
        train, evals = standardize_splits(train, evals)
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
        if training.score_all_views and num_views >= k:
            return all_view_tuples(objects, num_views, k)
        gen = epoch_generator(seed, 0, stream=stream)
        reps = objects.repeat(eval_draws_per_object)
        return reps, draw_views(len(reps), num_views, k, gen)

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        head = build_head(training, k * train.source.dim, out_dim).to(device)
    if training.init_at_mean and kind == "regression":
        _start_at_mean(head, train, fit_objects, k, seed)
    per_epoch = len(fit_objects) * (
        train.num_views
        if training.all_views and k == 1
        else draws_per_object(training, train.num_views, k)
    )
    steps_per_epoch = math.ceil(per_epoch / training.batch_size)
    epochs = max(training.epochs, math.ceil(training.min_steps / steps_per_epoch))
    optimizer = build_optimizer(training, list(head.parameters()))
    scheduler = (
        torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
        if training.schedule == "cosine"
        else None
    )
    loss_fn: Callable[[Tensor, Tensor], Tensor] = (
        nn.functional.mse_loss if kind == "regression" else nn.functional.cross_entropy
    )
    holdout_set = fixed(holdout, train.num_views, stream=2) if len(holdout) else None
    best_score, best_epoch, best_state, stale = -math.inf, epochs, None, 0
    history: list[float] = []
    epochs_run = steps = 0
    if holdout_set is not None and training.init_at_mean:
        # Epoch 0: the constant (train-mean) predictor competes in the selection.
        best_score = _score(kind, *_predict(head, train, *holdout_set, device))
        best_epoch, best_state = 0, copy.deepcopy(head.state_dict())
    bar = tqdm(range(epochs), desc=label, unit="ep", disable=not progress, leave=False)
    for epoch in bar:
        gen = epoch_generator(seed, epoch)
        order, views = epoch_draws(fit_objects, train.num_views, k, training, gen)
        targets = train.targets(order, views).to(device)
        head.train()
        for start in range(0, len(order), training.batch_size):
            batch = slice(start, start + training.batch_size)
            x = train.source.inputs(order[batch], views[batch]).to(device)
            loss = loss_fn(head(x), targets[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            steps += 1
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
                if stale >= training.patience and steps >= training.min_steps:
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
        steps=steps,
        max_epochs=epochs,
    )


@torch.no_grad()
def _start_at_mean(head: nn.Module, train: SplitData, objects: Tensor, k: int, seed: int) -> None:
    """Zero the last layer's weights and set its bias to the mean train target, so the
    untrained head is the constant predictor of the floors (metrics.constant_floor_*)."""
    last = head if isinstance(head, nn.Linear) else head[-1]  # type: ignore[index]
    assert isinstance(last, nn.Linear)
    if k <= 2 and train.num_views >= k:
        objects, views = all_view_tuples(objects, train.num_views, k)
    else:
        views = draw_views(len(objects), train.num_views, k, epoch_generator(seed, 0, stream=9))
    last.weight.zero_()
    last.bias.copy_(train.targets(objects, views).float().mean(0))


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
