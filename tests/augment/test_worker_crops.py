"""Full-image crops cut in DataLoader workers (ImageFolder ``full_image_crops``, issue 11):
boxes on the full decoded image in source pixels, seeded per item (the same in the main
process and a worker), replay from the re-decoded source within 1e-5, the other ops
batched on the device, and clear config errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader
from torchvision.io import encode_jpeg

from sslequi.augment.builder import BatchBuilder, worker_crop_records
from sslequi.augment.config import AugmentConfig, ViewConfig
from sslequi.augment.ops import AugmentConfigError
from sslequi.augment.worker_crops import FullImageCrops, full_image_crops_for
from sslequi.data.folders import ImageFolder, ImageFolderConfig
from sslequi.train.sampler import ResumableSampler, SeededItems
from sslequi.types import MethodSpec, RawBatch, RotatedViewSpec, collate_samples

SIZES = [(37, 50), (50, 37), (41, 41), (30, 64)]  # (H, W): non-square sources
SIDE, ROTATED = 16, 8


def _tree(root: Path) -> None:
    g = torch.Generator().manual_seed(0)
    for c, name in enumerate(["n01", "n02"]):
        folder = root / "train" / name
        folder.mkdir(parents=True)
        for j, (h, w) in enumerate(SIZES):
            image = torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=g)
            (folder / f"img_{c}{j}.JPEG").write_bytes(encode_jpeg(image).numpy().tobytes())


def _recipe(crop: dict[str, object] | None = None) -> AugmentConfig:
    ops: list[object] = [
        crop or {"op": "crop", "size": SIDE, "scale": [0.08, 1.0], "interpolation": "bicubic"},
        {"op": "flip", "p": 0.5},
        {"op": "color_jitter", "p": 0.8, "brightness": 0.4, "contrast": 0.4, "saturation": 0.2, "hue": 0.1},
    ]  # fmt: skip
    rotated = ViewConfig(
        ops=[{"op": "crop", "size": ROTATED, "scale": [0.05, 0.14]}, {"op": "flip", "p": 0.5}],
        name="rotated",
    )
    return AugmentConfig(name="test", views=[ViewConfig(ops=ops, count=2)], rotated_view=rotated)


SPEC = MethodSpec(num_views=2, rotated_view=RotatedViewSpec(size=ROTATED, scale=(0.05, 0.14)))


def _setup(tmp_path: Path) -> tuple[ImageFolder, BatchBuilder, FullImageCrops]:
    _tree(tmp_path)
    dataset = ImageFolder(ImageFolderConfig(root=str(tmp_path), resolution=SIDE), "train", 2)
    builder = BatchBuilder(SPEC, dataset.info, _recipe())
    crops = full_image_crops_for(builder.pipeline, SIDE)
    dataset.set_full_image_crops(crops)
    return dataset, builder, crops


def _batch(dataset: ImageFolder, workers: int) -> RawBatch:
    sampler = ResumableSampler(len(dataset), seed=3)
    loader = DataLoader(
        SeededItems(dataset), batch_size=8, sampler=sampler, num_workers=workers,
        collate_fn=collate_samples,
    )  # fmt: skip
    return next(iter(loader))


def test_boxes_cover_the_full_image_in_source_pixels(tmp_path: Path) -> None:
    dataset, builder, _ = _setup(tmp_path)
    raw = _batch(dataset, workers=0)
    assert raw.images.shape == (8, 2, 3, SIDE, SIDE) and raw.images.dtype == torch.uint8
    assert raw.rotated is not None and raw.rotated.shape == (8, 3, ROTATED, ROTATED)
    assert raw.crop_boxes is not None and raw.crop_boxes.shape == (8, 3, 7)
    batch = builder(raw)
    sources = torch.tensor([list(dataset.decode(int(i)).shape[-2:]) for i in raw.index])
    for view in batch.params:
        crop = view.crop
        assert crop is not None and crop.source_hw is not None and crop.size == (SIDE, SIDE)
        torch.testing.assert_close(crop.source_hw, sources.float())
        assert bool((crop.top + crop.height <= crop.source_hw[:, 0]).all())
        assert bool((crop.left + crop.width <= crop.source_hw[:, 1]).all())
    # The old path cut every box from the centre SIDE × SIDE square; these use the image.
    boxes = raw.crop_boxes[:, :2].reshape(-1, 7)
    assert bool(((boxes[:, 2] > SIDE) | (boxes[:, 3] > SIDE)).any())
    assert [v.shape for v in batch.views] == [(8, 3, SIDE, SIDE)] * 2
    assert batch.rotated is not None and batch.rotated.images.shape == (32, 3, ROTATED, ROTATED)
    # The other ops ran on the device: flips and jitter were drawn per sample.
    assert batch.params[0].flip is not None and batch.params[0].color_jitter is not None


def test_worker_and_main_process_draw_the_same_boxes(tmp_path: Path) -> None:
    dataset, _, _ = _setup(tmp_path)
    main, worker = _batch(dataset, workers=0), _batch(dataset, workers=1)
    assert torch.equal(main.crop_boxes, worker.crop_boxes)  # type: ignore[arg-type]
    assert torch.equal(main.images, worker.images)
    assert torch.equal(main.rotated, worker.rotated)  # type: ignore[arg-type]


def test_replay_re_decodes_the_source_and_reproduces_the_views(tmp_path: Path) -> None:
    dataset, builder, crops = _setup(tmp_path)
    raw = _batch(dataset, workers=0)
    assert raw.crop_boxes is not None
    pipeline = builder.pipeline
    view_crops, rotated_crop = worker_crop_records(raw, 2)
    params, rotated_params = pipeline.sample_precropped(raw.images, view_crops, rotated_crop)
    first = builder.render(raw, params, rotated_params)
    # Replay: re-decode each source and cut the recorded boxes, then render the same params.
    replayed = [
        crops.replay(dataset.decode(int(i)), raw.crop_boxes[b]) for b, i in enumerate(raw.index)
    ]
    raw_again = RawBatch(
        images=torch.stack([r[0] for r in replayed]),
        latents=None,
        labels=raw.labels,
        index=raw.index,
        rotated=torch.stack([r[1] for r in replayed]),  # type: ignore[misc]
        crop_boxes=raw.crop_boxes,
    )
    second = builder.render(raw_again, params, rotated_params)
    for a, b in zip(first.views, second.views, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    assert first.rotated is not None and second.rotated is not None
    torch.testing.assert_close(first.rotated.images, second.rotated.images, atol=1e-5, rtol=0)


def test_recipes_the_workers_cannot_cut_fail_at_config_time(tmp_path: Path) -> None:
    _tree(tmp_path)
    dataset = ImageFolder(ImageFolderConfig(root=str(tmp_path), resolution=SIDE), "train", 2)
    no_crop = AugmentConfig(name="x", views=[ViewConfig(ops=[{"op": "flip"}], count=2)])
    pipeline = BatchBuilder(MethodSpec(num_views=2), dataset.info, no_crop).pipeline
    with pytest.raises(AugmentConfigError, match="must start with a crop"):
        full_image_crops_for(pipeline, SIDE)
    two_sizes = AugmentConfig(
        name="y",
        views=[
            ViewConfig(ops=[{"op": "crop", "size": SIDE}]),
            ViewConfig(ops=[{"op": "crop", "size": 8}]),
        ],
    )
    pipeline = BatchBuilder(MethodSpec(num_views=2), dataset.info, two_sizes).pipeline
    with pytest.raises(AugmentConfigError, match="different sizes"):
        full_image_crops_for(pipeline, SIDE)
