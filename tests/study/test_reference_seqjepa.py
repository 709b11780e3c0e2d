"""benchmarks/reference_seqjepa.py: the independent seq-JEPA reference, at tiny scale."""

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

from sslequi.data.render.generate import RenderConfig, generate
from sslequi.evaluation.results import load_results
from sslequi.study import group_runs

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def ref() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "reference_seqjepa", BENCHMARKS / "reference_seqjepa.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["reference_seqjepa"] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


def test_loss_matches_hand_computation(ref: ModuleType) -> None:
    prediction = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    target = torch.tensor([[0.0, 2.0], [3.0, 3.0]])
    # cosines 0 and 1 → 1 − mean = 0.5
    assert float(ref.jepa_loss(prediction, target)) == pytest.approx(0.5)


def test_ema_momentum_schedule(ref: ModuleType) -> None:
    assert ref.ema_momentum(0, 10) == pytest.approx(0.996)
    assert ref.ema_momentum(5, 10) == pytest.approx(1 - 0.004 * 0.5)
    assert ref.ema_momentum(10, 10) == pytest.approx(1.0)


def test_aggregate_is_permutation_invariant_and_reads_actions(ref: ModuleType) -> None:
    torch.manual_seed(0)
    model = ref.SeqJEPAModel(width=4).eval()
    d = model.encoder.feature_dim
    z = torch.randn(5, 3, d)
    actions = torch.randn(5, 2, 4)
    base = model.aggregate(z, actions)
    # permute the first two tokens with their actions (the last token's slot is zero)
    swapped = model.aggregate(z[:, [1, 0, 2]], actions[:, [1, 0]])
    torch.testing.assert_close(swapped, base, atol=1e-5, rtol=1e-5)
    changed = actions.clone()
    changed[:, 0] += 1.0
    assert (model.aggregate(z, changed) - base).abs().max() > 1e-3
    uncond = ref.SeqJEPAModel(width=4, conditioned=False).eval()
    uncond.load_state_dict(model.state_dict())
    torch.testing.assert_close(uncond.aggregate(z, changed), uncond.aggregate(z, actions))


def test_sequences_have_distinct_views_and_their_actions(ref: ModuleType) -> None:
    rng = np.random.default_rng(0)
    images = [
        torch.from_numpy(rng.integers(0, 255, (6, 3, 4, 4), dtype=np.uint8)) for _ in range(3)
    ]
    latents = [rng.uniform(-1.5, 1.5, (6, 7)) for _ in range(3)]
    mean, std = torch.zeros(1, 3, 1, 1), torch.ones(1, 3, 1, 1)
    pairs = ref.PairSampler(images, latents, mean, std, seed=0)
    views, actions = ref.SequenceSampler(pairs).batch(2, 4)
    assert views.shape == (2, 4, 3, 4, 4) and actions.shape == (2, 3, 4)
    for b in range(2):
        matches = [
            next(
                i for o in range(3) for i in range(6) if torch.equal(images[o][i].float() / 255, v)
            )
            for v in views[b]
        ]
        assert len(set(matches)) == 4  # distinct renders
    # every action is a unit quaternion
    np.testing.assert_allclose(actions.norm(dim=-1).numpy(), 1.0, atol=1e-6)


def test_main_at_tiny_scale(ref: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = tmp_path / "render"
    generate(RenderConfig.from_preset("tiny", root, objects_per_class=8, progress=False))
    out = tmp_path / "out"
    argv = ["--root", str(root), "--out", str(out), "--seeds", "0", "--steps", "2"]
    argv += ["--batch-size", "4", "--width", "4", "--log-every", "1", "--warmup", "1"]
    argv += ["--variants", "unconditioned", "--probes", "agg_linear"]
    assert ref.main(argv) == 0
    name = "reference_seqjepa_uncond"
    assert set(group_runs(out)) == {name}
    rows = [r for r in load_results(out / f"{name}_s0") if r.split == "val"]
    assert {r.probe for r in rows} == {"agg_linear"}
    record = json.loads((out / f"{name}_s0" / "reference.json").read_text())
    assert len(record["losses"]) == 2 and all(math.isfinite(x) for x in record["losses"])
    assert (out / f"{name}_s0" / ref.PRETRAINED).is_file()
    assert name in capsys.readouterr().out
    assert ref.main([*argv, "--resume"]) == 0  # the same settings: kept, not retrained
    assert "done (reference.json), kept" in capsys.readouterr().out
    assert ref.main([*argv, "--resume", "--lr", "1e-4"]) == 0
    assert "other settings in reference.json, retrained" in capsys.readouterr().out
    record = json.loads((out / f"{name}_s0" / "reference.json").read_text())
    assert record["settings"]["lr"] == 1e-4
