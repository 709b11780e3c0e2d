"""End-to-end evaluation of test-only methods on the known-answer ``ToyObjects`` dataset."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from sslequi.actions import ActionOptions
from sslequi.evaluation.features import (
    FeatureCache,
    FeatureCacheMismatch,
    FeatureKey,
    extract_features,
    get_features,
    load_features,
)
from sslequi.evaluation.predictor import UnsupportedProbe
from sslequi.evaluation.probes import absolute_rotation_targets
from sslequi.evaluation.protocol import HeadTraining
from sslequi.evaluation.results import ResultRow
from sslequi.evaluation.runner import EvalConfig, RunIdentity, evaluate_method
from tests.evaluation.toys import PixelMethod, QuatPredictorMethod, ToyConfig, ToyObjects

CPU = torch.device("cpu")


def _datasets(n: int = 48, views: int = 6, latent_dim: int | None = 7) -> dict[str, ToyObjects]:
    cfg = ToyConfig(n_objects=n, views=views, latent_dim=latent_dim)
    return {"train": ToyObjects(cfg, "train"), "val": ToyObjects(cfg, "val")}


def _fast(head: str = "linear", epochs: int = 5) -> HeadTraining:
    return HeadTraining(head=head, hidden=[32], lr=0.05, epochs=epochs, batch_size=32)


def _cfg(**kwargs: object) -> EvalConfig:
    kwargs.setdefault("protocol", "paper")  # these tests pin the paper protocol's counts
    cfg = EvalConfig(progress=False, **kwargs)  # type: ignore[arg-type]
    for name in ("linear", "rot90", "rotation", "abs_rotation", "color"):
        setattr(cfg.probe, name, _fast(epochs=30 if name == "linear" else 5))
    return cfg


def _value(rows: list[ResultRow], probe: str, metric: str, split: str, part: str) -> float:
    found = [
        r.value
        for r in rows
        if (r.probe, r.metric, r.split, r.protocol.part) == (probe, metric, split, part)
    ]
    assert len(found) == 1, (probe, metric, split, part, len(found))
    return found[0]


def test_pipeline_linear_knn_regressions_and_parts() -> None:
    cfg = _cfg(probes=["linear", "knn", "rotation", "color", "abs_rotation", "rot90"])
    rows = evaluate_method(PixelMethod(), _datasets(), cfg, RunIdentity(run="toy", method="pixel"))
    # the invariant part holds the one-hot label: perfect classification, by probe and kNN
    assert _value(rows, "linear", "top1", "val", "invariant") == 1.0
    assert _value(rows, "knn", "top1", "val", "invariant") == 1.0
    for probe in ("rotation", "color", "abs_rotation"):
        for metric in ("r2_global", "r2_per_component"):
            assert _value(rows, probe, metric, "train", "full") <= 1.0
            assert _value(rows, probe, metric, "val", "equivariant") <= 1.0
    rotation = [r for r in rows if r.probe == "rotation" and r.split == "val"]
    metrics = {r.metric for r in rotation}
    assert {"r2_global_canonical", "sign_invariant_error", "r2_per_component_canonical"} <= metrics
    floor = next(r.floor for r in rotation if r.metric == "r2_per_component")
    assert floor is not None and abs(floor) < 1e-9
    row = rotation[0]
    assert row.protocol.head == "linear" and row.protocol.bn_mode == "eval"
    assert row.protocol.n_train == 48 and row.n == 48 and row.protocol.image_size == 4
    assert {r.protocol.part for r in rows} == {"full", "invariant", "equivariant"}
    rot90 = [r for r in rows if r.probe == "rot90" and r.metric == "accuracy"]
    assert rot90 and all(r.floor == 0.25 for r in rot90)


def test_absolute_rotation_targets_match_scipy_and_are_learnable() -> None:
    data = _datasets(n=96)
    latents = torch.stack([data["val"].views_of(i).latents for i in range(96)])
    targets = absolute_rotation_targets(latents, ActionOptions())
    objects, views = torch.arange(96), torch.full((96, 1), 3)
    expected = torch.from_numpy(data["val"].quats[:, 3]).float()
    assert torch.allclose(targets(objects, views), expected, atol=1e-5)
    cfg = _cfg(probes=["abs_rotation"], parts=["equivariant"])
    cfg.probe.abs_rotation = HeadTraining(head="linear", lr=0.05, epochs=60, batch_size=32)
    rows = evaluate_method(PixelMethod(), data, cfg)
    # the pixels hold (q + 1)/2 quantised to 8 bits: a linear map recovers q
    assert _value(rows, "abs_rotation", "r2_global", "val", "equivariant") > 0.9


def test_perfect_predictor_gives_mrr_one_and_pre_zero() -> None:
    cfg = _cfg(probes=["mrr"])
    rows = evaluate_method(QuatPredictorMethod("exact"), _datasets(n=40, views=10), cfg)
    assert _value(rows, "mrr", "mrr", "val", "equivariant") == 1.0
    assert _value(rows, "mrr", "hit@1", "val", "equivariant") == 1.0
    assert _value(rows, "mrr", "pre", "val", "equivariant") < 1e-3


def test_random_predictor_gives_chance_mrr() -> None:
    cfg = _cfg(probes=["mrr"])
    rows = evaluate_method(QuatPredictorMethod("random"), _datasets(n=300, views=10), cfg)
    row = next(r for r in rows if r.metric == "mrr")
    assert row.floor is not None and abs(row.floor - 0.2929) < 1e-3  # (1/10) Σ 1/r
    assert abs(row.value - row.floor) < 0.03  # 3000 queries: std ≈ 0.005
    assert abs(_value(rows, "mrr", "hit@1", "val", "equivariant") - 0.1) < 0.03


def test_mrr_without_predictor_fails_before_compute() -> None:
    with pytest.raises(UnsupportedProbe, match="needs a learned predictor"):
        evaluate_method(PixelMethod(), _datasets(), _cfg(probes=["mrr"]))


def test_predictor_width_mismatch_fails_loudly() -> None:
    method = QuatPredictorMethod("exact", projector_in=20)  # equivariant part is 32 wide
    with pytest.raises(ValueError, match="rejected equivariant features of width 32"):
        evaluate_method(method, _datasets(), _cfg(probes=["mrr"]))


def test_probe_needing_missing_latents_fails() -> None:
    with pytest.raises(UnsupportedProbe, match="needs dataset latents of width ≥ 10"):
        evaluate_method(PixelMethod(), _datasets(), _cfg(probes=["translation_object"]))
    with pytest.raises(UnsupportedProbe, match="has none"):
        evaluate_method(PixelMethod(), _datasets(latent_dim=None), _cfg(probes=["rotation"]))


def test_translation_probes_on_translated_latents() -> None:
    cfg = _cfg(probes=["translation_object", "translation_base"], parts=["full"])
    cfg.probe.translation_object = _fast()
    cfg.probe.translation_base = _fast()
    rows = evaluate_method(PixelMethod(), _datasets(latent_dim=10), cfg)
    assert {r.probe for r in rows} == {"translation_object", "translation_base"}
    assert all(r.floor is not None and abs(r.floor) < 0.2 for r in rows if r.metric == "r2_global")


def test_feature_cache_hit_mismatch_float16_and_train_bn(tmp_path: Path) -> None:
    method, data = PixelMethod(), _datasets(n=8)
    key = FeatureKey("abc", "toy", "train", 4, "all", "float16")
    cache = FeatureCache(tmp_path)
    first = get_features(method, data["train"], key, cache, CPU, progress=False)
    assert first.features.dtype == torch.float16 and first.features.shape == (8, 6, 48)
    calls = []
    original = method.encode
    method.encode = lambda images: calls.append(1) or original(images)  # type: ignore[method-assign]
    again = get_features(method, data["train"], key, cache, CPU, progress=False)
    assert not calls and torch.equal(again.features, first.features)  # cache hit reused
    other = FeatureKey("abd", "toy", "train", 4, "all", "float16")
    with pytest.raises(FeatureCacheMismatch, match="checkpoint"):
        load_features(cache.path(key), other)
    with pytest.raises(ValueError, match="train-mode BN"):
        extract_features(
            method, data["train"], FeatureKey("a", "t", "s", 4, "all", "float32", "train"), CPU
        )


def test_cached_and_live_paths_agree_and_train_bn_restores_buffers() -> None:
    method = PixelMethod(batchnorm=True)
    with torch.no_grad():  # non-trivial running statistics
        method.backbone.norm.running_mean.uniform_(0.0, 0.5)
        method.backbone.norm.running_var.uniform_(0.5, 2.0)
    data = _datasets(n=40)
    cached = evaluate_method(method, data, _cfg(probes=["rotation", "linear"], parts=["full"]))
    live = evaluate_method(
        method, data, _cfg(probes=["rotation", "linear"], parts=["full"], mode="live")
    )
    for row in cached:
        twin = next(r for r in live if r.key()[:3] == row.key()[:3])
        assert twin.protocol.feature_mode == "live" and row.protocol.feature_mode == "cached"
        assert abs(twin.value - row.value) < 1e-3, (row.probe, row.metric, row.split)
    before = {k: v.clone() for k, v in method.state_dict().items()}
    trained_bn = evaluate_method(
        method, data, _cfg(probes=["rotation"], parts=["full"], bn_mode="train")
    )
    assert all(
        r.protocol.bn_mode == "train" and r.protocol.feature_mode == "live" for r in trained_bn
    )
    assert all(torch.equal(before[k], v) for k, v in method.state_dict().items())


def test_ood_split_is_scored_with_sign_aware_rotation_metrics() -> None:
    data = _datasets()
    data["ood"] = ToyObjects(ToyConfig(n_objects=48, views=6, seed=7), "val")
    rows = evaluate_method(PixelMethod(), data, _cfg(probes=["rotation"], parts=["full"]))
    ood = {r.metric for r in rows if r.split == "ood"}
    assert {"r2_global", "r2_per_component", "r2_global_canonical", "sign_invariant_error"} <= ood
