"""Known answers for the small-set probe protocol (protocol.py): on ~350 train objects it
reads what closed-form ridge reads on the same pairs, and pure noise reads its floor."""

from __future__ import annotations

import pytest
import torch

from sslequi.actions import ActionOptions
from sslequi.evaluation.probes import (
    CachedSource,
    SplitData,
    action_targets,
    all_view_tuples,
    epoch_draws,
    fit_probe,
)
from sslequi.evaluation.protocol import HeadTraining, ProbeSettings
from sslequi.evaluation.runner import regression_scores
from tests.evaluation.test_probes import _latents, _relative_quaternion_features

CPU = torch.device("cpu")
NOISE = 1.6  # ridge on these pairs reads R² per-component ≈ 0.1 (asserted below)


def _split(name: str, n: int, seed: int, noise: float | None) -> SplitData:
    latents = _latents(n, 2, seed)
    if noise is None:
        gen = torch.Generator().manual_seed(100 + seed)
        feats = torch.randn(n, 2, 4, generator=gen)
    else:
        feats = _relative_quaternion_features(latents, noise, seed)
    targets = action_targets(latents, "rotation_quat", ActionOptions())
    return SplitData(name, CachedSource(feats, CPU), targets, n, 2)


def _pairs(split: SplitData) -> tuple[torch.Tensor, torch.Tensor]:
    objects, views = all_view_tuples(torch.arange(split.num_objects), split.num_views, 2)
    return split.source.inputs(objects, views), split.targets(objects, views)


def _ridge_scores(train: SplitData, val: SplitData, alpha: float = 1.0) -> dict[str, float]:
    """Closed-form ridge (with intercept) fit on every train pair, scored on every val pair."""
    x, y = _pairs(train)
    x_val, y_val = _pairs(val)
    mean_x, mean_y = x.mean(0), y.mean(0)
    xc = (x - mean_x).double()
    w = torch.linalg.solve(
        xc.T @ xc + alpha * torch.eye(x.shape[1]).double(), xc.T @ (y - mean_y).double()
    )
    prediction = ((x_val - mean_x).double() @ w).float() + mean_y
    scores = regression_scores(y_val, prediction, quaternion=True)
    return {name: value for name, (value, _) in scores.items()}


def _small_set(settings: ProbeSettings | None = None) -> HeadTraining:
    settings = settings or ProbeSettings()
    return settings.small_set.apply(settings.rotation, single_view=False)


def test_small_set_reads_what_ridge_reads_on_a_weak_signal() -> None:
    train, val = _split("train", 350, 0, NOISE), _split("val", 300, 1, NOISE)
    ridge = _ridge_scores(train, val)
    assert 0.06 < ridge["r2_per_component"] < 0.16  # the weak signal the test is about
    outcome = fit_probe(train, [val], "regression", 4, 2, _small_set(), 0, CPU, progress=False)
    probe = regression_scores(outcome.targets["val"], outcome.predictions["val"], quaternion=True)
    assert abs(probe["r2_per_component"][0] - ridge["r2_per_component"]) < 0.02
    assert abs(probe["r2_global"][0] - ridge["r2_global"]) < 0.02
    assert outcome.counts["val"] == 300 * 2  # every ordered pair of every val object
    assert outcome.steps >= 600 and outcome.selection == "best_holdout"


def test_small_set_on_pure_noise_reads_the_floor() -> None:
    train, val = _split("train", 350, 2, None), _split("val", 300, 3, None)
    outcome = fit_probe(train, [val], "regression", 4, 2, _small_set(), 0, CPU, progress=False)
    scores = regression_scores(outcome.targets["val"], outcome.predictions["val"], quaternion=True)
    for definition in ("r2_global", "r2_per_component"):
        value, floor = scores[definition]
        assert floor is not None and abs(value - floor) < 0.01, (definition, value, floor)


def test_small_set_settings_are_applied_over_the_probe_settings() -> None:
    settings = ProbeSettings()
    settings.rotation.lr = 3e-4
    rotation = settings.small_set.apply(settings.rotation, single_view=False)
    linear = settings.small_set.apply(settings.linear, single_view=True)
    assert rotation.lr == 3e-4 and rotation.standardize and rotation.early_stopping
    assert rotation.draws_per_object == 16 and rotation.min_steps == 600
    assert rotation.holdout_fraction >= 0.15 and rotation.score_all_views
    assert rotation.hidden == [512, 512]
    assert linear.all_views and linear.head == "linear" and linear.draws_per_object == 1


def test_epoch_draws_cover_every_view_or_k_pairs_per_object() -> None:
    objects = torch.tensor([3, 5, 9])
    gen = torch.Generator().manual_seed(0)
    every = HeadTraining(head="linear", all_views=True)
    objs, views = epoch_draws(objects, 4, 1, every, gen)
    assert sorted(zip(objs.tolist(), views[:, 0].tolist(), strict=True)) == [
        (o, v) for o in (3, 5, 9) for v in range(4)
    ]
    pairs = HeadTraining(draws_per_object=5)
    objs, views = epoch_draws(objects, 4, 2, pairs, gen)
    assert torch.equal(torch.bincount(objs, minlength=10)[objects], torch.tensor([5, 5, 5]))
    assert bool((views[:, 0] != views[:, 1]).all())
    o, v = all_view_tuples(torch.tensor([0, 1]), 3, 2)
    assert (
        len(o) == 2 * 6
        and len({(a, b, c) for a, (b, c) in zip(o.tolist(), v.tolist(), strict=True)}) == 12
    )


def test_probe_protocols_benchmark_runs(capsys: pytest.CaptureFixture[str]) -> None:
    """``benchmarks/probe_protocols.py`` (the README's figures) at a tiny size."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parents[2] / "benchmarks" / "probe_protocols.py"
    spec = importlib.util.spec_from_file_location("probe_protocols", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--objects", "40", "--val-objects", "30", "--min-steps", "20"]) == 0
    lines = capsys.readouterr().out.splitlines()
    readers = [line.split(" | ")[1] for line in lines[2:]]
    assert readers == ["ridge (closed form)", "small_set", "paper", "small_set", "paper"]
