"""benchmarks/reference_care.py: the independent SimCLR / CARE reference, at tiny scale."""

from __future__ import annotations

import importlib.util
import json
import math
import random
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch

from sslequi.data.render.generate import RenderConfig, generate
from sslequi.evaluation.results import load_results
from sslequi.study import group_runs

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "reference_care.py"


@pytest.fixture(scope="module")
def ref() -> ModuleType:
    spec = importlib.util.spec_from_file_location("reference_care", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["reference_care"] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def _quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "disabled")


def test_nt_xent_matches_a_loop(ref: ModuleType) -> None:
    rng = np.random.default_rng(0)
    z_1, z_2 = rng.normal(size=(2, 5, 3))
    tau = 0.5
    u = np.vstack([z_1, z_2])
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    total = 0.0
    for i in range(10):
        p = (i + 5) % 10
        denominator = sum(math.exp(u[i] @ u[k] / tau) for k in range(10) if k != i)
        total += -math.log(math.exp(u[i] @ u[p] / tau) / denominator)
    got = ref.nt_xent(torch.from_numpy(z_1), torch.from_numpy(z_2), tau)
    assert float(got) == pytest.approx(total / 10, rel=1e-10)


def test_care_equivariance_matches_a_loop_and_vanishes_under_rotation(ref: ModuleType) -> None:
    rng = np.random.default_rng(1)
    z_1, z_2 = rng.normal(size=(2, 6, 4))
    z_1 /= np.linalg.norm(z_1, axis=1, keepdims=True)
    z_2 /= np.linalg.norm(z_2, axis=1, keepdims=True)
    n = 3  # two chunks of three
    expected = []
    for c in range(2):
        rows = range(c * n, c * n + n)
        s = sum((z_1[i] @ z_1[j] - z_2[i] @ z_2[j]) ** 2 for i in rows for j in rows if i != j)
        expected.append(2 / n * s)
    got = ref.care_equivariance(torch.from_numpy(z_1), torch.from_numpy(z_2), n)
    assert float(got) == pytest.approx(np.mean(expected), rel=1e-10)
    assert float(got) > 0.01  # the check is not vacuous

    q, _ = np.linalg.qr(rng.normal(size=(4, 4)))  # Z² = Z¹Q: Gram matrices agree
    rotated = torch.from_numpy(z_1 @ q)
    assert float(ref.care_equivariance(torch.from_numpy(z_1), rotated, n)) < 1e-20
    with pytest.raises(ValueError, match="chunks of 4"):
        ref.care_equivariance(torch.from_numpy(z_1), rotated, 4)


def test_chunk_shared_views_share_one_pair_per_chunk(ref: ModuleType) -> None:
    image = torch.rand(1, 3, 16, 16)
    images = image.expand(8, 3, 16, 16).clone()  # one image, so outputs differ only by t
    t_1, t_2 = ref.chunk_shared_pair(images, 4, random.Random(0), (0.08, 1.0))
    for view in (t_1, t_2):
        for chunk in (view[:4], view[4:]):
            assert torch.equal(chunk, chunk[:1].expand_as(chunk))  # one t per chunk
        assert not torch.allclose(view[0], view[4])  # independent pairs per chunk
    assert not torch.allclose(t_1[0], t_2[0])  # t₁ ≠ t₂
    per_sample = ref.per_sample_view(images, random.Random(0), (0.08, 1.0))
    assert not torch.allclose(per_sample[0], per_sample[1])  # InfoNCE views: one t per image


def test_params_apply_as_drawn(ref: ModuleType) -> None:
    images = torch.rand(2, 3, 16, 16)
    plain = ref.AugParams((0, 0, 16, 16), False, None, (0, 1, 2, 3), False, None)
    assert torch.allclose(ref.apply_params(images, plain), images)
    flipped = ref.AugParams((0, 0, 16, 16), True, None, (0, 1, 2, 3), True, None)
    grey = images.flip(-1)
    grey = (0.299 * grey[:, 0] + 0.587 * grey[:, 1] + 0.114 * grey[:, 2])[:, None]
    got = ref.apply_params(images, flipped)
    assert torch.allclose(got, grey.expand_as(got), atol=1e-2)  # uint8-style weights


def test_main_at_tiny_scale(ref: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = tmp_path / "render"
    generate(
        RenderConfig.from_preset(
            "tiny", root, objects_per_class=10, views_per_object=8, progress=False
        )
    )
    out = tmp_path / "out"
    argv = ["--root", str(root), "--out", str(out), "--seeds", "0", "--steps", "2"]
    argv += ["--batch-size", "16", "--chunk-size", "8", "--width", "2", "--projector", "16", "8"]
    argv += ["--log-every", "1", "--probes", "knn", "orthogonality", "--families", "crop"]
    assert ref.main(argv) == 0

    assert set(group_runs(out)) == {"reference_simclr", "reference_care"}
    for name in ("reference_simclr", "reference_care"):
        rows = [r for r in load_results(out / f"{name}_s0") if r.split == "val"]
        assert {r.method for r in rows} == {name}
        assert any(r.probe == "knn" and r.metric == "top1" for r in rows)
        parts = {r.protocol.part for r in rows if r.metric == "residual_crop"}
        assert parts == {"full", "projector"}  # the backbone and the unit projector output
        assert all(r.protocol.dataset == "render2d@32" for r in rows)
    care = json.loads((out / "reference_care_s0" / "reference.json").read_text())
    assert care["first_terms"]["equivariance"] > 0
    simclr = json.loads((out / "reference_simclr_s0" / "reference.json").read_text())
    assert "equivariance" not in simclr["first_terms"]

    printed = capsys.readouterr().out
    assert "| reference_care | 1 |" in printed
    assert "projector residual (crop): CARE" in printed
