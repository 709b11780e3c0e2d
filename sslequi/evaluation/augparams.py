"""Augmentation-parameter R² (seq-JEPA's CIFAR / Tiny-ImageNet protocol, evaluation.md §9).

Two augmented views of every image are rendered by the one augmentation pipeline
(``sslequi.augment.builder.make_batch_builder`` with the run's recipe, seeded), embedded
once with the frozen backbone (eval mode), and heads regress the relative action
``aug_params_9d`` (view 0 → view 1, ``sslequi.actions``) from [f(x₀) ‖ f(x₁)] per
parameter group: crop box (0:4, MLP), jitter factors (4:8, MLP), blur σ (8, linear), as
seq-JEPA's ``crop_regressor`` / ``jitter_regressor`` / ``blur_regressor``.

Harness choice (recorded in the protocol): ``draws`` fixed augmented pairs per training
image are drawn once and cached in memory, instead of fresh augmentations every probe
epoch; the val split gets one pair per image. Both R² definitions are reported per group.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import Tensor
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from sslequi.actions import ActionOptions
from sslequi.augment.builder import BatchBuilder
from sslequi.augment.config import AugmentConfig
from sslequi.data.base import ImageDataset
from sslequi.evaluation.probes import InputSource
from sslequi.methods.base import Method
from sslequi.types import MethodSpec, collate_samples

# group name → (slice of the 9-d action, head kind) (seq-JEPA engine.py regressors)
AUG_GROUPS: dict[str, tuple[slice, str]] = {
    "crop": (slice(0, 4), "mlp"),
    "jitter": (slice(4, 8), "mlp"),
    "blur": (slice(8, 9), "linear"),
}


class PairFeatureSource(InputSource):
    """Inputs = the stored [f(x₀) ‖ f(x₁)] of pair ``object`` (view index ignored)."""

    def __init__(self, pairs: Tensor, device: torch.device) -> None:
        self.pairs = pairs.to(device, torch.float32)
        self.dim = int(pairs.shape[-1])

    def inputs(self, objects: Tensor, views: Tensor) -> Tensor:
        return self.pairs[objects.to(self.pairs.device)]


def pair_spec(method: Method) -> MethodSpec:
    """The method's view layout, asking only for ``aug_params_9d``."""
    return replace(method.spec(), actions=("aug_params_9d",), rotated_view=None)


@torch.no_grad()
def augmented_pairs(
    method: Method,
    dataset: ImageDataset,
    augment: AugmentConfig,
    part: slice,
    draws: int,
    seed: int,
    device: torch.device,
    batch_size: int = 128,
    progress: bool = True,
    action_options: ActionOptions | None = None,
) -> tuple[Tensor, Tensor]:
    """([M, 2d] features of view pairs, [M, 9] relative actions), M = draws · len(dataset)."""
    if augment.name == "none" or not augment.views:
        raise ValueError(
            "probe 'aug_params' needs an augmentation recipe that records parameters; "
            f"the run's augment is {augment.name!r}"
        )
    spec = pair_spec(method)
    builder = BatchBuilder(  # make_batch_builder's class, with a seeded generator
        spec,
        dataset.info,
        augment,
        action_options or ActionOptions(),
        generator=torch.Generator(device=device).manual_seed(seed),
    )
    was_training = method.training
    method.eval()
    features, actions = [], []
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate_samples)
    bar = tqdm(total=draws * len(dataset), desc="aug pairs", unit="img", disable=not progress)
    try:
        for _ in range(draws):
            for raw in loader:
                batch = builder(raw.to(device))
                y0 = method.encode(batch.views[0])[:, part]
                y1 = method.encode(batch.views[1])[:, part]
                features.append(torch.cat([y0, y1], dim=1).float().cpu())
                actions.append(batch.actions.pair("aug_params_9d").float().cpu())
                bar.update(raw.labels.shape[0])
    finally:
        bar.close()
        method.train(was_training)
    return torch.cat(features), torch.cat(actions)
