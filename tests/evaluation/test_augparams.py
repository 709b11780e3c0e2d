"""Augmentation-parameter R² through the augmentation pipeline (evaluation.md §9)."""

from __future__ import annotations

import pytest
import torch

from sslequi.augment.config import load_augment_config
from sslequi.evaluation.augparams import augmented_pairs
from sslequi.evaluation.predictor import UnsupportedProbe
from sslequi.evaluation.runner import EvalConfig, evaluate_method
from tests.evaluation.toys import SequencePixelMethod, ToyImages

CPU = torch.device("cpu")


def test_pairs_are_replayable_and_carry_the_9d_action() -> None:
    method, data = SequencePixelMethod(), ToyImages(16)
    recipe = load_augment_config("seqjepa")
    a = augmented_pairs(method, data, recipe, slice(0, 768), 2, 5, CPU, progress=False)
    b = augmented_pairs(method, data, recipe, slice(0, 768), 2, 5, CPU, progress=False)
    assert a[0].shape == (32, 2 * 768) and a[1].shape == (32, 9)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])  # seeded: same draws
    assert float(a[1][:, :4].abs().sum()) > 0  # crop boxes differ between the two views


def test_aug_params_probe_reports_both_r2_per_group() -> None:
    cfg = EvalConfig(probes=["aug_params"], augment="seqjepa", progress=False)
    cfg.probe.aug_params.epochs = 3
    cfg.probe.aug_params.hidden = [32]
    data = {"train": ToyImages(24, 0), "val": ToyImages(12, 1)}
    rows = evaluate_method(SequencePixelMethod(), data, cfg)
    metrics = {(r.metric, r.split) for r in rows}
    for group in ("crop", "jitter", "blur"):
        for definition in ("r2_global", "r2_per_component"):
            assert (f"{group}_{definition}", "val") in metrics
            assert (f"{group}_{definition}", "train") in metrics
    row = next(r for r in rows if r.metric == "crop_r2_per_component" and r.split == "train")
    assert row.n == 4 * 24 and row.floor is not None and abs(row.floor) < 1e-9
    assert "seqjepa" in row.protocol.extra


def test_aug_params_without_recipe_fails() -> None:
    data = {"train": ToyImages(8, 0), "val": ToyImages(8, 1)}
    with pytest.raises(UnsupportedProbe, match="augmentation recipe"):
        evaluate_method(SequencePixelMethod(), data, EvalConfig(probes=["aug_params"]))
