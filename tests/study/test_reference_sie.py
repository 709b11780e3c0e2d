"""benchmarks/reference_sie.py: the independent SIE / VICReg reference, at tiny scale."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch

from sslequi.actions import compute_actions
from sslequi.evaluation.results import load_results
from sslequi.study import group_runs, headline_table

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "reference_sie.py"


@pytest.fixture(scope="module")
def ref() -> ModuleType:
    spec = importlib.util.spec_from_file_location("reference_sie", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["reference_sie"] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


def _hinge(z: np.ndarray) -> float:
    return float(np.mean([max(0.0, 1.0 - math.sqrt(np.var(col, ddof=1) + 1e-4)) for col in z.T]))


def _cov(z: np.ndarray) -> float:
    c = np.cov(z, rowvar=False)  # (B − 1) denominator, centred
    d = z.shape[1]
    return sum(c[i, j] ** 2 for i in range(d) for j in range(d) if i != j) / d


def test_sie_loss_matches_hand_computation(ref: ModuleType) -> None:
    rng = np.random.default_rng(0)
    b, d = 5, 3
    z_inv, z_equi, z2_inv, z2_equi = (rng.normal(size=(b, d)) for _ in range(4))
    g = rng.normal(size=(b, 4))
    A = 0.2 * rng.normal(size=(4, d, d))  # small: the predictions' variance hinge is active
    pred = np.stack([sum(g[n, k] * A[k] @ z_equi[n] for k in range(4)) for n in range(b)])

    predictor = ref.HyperPredictor(d).double()
    with torch.no_grad():
        predictor.A.copy_(torch.from_numpy(A))
    as_t = lambda x: torch.from_numpy(x)  # noqa: E731
    with torch.no_grad():
        got_pred = predictor(as_t(z_equi), as_t(g))
    np.testing.assert_allclose(got_pred.numpy(), pred, rtol=1e-10)

    terms = ref.sie_terms(as_t(z_inv), as_t(z_equi), as_t(z2_inv), as_t(z2_equi), got_pred)
    got = float(ref.sie_loss(terms, ref.Coefficients()))

    z, z2 = np.hstack([z_inv, z_equi]), np.hstack([z2_inv, z2_equi])
    inv = np.mean((z_inv - z2_inv) ** 2)
    equi = np.mean((pred - z2_equi) ** 2)
    var = 0.5 * _hinge(z) + 0.5 * _hinge(z2)
    pvar = 0.5 * _hinge(pred)
    cov = _cov(z) + _cov(z2)
    expected = 10 * inv + 0.45 * 10 * equi + 10 * (var + pvar) + 1 * cov
    assert got == pytest.approx(expected, rel=1e-10)
    # every term is active here, so a dropped term or a wrong weight would show
    assert min(inv, equi, var, pvar, cov) > 0.01

    vic = ref.vicreg_loss(ref.vicreg_terms(as_t(z), as_t(z2)), ref.Coefficients())
    vic_expected = 10 * np.mean((z - z2) ** 2) + 10 * var + cov
    assert float(vic) == pytest.approx(vic_expected, rel=1e-10)


def test_hypernetwork_init_preserves_norm(ref: ModuleType) -> None:
    torch.manual_seed(0)
    d = 256
    predictor = ref.HyperPredictor(d)
    assert predictor.A.std().item() == pytest.approx(1 / math.sqrt(d), rel=0.02)
    z = torch.randn(512, d)
    g = torch.nn.functional.normalize(torch.randn(512, 4), dim=1)  # unit quaternions
    ratio = predictor(z, g).norm(dim=1) / z.norm(dim=1)
    assert ratio.mean().item() == pytest.approx(1.0, abs=0.05)
    # the torch-default nn.Linear init would give ≈ √(d/12) ≈ 4.6 here
    assert ratio.max().item() < 1.5


def test_quaternion_matches_the_harness_action(ref: ModuleType) -> None:
    rng = np.random.default_rng(1)
    a1, a2 = rng.uniform(-np.pi / 2, np.pi / 2, size=(2, 64, 3))
    ours = ref.relative_quaternion(a1, a2)
    latents = torch.zeros(64, 2, 7, dtype=torch.float64)
    latents[:, 0, :3], latents[:, 1, :3] = torch.from_numpy(a1), torch.from_numpy(a2)
    harness = compute_actions(("rotation_quat",), latents, []).pair("rotation_quat")
    np.testing.assert_allclose(ours, harness.numpy(), atol=1e-12)  # signs included


def test_main_at_tiny_scale(
    ref: ModuleType, tmp_path: Path, tiny_render: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "out"
    argv = ["--root", str(tiny_render), "--out", str(out), "--seeds", "0", "--steps", "2"]
    argv += ["--batch-size", "4", "--log-every", "1", "--probes", "linear", "rotation"]
    argv += ["--probe-epochs", "2", "--probe-min-steps", "0"]
    assert ref.main(argv) == 0

    manifest = json.loads((out / "study.json").read_text())
    assert [(e["name"], e["recipe"], e["seed"], e["single_seed"]) for e in manifest] == [
        ("reference_sie", "-", 0, False),
        ("reference_vicreg", "-", 0, False),
    ]
    assert set(group_runs(out)) == {"reference_sie", "reference_vicreg"}
    for name in ("reference_sie", "reference_vicreg"):
        rows = [r for r in load_results(out / f"{name}_s0") if r.split == "val"]
        assert any(r.probe == "linear" and r.metric == "top1" for r in rows)
        assert any(r.probe == "rotation" and r.metric == "r2_global" for r in rows)
        assert {r.method for r in rows} == {name}
        assert {(r.protocol.epochs, r.protocol.min_steps) for r in rows} == {(2, 0)}
    sie_parts = {r.protocol.part for r in load_results(out / "reference_sie_s0")}
    assert {"full", "invariant", "equivariant"} <= sie_parts
    assert {r.protocol.part for r in load_results(out / "reference_vicreg_s0")} == {"full"}

    sie = json.loads((out / "reference_sie_s0" / "reference.json").read_text())
    assert sie["hypernet_rel_change"] > 0  # two Adam steps moved it
    assert set(sie["cpu_s"]) == {"load", "pretrain", "evaluate"}
    assert (out / "reference_sie_s0" / ref.PRETRAINED).is_file()  # for --resume
    vicreg = json.loads((out / "reference_vicreg_s0" / "reference.json").read_text())
    assert vicreg["hypernet_rel_change"] is None
    assert (out / "comparison.md").is_file()

    printed = capsys.readouterr().out
    assert headline_table(group_runs(out)) in printed
    assert "hypernetwork ‖A − A₀‖/‖A₀‖" in printed
