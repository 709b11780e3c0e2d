"""The orthogonal-equivariance probe: residual 0 for Z² = Z¹Q with Q orthogonal, ≈ its floor
for unrelated features, and the registered probe end to end on a method whose backbone is
exactly flip-equivariant by a permutation (an orthogonal map)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sslequi.augment.config import load_augment_config
from sslequi.evaluation.orthogonality import (
    family_names,
    family_pipelines,
    family_view,
    gram_mismatch,
    relative_residual,
    score_pair,
    shared_pair,
)
from sslequi.evaluation.predictor import UnsupportedProbe
from sslequi.evaluation.results import ResultRow
from sslequi.evaluation.runner import eval_config_from_dict, evaluate_method
from sslequi.methods.base import Method, MethodConfig
from sslequi.types import MethodSpec, StepOutput
from tests.evaluation.toys import ToyImages

torch.set_num_threads(1)


def test_residual_zero_for_an_orthogonal_map_and_near_floor_for_unrelated() -> None:
    g = torch.Generator().manual_seed(0)
    d, n = 8, 16  # n = 2d
    z_1 = torch.randn(n, d, generator=g)
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=g))
    assert relative_residual(z_1, z_1 @ q) == pytest.approx(0.0, abs=1e-6)
    assert gram_mismatch(z_1, z_1 @ q) == pytest.approx(0.0, abs=1e-6)
    related = score_pair(z_1, z_1 @ q, g)
    assert related.residual_floor > 0.5 and related.gram_floor > 0.5
    ratios = []
    for _ in range(20):  # unrelated features: the pairing carries nothing, residual ≈ floor
        scores = score_pair(torch.randn(n, d, generator=g), torch.randn(n, d, generator=g), g)
        ratios.append(scores.residual / scores.residual_floor)
    assert sum(ratios) / len(ratios) == pytest.approx(1.0, abs=0.05)


class PooledPixels(Method):
    """Backbone = 2×2 average-pooled pixels (12-d): a horizontal flip permutes its features."""

    def __init__(self) -> None:
        super().__init__(
            MethodConfig(name="pooled"), nn.Sequential(nn.AvgPool2d(8), nn.Flatten()), 12
        )

    def spec(self) -> MethodSpec:
        return MethodSpec(num_views=2)

    def forward(self, batch: object) -> StepOutput:
        return StepOutput(loss=torch.zeros(()))


def _evaluate(families: list[str], **settings: object) -> list[ResultRow]:
    cfg = eval_config_from_dict(
        {
            "probes": ["orthogonality"],
            "device": "cpu",
            "progress": False,
            "wandb": False,
            "probe": {"orthogonality": {"families": families, "parts": ["full"], **settings}},
        }
    )
    datasets = {"train": ToyImages(32, seed=0), "val": ToyImages(64, seed=1)}
    return evaluate_method(PooledPixels(), datasets, cfg)


def test_probe_scores_families_with_floors() -> None:
    rows = _evaluate(["flip", "color_jitter"])
    by_metric = {row.metric: row for row in rows}
    assert set(by_metric) == {
        "residual_flip",
        "gram_mismatch_flip",
        "residual_color_jitter",
        "gram_mismatch_color_jitter",
    }
    flip = by_metric["residual_flip"]
    assert flip.value == pytest.approx(0.0, abs=1e-6)  # a permutation is orthogonal
    assert flip.floor is not None and flip.floor > 0.05
    assert by_metric["gram_mismatch_flip"].value == pytest.approx(0.0, abs=1e-6)
    jitter = by_metric["residual_color_jitter"]
    assert jitter.value > 1e-3  # jitter is not orthogonal on pixels
    assert flip.n == 20 and flip.split == "val"
    assert "n=24 images/draw" in flip.protocol.extra and flip.protocol.part == "full"


def test_probe_refuses_too_few_images_and_unknown_families() -> None:
    with pytest.raises(UnsupportedProbe, match="2d = 24"):
        _evaluate(["flip"], images=12)
    with pytest.raises(UnsupportedProbe, match="families"):
        _evaluate(["warp"])
    with pytest.raises(UnsupportedProbe, match="draws"):
        _evaluate(["flip"], draws=5)


def test_family_pairs_share_one_draw_across_images() -> None:
    view = family_view(load_augment_config("care"))
    assert family_names(view) == ["crop", "flip", "color_jitter", "grayscale", "blur", "all"]
    info = ToyImages(4).info
    images = ToyImages(4).images
    same = images[:1].repeat(4, 1, 1, 1)
    for family in ("crop", "color_jitter", "all"):
        x_1, x_2 = shared_pair(family_pipelines(view, family, info), same, torch.Generator())
        for x in (x_1, x_2):  # one (t1, t2) for every image: equal inputs, equal outputs
            assert torch.equal(x, x[:1].expand_as(x))
    x_1, x_2 = shared_pair(family_pipelines(view, "flip", info), images, torch.Generator())
    torch.testing.assert_close(x_2, torch.flip(x_1, dims=(-1,)))  # binary: without vs with
