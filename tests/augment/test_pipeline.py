"""Pipelines: exact replay, chunk sharing, shipped recipes, and every config-time error."""

from __future__ import annotations

import pytest
import torch

from sslequi.augment.config import (
    AugmentConfig,
    ViewConfig,
    available_recipes,
    load_augment_config,
)
from sslequi.augment.pipeline import AugmentConfigError, ViewPipeline, build_pipeline, parse_op
from sslequi.data.base import DatasetInfo
from sslequi.types import MethodSpec, RotatedViewSpec

torch.set_num_threads(1)

INFO = DatasetInfo(
    num_classes=10,
    mean=(0.5, 0.45, 0.4),
    std=(0.25, 0.25, 0.25),
    image_size=24,
    latent_dim=None,
    distinct_views=False,
)
ALL_OPS = [
    {"op": "crop", "size": 20, "scale": [0.3, 1.0]},
    {"op": "flip", "p": 0.5},
    {
        "op": "color_jitter",
        "p": 0.8,
        "brightness": 0.4,
        "contrast": 0.4,
        "saturation": 0.4,
        "hue": 0.1,
    },
    {"op": "grayscale", "p": 0.3},
    {"op": "blur", "p": 0.5, "sigma": [0.1, 2.0], "kernel_size": 3},
    {"op": "solarize", "p": 0.3},
    {"op": "rotation", "p": 0.5, "degrees": [-20, 20]},
    {"op": "affine", "p": 0.5, "translate": [0.1, 0.1], "scale": [0.9, 1.1]},
    {"op": "rot90", "p": 0.5},
]


def _images(b: int = 16, v: int = 1, size: int = 24, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (b, v, 3, size, size), generator=g, dtype=torch.uint8)


def test_whole_pipeline_replays_exactly() -> None:
    pipeline = build_pipeline(
        AugmentConfig(name="all", views=[ViewConfig(ops=ALL_OPS, count=None)]),
        MethodSpec(num_views=3, structure="triplets"),
        INFO,
    )
    images = _images()
    params, _ = pipeline.sample(images, torch.Generator().manual_seed(1))
    views, _ = pipeline.apply(images, params)
    replay, _ = pipeline.apply(images, params)
    assert all(torch.equal(a, b) for a, b in zip(views, replay, strict=True))
    assert [tuple(v.shape) for v in views] == [(16, 3, 20, 20)] * 3
    assert not torch.equal(views[0], views[1])  # views differ from each other
    # same seed → same parameters → same views
    again, _ = pipeline.sample(images, torch.Generator().manual_seed(1))
    views_again, _ = pipeline.apply(images, again)
    assert all(torch.equal(a, b) for a, b in zip(views, views_again, strict=True))


def test_pipeline_equals_ops_applied_one_by_one() -> None:
    """The fused crop+flip pass equals running crop then flip, then the rest."""
    view = ViewPipeline([parse_op(o) for o in ALL_OPS], (24, 24))
    x = _images()[:, 0]
    params = view.sample(16, (24, 24), x.device, torch.Generator().manual_seed(2))
    out = view.apply(x, params)
    ref = x.float() / 255.0
    for op in view.ops:
        ref = op.apply(ref, getattr(params, op.record_field))
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)


def test_normalisation_uses_dataset_constants() -> None:
    pipeline = build_pipeline(AugmentConfig(), MethodSpec(), INFO)
    images = _images()
    params, _ = pipeline.sample(images)
    views, _ = pipeline.apply(images, params)
    mean = torch.tensor(INFO.mean).view(1, 3, 1, 1)
    expected = (images[:, 0].float() / 255 - mean) / 0.25
    torch.testing.assert_close(views[1], expected)
    assert params[0].is_empty()


@pytest.mark.parametrize("independent", [True, False])
def test_chunk_shared_views_share_params_within_chunks(independent: bool) -> None:
    config = AugmentConfig(
        name="care",
        views=[ViewConfig(ops=ALL_OPS[:5], count=2, chunk_shared=True)],
        chunks=4,
        independent_chunks=independent,
    )
    pipeline = build_pipeline(config, MethodSpec(num_views=2, chunk_shared_params=True), INFO)
    images = _images(b=16)
    params, _ = pipeline.sample(images, torch.Generator().manual_seed(3))
    for view in params:
        for record in view.records().values():
            box = record.map_tensors(lambda t: t.reshape(4, 4, *t.shape[1:]))
            for field in ("applied", "top", "brightness", "sigma", "order"):
                if hasattr(box, field):
                    t = getattr(box, field)
                    assert torch.equal(t, t[:, :1].expand_as(t)), field  # shared in a chunk
        crop = view.crop
        assert crop is not None
        tops = crop.top.reshape(4, 4)[:, 0]
        heights = crop.height.reshape(4, 4)[:, 0]
        differ = bool((tops != tops[0]).any() or (heights != heights[0]).any())
        assert differ == independent  # chunks draw their own pair only when independent
    with pytest.raises(AugmentConfigError, match="not divisible"):
        pipeline.sample(_images(b=10))


