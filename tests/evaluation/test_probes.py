"""Known-answer tests of the trained probes on features whose answer is known."""

from __future__ import annotations

import torch

from sslequi.actions import ActionOptions
from sslequi.evaluation import metrics
from sslequi.evaluation.probes import (
    CachedSource,
    SplitData,
    action_targets,
    draw_views,
    epoch_generator,
    fit_probe,
    label_targets,
)
from sslequi.evaluation.protocol import HeadTraining
from sslequi.evaluation.runner import regression_scores
from tests.evaluation.toys import sample_latents

CPU = torch.device("cpu")


def _latents(n: int, v: int, seed: int) -> torch.Tensor:
    import numpy as np

    rng = np.random.default_rng(seed)
    return torch.from_numpy(sample_latents(rng, n * v)).float().reshape(n, v, 7)


def test_one_hot_labels_give_full_linear_accuracy() -> None:
    classes = 5
    train_labels = torch.arange(200) % classes
    val_labels = torch.arange(50) % classes
    train_feats = torch.nn.functional.one_hot(train_labels, classes).float().unsqueeze(1)
    val_feats = torch.nn.functional.one_hot(val_labels, classes).float().unsqueeze(1)
    train = SplitData("train", CachedSource(train_feats, CPU), label_targets(train_labels), 200, 1)
    val = SplitData("val", CachedSource(val_feats, CPU), label_targets(val_labels), 50, 1)
    training = HeadTraining(head="linear", lr=0.05, epochs=30, batch_size=32)
    outcome = fit_probe(
        train, [val], "classification", classes, 1, training, 0, CPU, progress=False
    )
    assert metrics.topk_accuracy(outcome.predictions["val"], outcome.targets["val"], 1) == 1.0
    assert metrics.topk_accuracy(outcome.predictions["train"], outcome.targets["train"], 1) == 1.0


def _relative_quaternion_features(latents: torch.Tensor, noise: float, seed: int) -> torch.Tensor:
    """Two views per object: view a's features = quat(R_aᵀR_b) + noise, b the other view."""
    targets = action_targets(latents, "rotation_quat", ActionOptions())
    n = latents.shape[0]
    objects = torch.arange(n)
    forward = targets(objects, torch.tensor([[0, 1]]).expand(n, 2))
    backward = targets(objects, torch.tensor([[1, 0]]).expand(n, 2))
    gen = torch.Generator().manual_seed(seed)
    feats = torch.stack([forward, backward], dim=1)
    return feats + noise * torch.randn(feats.shape, generator=gen)


def test_features_holding_the_target_give_r2_near_one_with_a_linear_head() -> None:
    """y₁ = quat(R₁ᵀR₂) + N(0, 0.01²): R² ≥ 0.99 under both definitions (linear head)."""
    train_lat, val_lat = _latents(600, 2, 0), _latents(200, 2, 1)
    train = SplitData(
        "train",
        CachedSource(_relative_quaternion_features(train_lat, 0.01, 0), CPU),
        action_targets(train_lat, "rotation_quat", ActionOptions()),
        600,
        2,
    )
    val = SplitData(
        "val",
        CachedSource(_relative_quaternion_features(val_lat, 0.01, 1), CPU),
        action_targets(val_lat, "rotation_quat", ActionOptions()),
        200,
        2,
    )
    training = HeadTraining(head="linear", lr=0.02, epochs=60, batch_size=64)
    outcome = fit_probe(train, [val], "regression", 4, 2, training, 0, CPU, progress=False)
    scores = regression_scores(outcome.targets["val"], outcome.predictions["val"], quaternion=True)
    assert scores["r2_global"][0] >= 0.99
    assert scores["r2_per_component"][0] >= 0.99
    assert abs(scores["r2_per_component"][1]) < 1e-9  # floor of R²_pc is 0
    assert 0.15 < scores["r2_global"][1] < 0.32  # floor of R²_SIE ≈ 0.229 (200 samples)
    assert scores["sign_invariant_error"][0] < 0.01


def test_random_features_give_per_component_r2_near_zero() -> None:
    train_lat, val_lat = _latents(1500, 4, 2), _latents(500, 4, 3)
    gen = torch.Generator().manual_seed(0)
    train = SplitData(
        "train",
        CachedSource(torch.randn(1500, 4, 8, generator=gen), CPU),
        action_targets(train_lat, "rotation_quat", ActionOptions()),
        1500,
        4,
    )
    val = SplitData(
        "val",
        CachedSource(torch.randn(500, 4, 8, generator=gen), CPU),
        action_targets(val_lat, "rotation_quat", ActionOptions()),
        500,
        4,
    )
    training = HeadTraining(head="linear", lr=0.01, epochs=10, batch_size=128)
    outcome = fit_probe(train, [val], "regression", 4, 2, training, 0, CPU, progress=False)
    assert abs(metrics.r2_per_component(outcome.targets["val"], outcome.predictions["val"])) < 0.05


def test_early_stopping_uses_a_holdout_of_training_objects() -> None:
    labels = torch.arange(100) % 3
    feats = torch.randn(100, 1, 6, generator=torch.Generator().manual_seed(0))
    train = SplitData("train", CachedSource(feats, CPU), label_targets(labels), 100, 1)
    training = HeadTraining(
        head="mlp",
        hidden=[32],
        epochs=200,
        batch_size=16,
        early_stopping=True,
        holdout_fraction=0.2,
        patience=3,
    )
    outcome = fit_probe(train, [], "classification", 3, 1, training, 0, CPU, progress=False)
    assert outcome.selection == "best_holdout"
    assert outcome.n_fit == 80 and outcome.counts["holdout"] == 20
    assert outcome.epochs_run < 200  # random labels: the holdout score stops improving
    assert 1 <= outcome.best_epoch <= outcome.epochs_run


def test_epoch_draws_are_seeded_and_distinct() -> None:
    a = draw_views(50, 8, 2, epoch_generator(3, 5))
    b = draw_views(50, 8, 2, epoch_generator(3, 5))
    c = draw_views(50, 8, 2, epoch_generator(3, 6))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert bool((a[:, 0] != a[:, 1]).all())
