"""The hypernetwork predictor's init option (models/hypernetwork.py): norm-preserving vs
torch's default, and the CPU recipes' hypernetwork actually trains."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from sslequi.models.hypernetwork import (
    EXPECTED_ACTION_SQ_NORM,
    HypernetworkPredictor,
    PredictorConfig,
    build_predictor,
)


def _gain(predictor: torch.nn.Module, g: torch.Tensor, dim: int) -> float:
    z = torch.randn(g.shape[0], dim, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = predictor(z, g)
    return float((out.norm(dim=1) / z.norm(dim=1)).mean())


def _unit_quaternions(n: int) -> torch.Tensor:
    q = torch.randn(n, 4, generator=torch.Generator().manual_seed(2))
    return torch.nn.functional.normalize(q, dim=1)


@pytest.mark.parametrize("dim", [64, 256])
def test_norm_preserving_keeps_the_norm_and_torch_default_amplifies(dim: int) -> None:
    g = _unit_quaternions(256)
    torch.manual_seed(0)
    preserving = build_predictor(PredictorConfig(init="norm_preserving"), dim, 4, "rotation_quat")
    torch.manual_seed(0)
    default = build_predictor(PredictorConfig(), dim, 4, "rotation_quat")
    assert abs(_gain(preserving, g, dim) - 1.0) < 0.1
    assert abs(_gain(default, g, dim) / math.sqrt(dim / 12) - 1.0) < 0.1


def test_norm_preserving_scales_by_the_encodings_expected_norm() -> None:
    """rot_color g = [q, Δhues]: E‖g‖² = 1 + 2/6; its typical g keeps the norm."""
    assert EXPECTED_ACTION_SQ_NORM["rot_color"] == pytest.approx(4 / 3)
    gen = torch.Generator().manual_seed(3)
    hues = torch.rand(2, 4096, 2, generator=gen)
    g = torch.cat([_unit_quaternions(4096), hues[1] - hues[0]], dim=1)
    assert float(g.pow(2).sum(1).mean()) == pytest.approx(4 / 3, rel=0.03)
    predictor = build_predictor(PredictorConfig(init="norm_preserving"), 128, 6, "rot_color")
    assert abs(_gain(predictor, g, 128) - 1.0) < 0.1
    explicit = PredictorConfig(init="norm_preserving", init_action_sq_norm=4.0)
    predictor = build_predictor(explicit, 128, 4, "rotation_quat")
    assert abs(_gain(predictor, 2 * _unit_quaternions(512), 128) - 1.0) < 0.1


def test_biases_start_at_zero_and_unknown_encodings_or_deep_kind_are_refused() -> None:
    config = PredictorConfig(init="norm_preserving", bias_pred=True, bias_hypernet=True)
    predictor = build_predictor(config, 8, 4, "rotation_quat")
    assert isinstance(predictor, HypernetworkPredictor)
    ((weight, bias),) = predictor.predicted_parameters(_unit_quaternions(3))
    assert torch.equal(bias, torch.zeros_like(bias)) and weight.abs().sum() > 0
    with pytest.raises(ValueError, match="init_action_sq_norm"):
        build_predictor(PredictorConfig(init="norm_preserving"), 8, 8, "all_latents")
    with pytest.raises(ValueError, match="linear hypernetwork only"):
        PredictorConfig(init="norm_preserving", hypernetwork="deep")
    with pytest.raises(ValueError, match="hypernetwork predictor"):
        PredictorConfig(init="norm_preserving", type="mlp")
    with pytest.raises(ValueError, match="predictor.init must be"):
        PredictorConfig(init="xavier")


def test_cpu_recipes_use_norm_preserving_and_paper_recipes_the_official_init() -> None:
    from sslequi.cli.pretrain import compose_config

    for recipe in ("sie", "sie_nopvar", "sie_rotcolor", "sie_onlyequi", "equimod", "sen"):
        cpu = compose_config([f"experiment={recipe}_3diebench_cpu"])
        paper = compose_config([f"experiment={recipe}_3diebench"])
        assert cpu.method.predictor.init == "norm_preserving", recipe
        assert paper.method.predictor.init == "torch_default", recipe
        assert cpu.backbone.width_multiplier == 0.25 and cpu.train.batch_size == 128


def test_hypernetwork_weights_move_under_the_cpu_settings(tmp_path: Path) -> None:
    """A few Adam steps at the _cpu recipe's lr change the norm-preserving A_k by > 1 %."""
    from sslequi.cli.pretrain import compose_config
    from sslequi.config import resolve_config
    from sslequi.data.render.generate import RenderConfig, generate
    from sslequi.train.checkpoint import load_method
    from sslequi.train.run import pretrain

    root = tmp_path / "render"
    generate(RenderConfig.from_preset("tiny", root, objects_per_class=4, progress=False))
    overrides = [
        "experiment=sie_3diebench_cpu",
        f"dataset.root={root}",
        "dataset.resolution=32",
        "train.steps=5",
        "train.batch_size=8",
        f"run_dir={tmp_path / 'run'}",
        "logger.mode=disabled",
        "train.device=cpu",
    ]
    cfg = compose_config(overrides)
    from sslequi.build import build_method
    from sslequi.train.trainer import seed_everything

    seed_everything(cfg.seed)
    initial = build_method(resolve_config(cfg)).predictor.hypernet.weight.detach().clone()
    trained = load_method(pretrain(cfg)).method.predictor.hypernet.weight.detach()
    change = float((trained - initial).norm() / initial.norm())
    assert change > 0.01, change