@pytest.mark.parametrize("name", available_recipes())
def test_shipped_recipes_load_and_build(name: str) -> None:
    config = load_augment_config(name)
    assert config.name == name
    counts = {
        "seqjepa": 4,
        "seqjepa_tinyimagenet": 4,
        "care": 4,
        "care_imagenet100": 4,
        "multicrop": 8,
    }
    structures = {
        "seqjepa": "sequence",
        "seqjepa_tinyimagenet": "sequence",
        "multicrop": "multicrop",
    }
    spec = MethodSpec(
        num_views=counts.get(name, 2),
        structure=structures.get(name, "pairs"),  # type: ignore[arg-type]
        chunk_shared_params=name in ("care", "care_imagenet100"),
        rotated_view=RotatedViewSpec(size=16) if name.startswith("essl") else None,
    )
    size = 256 if name in ("essl_imagenet", "multicrop") else 32
    info = DatasetInfo(10, (0.5,) * 3, (0.25,) * 3, size, None, False)
    pipeline = build_pipeline(config, spec, info)
    assert len(pipeline.views) == spec.num_views
    assert (pipeline.rotated is not None) == (spec.rotated_view is not None)


def _view(*ops: dict) -> AugmentConfig:
    return AugmentConfig(name="bad", views=[ViewConfig(ops=list(ops), count=None)])


@pytest.mark.parametrize(
    ("config", "spec", "message"),
    [
        (_view({"op": "sharpen"}), MethodSpec(), "unknown augmentation op 'sharpen'"),
        (_view({"op": "flip", "p": 1.5}), MethodSpec(), r"p=1.5 is outside \[0, 1\]"),
        (_view({"op": "grayscale", "p": -0.1}), MethodSpec(), "outside"),
        (_view({"op": "crop", "scale": [0.9, 0.2]}), MethodSpec(), "scale range .* inverted"),
        (_view({"op": "blur", "sigma": [2.0, 0.1]}), MethodSpec(), "sigma range .* inverted"),
        (_view({"op": "crop", "scale": [0.5, 1.5]}), MethodSpec(), "larger than the image"),
        (_view({"op": "crop", "size": 64}), MethodSpec(), "larger than the 24×24 image"),
        (_view({"op": "crop", "sizes": 8}), MethodSpec(), r"no field\(s\) \['sizes'\]"),
        (_view({"p": 0.5}), MethodSpec(), "'op' key"),
        (_view({"op": "flip"}, {"op": "flip"}), MethodSpec(), "appears twice"),
        (_view({"op": "normalize"}, {"op": "flip"}), MethodSpec(), "normalize must be the last"),
        (_view({"op": "blur", "kernel_size": 4}), MethodSpec(), "odd"),
        (
            AugmentConfig(name="x", views=[ViewConfig(count=3)]),
            MethodSpec(num_views=2),
            "produces 3 views .* declares 2",
        ),
        (
            AugmentConfig(name="x", views=[ViewConfig(count=None), ViewConfig(count=None)]),
            MethodSpec(),
            "at most one view entry",
        ),
        (_view(), MethodSpec(chunk_shared_params=True), "chunk-shared parameters"),
        (
            AugmentConfig(name="x", views=[ViewConfig(count=2, chunk_shared=True)]),
            MethodSpec(),
            "does not declare chunk_shared_params",
        ),
        (
            AugmentConfig(name="x", chunks=0),
            MethodSpec(),
            "chunks must be",
        ),
        (
            AugmentConfig(name="x", structure="sequence", views=[ViewConfig(count=None)]),
            MethodSpec(),
            "written for structure 'sequence'",
        ),
        (AugmentConfig(), MethodSpec(actions=("aug_params_9d",)), "applies no random op"),
    ],
)
def test_bad_configs_fail_clearly(config: AugmentConfig, spec: MethodSpec, message: str) -> None:
    with pytest.raises(AugmentConfigError, match=message):
        build_pipeline(config, spec, INFO)


def test_seqjepa_recipe_rejects_a_pair_method() -> None:
    with pytest.raises(
        AugmentConfigError, match=r"produces 4 views \(3 'observed' \+ 1 'target'\)"
    ):
        build_pipeline(
            load_augment_config("seqjepa"), MethodSpec(num_views=2, structure="sequence"), INFO
        )


def test_unknown_recipe_lists_alternatives() -> None:
    with pytest.raises(FileNotFoundError, match="available: .*simclr"):
        load_augment_config("simclrr")
