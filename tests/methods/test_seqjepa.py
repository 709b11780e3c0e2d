"""seq-JEPA (methods.md §9): the loss by hand, the sequence batch's actions, the EMA
schedule, the order-free aggregator, the ablation, config errors and exact resume."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from sslequi.augment.builder import make_batch_builder
from sslequi.build import build_dataset
from sslequi.data.synthetic import SyntheticConfig
from sslequi.methods.seqjepa import SeqJEPA, SeqJEPAConfig, seqjepa_loss
from sslequi.types import collate_samples
from tests.methods.conftest import TinyBackbone, spec_batch


def _method(**overrides: object) -> SeqJEPA:
    torch.manual_seed(0)
    config = SeqJEPAConfig(
        action_embed_dim=16, predictor_hidden=32, online_probe_hidden=16, **overrides
    )
    return SeqJEPA(config, TinyBackbone(16), 16)


def test_loss_matches_hand_computation() -> None:
    prediction = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    target = torch.tensor([[0.0, 2.0], [2.0, 2.0]])
    # cos = 0 and 1: L = 1 − (0 + 1)/2
    assert seqjepa_loss(prediction, target).item() == pytest.approx(0.5)
    prediction = torch.tensor([[3.0, 4.0]])
    target = torch.tensor([[4.0, 3.0]])
    assert seqjepa_loss(prediction, target).item() == pytest.approx(1.0 - 24.0 / 25.0)


def test_target_gets_no_gradient_and_shapes() -> None:
    method = _method()
    batch = spec_batch(method.spec(), batch_size=6)
    assert method.spec().num_views == 4 and method.spec().structure == "sequence"
    output = method(batch)
    output.loss.backward()
    assert all(p.grad is None for p in method.target_backbone.parameters())
    assert method.agg_token.grad is not None
    assert output.features[0].shape == (6, method.d_model) == (6, 32)
    assert set(output.terms) >= {"jepa", "online_action_mse", "online_action_r2"}


def test_agg_token_starts_at_zero_and_architecture() -> None:
    method = _method()
    assert torch.count_nonzero(method.agg_token) == 0
    layers = method.aggregator.layers
    assert len(layers) == 3 and not layers[0].norm_first
    assert layers[0].self_attn.num_heads == 4
    assert layers[0].linear1.out_features == 4 * method.d_model
    assert isinstance(method.aggregator.norm, torch.nn.LayerNorm)
    projection, norm = method.action_embedding
    assert projection.bias is None and not norm.affine
    assert method.predictor[0].bias is None and method.predictor[0].in_features == 32 + 16


def test_sequence_batch_actions_equal_the_rotations_of_its_views() -> None:
    config = SyntheticConfig(resolution=16, n_objects=8, n_val_objects=4, views_per_object=8)
    method = _method(observed_views=3)
    dataset = build_dataset(config, "train", method.spec().num_views)
    raw = collate_samples([dataset[i] for i in range(4)])
    builder = make_batch_builder(method.spec(), dataset.info, None)
    batch = builder(raw)
    assert batch.num_views == 4 and batch.latents is not None
    latents = batch.latents.double().numpy()
    for b in range(4):  # M + 1 distinct views, without replacement
        assert len({tuple(row) for row in latents[b].round(6)}) == 4
    quats = batch.actions.get("rotation_quat")
    assert quats.shape == (4, 3, 4)
    for b in range(4):
        for i in range(3):
            first = Rotation.from_euler("xyz", latents[b, i, :3])
            second = Rotation.from_euler("xyz", latents[b, i + 1, :3])
            expected = (first.inv() * second).as_matrix()
            got = Rotation.from_quat(quats[b, i].double().numpy()).as_matrix()
            assert np.allclose(got, expected, atol=1e-5)


def test_ema_schedule_per_epoch_cosine_at_three_points() -> None:
    method = _method()
    method.on_train_start(steps_per_epoch=10, total_steps=100)  # E = 10 epochs

    def expected(epoch: int) -> float:
        return 1 - (1 - 0.996) * (math.cos(math.pi * epoch / 10) + 1) / 2

    assert method.momentum_at(1, 100) == pytest.approx(0.996)  # epoch 0
    assert method.momentum_at(10, 100) == pytest.approx(0.996)  # last step of epoch 0
    assert method.momentum_at(51, 100) == pytest.approx(expected(5)) == pytest.approx(0.998)
    assert method.momentum_at(100, 100) == pytest.approx(expected(9))
    # The update moves the target by exactly (1 − τ) towards the online encoder.
    with torch.no_grad():
        for p in method.backbone.parameters():
            p.add_(1.0)
    before = [p.clone() for p in method.target_backbone.parameters()]
    method.on_step_end(51, 100)
    for old, new, online in zip(
        before, method.target_backbone.parameters(), method.backbone.parameters(), strict=True
    ):
        assert torch.allclose(new, 0.998 * old + 0.002 * online, atol=1e-6)


def test_aggregator_is_order_free_but_reads_the_actions() -> None:
    method = _method(dropout=0.0).eval()
    batch = spec_batch(method.spec(), batch_size=5)
    actions = batch.actions.get("rotation_quat")
    z = torch.randn(5, 3, 16)
    tokens = method.tokens(z, actions[:, :2])
    with torch.no_grad():
        reference = method.aggregate_tokens(tokens)
        for order in ([2, 0, 1], [1, 2, 0], [2, 1, 0]):
            permuted = method.aggregate_tokens(tokens[:, order])
            assert (permuted - reference).abs().max().item() <= 1e-5
        changed = actions[:, :2].clone()
        changed[:, 0] += 1.0
        moved = method.aggregate(z, changed)
    assert (moved - reference).abs().max().item() > 1e-3
    # The last observed token's action slot is zero; the others carry e(a_i).
    assert torch.count_nonzero(tokens[:, -1, 16:]) == 0
    assert torch.count_nonzero(tokens[:, 0, 16:]) > 0


def test_without_action_conditioning_actions_are_ignored() -> None:
    method = _method(action_conditioning=False, dropout=0.0, online_action_probe=False).eval()
    batch = spec_batch(method.spec(), batch_size=5)
    with torch.no_grad():
        first = method(batch).loss
        batch.actions.rotation_quat = torch.randn_like(batch.actions.get("rotation_quat"))
        second = method(batch).loss
        tokens = method.tokens(torch.randn(5, 3, 16), batch.actions.rotation_quat[:, :2])
    assert first.item() == pytest.approx(second.item(), abs=1e-6)
    assert torch.count_nonzero(tokens[..., 16:]) == 0


def test_bad_options_fail_naming_them() -> None:
    with pytest.raises(ValueError, match="seqjepa.action"):
        SeqJEPAConfig(action="quaternion")
    with pytest.raises(ValueError, match="observed_views"):
        SeqJEPAConfig(observed_views=0)
    with pytest.raises(ValueError, match="num_heads"):
        SeqJEPAConfig(num_heads=5).validate(16)
    with pytest.raises(ValueError, match="momentum_schedule"):
        SeqJEPAConfig(momentum_schedule="linear")  # type: ignore[arg-type]


SEQJEPA_TINY = [
    "method=seqjepa",
    "method.observed_views=2",
    "method.action_embed_dim=16",
    "method.predictor_hidden=32",
    "method.online_probe_hidden=16",
    "train.steps=4",
    "train.log_every=2",
]


def test_resume_is_exact_with_the_ema_target(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sslequi.cli.pretrain import compose_config
    from sslequi.train.checkpoint import load_checkpoint
    from sslequi.train.run import pretrain
    from tests.train.conftest import TINY

    monkeypatch.setenv("WANDB_MODE", "disabled")
    common = [o for o in TINY if not o.startswith(("method.projector=", "train.steps="))]
    common += SEQJEPA_TINY
    straight = tmp_path / "straight"
    pretrain(compose_config([*common, f"run_dir={straight}"]))
    resumed = tmp_path / "resumed"
    pretrain(compose_config([*common, "train.stop_after=2", f"run_dir={resumed}"]))
    assert load_checkpoint(resumed / "checkpoints" / "last.pt")["step"] == 2
    pretrain(compose_config([*common, f"run_dir={resumed}"]))
    a = load_checkpoint(straight / "checkpoints" / "last.pt")
    b = load_checkpoint(resumed / "checkpoints" / "last.pt")
    assert a["step"] == b["step"] == 4
    target_keys = [k for k in a["method"] if k.startswith("target_backbone.")]
    assert target_keys
    for key, value in a["method"].items():
        assert torch.equal(value, b["method"][key]), key
    # The target moved away from its initial copy of the encoder (updates happened).
    online = {
        k.removeprefix("backbone."): v for k, v in a["method"].items() if k[:9] == "backbone."
    }
    differs = [
        not torch.equal(a["method"][k], online[k.removeprefix("target_backbone.module.")])
        for k in target_keys
        if a["method"][k].is_floating_point() and "running" not in k
    ]
    assert any(differs)


def test_2d_sequence_actions_are_normalised_over_the_sequence_then_differenced() -> None:
    """methods.md §9.3: the (B, M + 1, 9) parameters, each L2-normalised across the views of
    its sample, then a_i = t_{i+1} − t_i; computed here by hand from the recorded params."""
    from sslequi.actions import ActionOptions
    from sslequi.augment.config import load_augment_config
    from sslequi.data.base import DatasetInfo
    from sslequi.types import RawBatch

    method = _method(observed_views=3, action="aug_params_9d")
    info = DatasetInfo(10, (0.5,) * 3, (0.25,) * 3, 32, None, False)
    builder = make_batch_builder(
        method.spec(),
        info,
        load_augment_config("seqjepa"),
        ActionOptions(normalize_per_sequence=True),
    )
    gen = torch.Generator().manual_seed(3)
    raw = RawBatch(
        images=torch.randint(0, 256, (4, 1, 3, 32, 32), dtype=torch.uint8, generator=gen),
        latents=None,
        labels=torch.zeros(4, dtype=torch.long),
        index=torch.arange(4),
    )
    torch.manual_seed(3)
    batch = builder(raw)
    actions = batch.actions.get("aug_params_9d")
    assert actions.shape == (4, 3, 9)
    for b in range(4):
        rows = []
        for params in batch.params:
            crop, jitter, blur = params.crop, params.color_jitter, params.blur
            assert crop is not None and jitter is not None and blur is not None
            rows.append(
                [
                    float(crop.top[b]),
                    float(crop.left[b]),
                    float(crop.height[b]),
                    float(crop.width[b]),
                    float(jitter.brightness[b]),
                    float(jitter.contrast[b]),
                    float(jitter.saturation[b]),
                    float(jitter.hue[b]),
                    float(blur.sigma[b]),
                ]
            )
        norms = [math.sqrt(sum(row[k] ** 2 for row in rows)) or 1.0 for k in range(9)]
        scaled = [[row[k] / norms[k] for k in range(9)] for row in rows]
        for i in range(3):
            expected = [scaled[i + 1][k] - scaled[i][k] for k in range(9)]
            assert actions[b, i].tolist() == pytest.approx(expected, abs=1e-5)
    output = method(batch)  # the method consumes the 2D sequence as it is built
    assert torch.isfinite(output.loss)
