"""The procedural renderer: determinism, visible rotation, smooth sweeps, class variety."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from sslequi.cli.data import main as data_main
from sslequi.data.render.generate import PRESETS, RenderConfig, generate, object_geometry
from sslequi.data.render.scene import CAMERA_POSITION, ViewBatch, euler_xyz_matrix, sample_latents
from sslequi.data.render.sdf import CompiledShape
from sslequi.data.render.shapes import CLASSES, class_by_name
from sslequi.data.render.tracer import TraceSettings, render_views
from tests.data.conftest import render_tiny

RES = 24


def _views(
    angles: np.ndarray, floor: float = 0.3, spot: tuple[float, float, float] = (0.4, 1.0, 0.1)
) -> ViewBatch:
    latents = np.zeros((len(angles), 7))
    latents[:, :3] = angles
    latents[:, 3] = floor
    latents[:, 4:7] = spot
    return ViewBatch.from_latents(latents)


def _diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.float() - b.float()).abs().mean().item()


def test_enough_classes_mostly_asymmetric() -> None:
    assert len(CLASSES) >= 12
    assert sum(not c.symmetric for c in CLASSES) >= 12
    assert [c.synset for c in CLASSES] == sorted(c.synset for c in CLASSES)
    assert len(PRESETS["small"].classes) == 12 and PRESETS["small"].resolution == 64


def test_objects_fit_the_bounding_sphere_and_vary_within_a_class() -> None:
    for cls in CLASSES:
        shapes = [object_geometry(cls, seed=0, index=i)[0] for i in range(2)]
        for shape in shapes:
            low, high = shape.bounds_low, shape.bounds_high
            # bounds carry a 0.01 margin per side; without it the diagonal is 1
            assert torch.linalg.norm(high - low - 0.02).item() == pytest.approx(1.0, abs=1e-4)
        grid = torch.rand(256, 3, generator=torch.Generator().manual_seed(0)) - 0.5
        assert not torch.allclose(shapes[0].distance(grid), shapes[1].distance(grid)), cls.name


def test_rendering_is_deterministic_by_seed(tmp_path: Path) -> None:
    small = {
        "classes": ("mug", "chair"),
        "objects_per_class": 2,
        "views_per_object": 2,
        "resolution": 16,
    }
    a = render_tiny(tmp_path / "a", **small)
    b = render_tiny(tmp_path / "b", **small)
    c = render_tiny(tmp_path / "c", seed=1, **small)
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert len(files) > 10
    for rel in files:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    assert sorted(p.relative_to(c) for p in c.rglob("*.jpg")) != sorted(
        p.relative_to(a) for p in a.rglob("*.jpg")
    )  # other object ids


def test_same_angles_same_image_other_angles_differ() -> None:
    shape, palette = object_geometry(class_by_name("chair"), seed=0, index=0)
    angles = np.array(
        [[0.3, -0.2, 0.5], [0.3, -0.2, 0.5], [-0.9, 0.7, -1.2], [0.3, -0.2, 0.5 + math.pi / 2]]
    )
    images = render_views(shape, palette, _views(angles), RES)
    assert torch.equal(images[0], images[1])
    assert _diff(images[0], images[2]) > 3.0
    assert _diff(images[0], images[3]) > 3.0


def test_rotation_sweep_is_smooth() -> None:
    shape, palette = object_geometry(class_by_name("airplane"), seed=0, index=1)
    steps = np.linspace(0.0, math.pi / 6, 16)  # 2° steps
    angles = np.stack([np.full_like(steps, 0.2), np.zeros_like(steps), steps], axis=1)
    frames = render_views(shape, palette, _views(angles), RES)
    neighbour = [_diff(frames[i], frames[i + 1]) for i in range(len(frames) - 1)]
    from_start = [_diff(frames[0], f) for f in frames]
    assert max(neighbour) < 0.3 * from_start[-1]
    assert from_start[1] < from_start[4] < from_start[8] < from_start[15]


def test_floor_and_spot_colours_follow_the_latents() -> None:
    shape, palette = object_geometry(class_by_name("mug"), seed=0, index=0)
    angles = np.zeros((2, 3))
    red, blue = (
        render_views(shape, palette, _views(angles, floor=0.0), RES),
        render_views(shape, palette, _views(angles, floor=2 / 3), RES),
    )
    corner_red, corner_blue = red[0, :, 0, 0].float(), blue[0, :, 0, 0].float()
    assert corner_red[0] > corner_red[2] and corner_blue[2] > corner_blue[0]


def test_translation_moves_the_object_to_r_t() -> None:
    shape, palette = object_geometry(class_by_name("table"), seed=0, index=0)
    base = np.zeros((2, 10))
    base[:, 0] = 0.4
    base[:, 3:7] = (0.3, 0.4, 1.0, 0.1)
    base[1, 7:] = (0.4, 0.0, 0.0)
    images = render_views(shape, palette, ViewBatch.from_latents(base), RES)
    assert _diff(images[0], images[1]) > 2.0
    centre = euler_xyz_matrix(base[1, :3]) @ base[1, 7:]
    assert np.linalg.norm(centre) == pytest.approx(0.4)  # R·t keeps |t|
    assert np.linalg.norm(CAMERA_POSITION - np.array([0, 1.768, 1.768])) < 1e-3


def test_sampled_latent_distributions() -> None:
    rng = np.random.default_rng(0)
    lat = sample_latents(rng, 20000, "T")
    assert lat.shape == (20000, 10) and lat.dtype == np.float64
    assert np.all(np.abs(lat[:, :3]) <= math.pi / 2) and np.all(np.abs(lat[:, 7:]) <= 0.5)
    assert abs(lat[:, 4].mean() - math.pi / 8) < 0.01
    ood = sample_latents(rng, 2000, "OOD")
    assert np.all(np.abs(ood[:, :3]) >= math.pi / 2)
    assert 0.4 < (ood[:, :3] < 0).mean() < 0.6


def test_workers_give_identical_files(tmp_path: Path) -> None:
    settings = {
        "classes": ("mug",),
        "objects_per_class": 3,
        "views_per_object": 2,
        "resolution": 16,
    }
    one = render_tiny(tmp_path / "one", **settings)
    two = tmp_path / "two"
    generate(RenderConfig.from_preset("tiny", two, workers=2, progress=False, **settings))
    images = sorted(one.rglob("*.jpg"))
    assert len(images) == 6
    for path in images:
        assert path.read_bytes() == (two / path.relative_to(one)).read_bytes()
    for name in ("train_images.npy", "all_latents_train.npy", "val_labels.npy"):
        assert (one / name).read_bytes() == (two / name).read_bytes()


def test_render3d_and_preview_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli"
    code = data_main(
        ["render3d", "--preset", "tiny", "--out", str(out), "--resolution", "16", "--workers", "1",
         "--objects-per-class", "2", "--views", "2", "--classes", "mug", "lamp", "--variant", "T"]
    )  # fmt: skip
    assert code == 0
    assert np.load(next(out.rglob("latent_0.npy"))).shape == (10,)
    assert data_main(["check", str(out)]) == 0
    assert data_main(["preview", str(out), "--columns", "3", "--size", "32"]) == 0
    png = out / "preview.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "wrote" in capsys.readouterr().out


def test_compiled_shape_matches_per_primitive_formulas() -> None:
    from sslequi.data.render.shapes import box, capsule, cone, cylinder, ellipsoid, torus

    points = torch.tensor([[0.0, 0.0, 2.0], [3.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.5, 0.5, 0.5]])
    cases = [
        (box((0, 0, 0), (1, 1, 1)), [1.0, 2.0, -1.0, -0.5]),
        (capsule((0, 0, -1), (0, 0, 1), 0.5), [0.5, 2.5, -0.5, math.sqrt(0.5) - 0.5]),
        (cylinder((0, 0, -1), (0, 0, 1), 1.0), [1.0, 2.0, -1.0, math.sqrt(0.5) - 1]),
        (ellipsoid((0, 0, 0), (1, 1, 1)), [1.0, 2.0, -1.0, math.sqrt(0.75) - 1]),
        (torus((0, 0, 0), (0, 0, 1), 1.0, 0.25), [math.sqrt(5) - 0.25, 1.75, 0.75, None]),
        (cone((0, 0, -1), (0, 0, 1), 0.5, 0.5), [0.5, 2.5, -0.5, None]),
    ]
    for prim, expected in cases:
        got = CompiledShape([prim]).distance(points)
        for g, e in zip(got.tolist(), expected, strict=True):
            if e is not None:
                assert g == pytest.approx(e, abs=1e-5), prim.kind
    carved = CompiledShape([box((0, 0, 0), (1, 1, 1)), box((0, 0, 0), (0.5, 0.5, 0.5), carve=True)])
    assert carved.distance(torch.zeros(1, 3)).item() == pytest.approx(0.5)


def test_supersampling_averages_a_finer_render() -> None:
    shape, palette = object_geometry(class_by_name("chair"), seed=0, index=0)
    views = _views(np.array([[0.3, -0.2, 0.5]]))
    fine = render_views(shape, palette, views, 2 * 16)
    smooth = render_views(shape, palette, views, 16, TraceSettings(supersample=2))
    expected = fine.double().view(1, 3, 16, 2, 16, 2).mean(dim=(3, 5))
    assert smooth.shape == (1, 3, 16, 16)
    assert (smooth.double() - expected).abs().max() <= 0.5
