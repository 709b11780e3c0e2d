"""The 2D study command (benchmarks/compare_2d.py) at tiny scale: the render2d adapter,
CARE and SimCLR on two seeds, the linear, kNN and orthogonality probes, one summary."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from sslequi.build import build_dataset
from sslequi.data.render.generate import RenderConfig, generate
from sslequi.data.render2d import Render2DConfig
from sslequi.evaluation.results import load_results


def _script(path: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(Path(path).stem, Path(path))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def _quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


def test_compare_2d_runs_at_tiny_scale(tmp_path: Path) -> None:
    root = tmp_path / "render"
    generate(
        RenderConfig.from_preset(
            "tiny", root, objects_per_class=10, views_per_object=8, progress=False
        )
    )
    val = build_dataset(Render2DConfig(root=str(root), resolution=32), "val", 2)
    train = build_dataset(Render2DConfig(root=str(root), resolution=32), "train", 2)
    assert len(val) == 8 * len(val.objects) and not val.info.distinct_views
    assert val[0].images.shape == (1, 3, 32, 32) and val[0].latents is None
    train_objects = {train.objects.index.paths[o] for o, _ in train.items}
    assert train_objects.isdisjoint({val.objects.index.paths[o] for o, _ in val.items})

    module = _script("benchmarks/compare_2d.py")
    assert module.discover_recipes() == {  # type: ignore[attr-defined]
        "care": "care_render2d_cpu",
        "rotnet": "rotnet_render2d_cpu",
        "simclr": "simclr_render2d_cpu",
    }
    out = tmp_path / "study"
    code = module.main(  # type: ignore[attr-defined]
        [
            "--root", str(root), "--out", str(out), "--steps", "2", "--batch-size", "16",
            "--seeds", "0", "1", "--orthogonality-parts", "full",
            "--extra", "backbone.width_multiplier=0.03125",
            "--probe-epochs", "2", "--probe-min-steps", "0",
        ]
    )  # fmt: skip
    assert code == 0
    summary = (out / "summary.md").read_text()
    assert "probe heads shortened: epochs 2, min steps 0" in summary
    assert "| care | 2 |" in summary and "| simclr | 2 |" in summary
    assert "| rotnet | 2 |" in summary and "RotNet rot90 accuracy" in summary
    assert "full residual (all): CARE" in summary and "top-1: CARE" in summary
    rows = load_results(out / "care_s0")
    metrics = {(r.probe, r.metric) for r in rows if r.split == "val"}
    assert ("linear", "top1") in metrics and ("orthogonality", "residual_crop") in metrics
    linear = next(r for r in rows if r.probe == "linear" and r.split == "val")
    assert linear.protocol.epochs == 2 and linear.protocol.min_steps == 0  # the quick heads
    residual = next(r for r in rows if r.metric == "residual_all" and r.split == "val")
    assert residual.floor is not None and residual.protocol.part == "full"
    assert "n=32 images/draw" in residual.protocol.extra  # 2d with d = 16

    rotnet = {(r.probe, r.metric) for r in load_results(out / "rotnet_s0") if r.split == "val"}
    assert ("rot90", "accuracy") in rotnet and ("linear", "top1") in rotnet
