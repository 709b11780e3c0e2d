"""CARE (methods.md §8): the Gram-matching loss against hand-computed values and a loop, the
InfoNCE terms against NT-Xent and CARE's own definitions, and training steps on both bases
through the chunk-shared augmentation."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from sslequi.augment.builder import make_batch_builder
from sslequi.augment.config import load_augment_config
from sslequi.data.base import DatasetInfo
from sslequi.methods.care import (
    CARE,
    CAREConfig,
    care_equivariance_loss,
    contrastive_terms,
    nt_xent_logits,
)
from sslequi.methods.losses import nt_xent
from sslequi.types import RawBatch

torch.set_num_threads(1)
CIFAR_LIKE = DatasetInfo(10, (0.49, 0.48, 0.45), (0.2, 0.2, 0.2), 16, None, False)


def test_equivariance_loss_hand_computed() -> None:
    # chunk 0: Z¹ = (e1, e2) has G¹_01 = 0; Z² = (e1, e1) has G²_01 = 1.
    # L_0 = (2/2)·[(0 − 1)² + (0 − 1)²] = 2. Chunk 1 identical in both: L_1 = 0.
    e1, e2 = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    z_1 = torch.stack([e1, e2, e1, e2])
    z_2 = torch.stack([e1, e1, e1, e2])
    assert float(care_equivariance_loss(z_1[:2], z_2[:2], 1)) == pytest.approx(2.0)
    assert float(care_equivariance_loss(z_1, z_2, 2)) == pytest.approx(1.0)  # (2 + 0) / 2
    # one chunk of 4: G¹ rows [1,0,1,0], [0,1,0,1], [1,0,1,0], [0,1,0,1]; G² rows [1,1,1,0],
    # [1,1,1,0], [1,1,1,0], [0,0,0,1]; off-diagonal squared differences per row: 1, 3, 1, 1
    # → Σ = 6 and L = (2/4)·6 = 3.
    assert float(care_equivariance_loss(z_1, z_2, 1)) == pytest.approx(2 * 6 / 4)


def test_equivariance_loss_matches_a_loop_and_vanishes_for_orthogonal_maps() -> None:
    g = torch.Generator().manual_seed(0)
    z_1 = F.normalize(torch.randn(12, 5, generator=g), dim=1)
    z_2 = F.normalize(torch.randn(12, 5, generator=g), dim=1)
    chunks, n = 3, 4
    expected = 0.0
    for c in range(chunks):
        block = 0.0
        for i in range(n):
            for j in range(n):
                if i != j:
                    a = z_1[c * n + i] @ z_1[c * n + j]
                    b = z_2[c * n + i] @ z_2[c * n + j]
                    block += float(a - b) ** 2
        expected += 2 * block / n
    assert float(care_equivariance_loss(z_1, z_2, chunks)) == pytest.approx(expected / chunks)
    q, _ = torch.linalg.qr(torch.randn(5, 5, generator=g))
    assert float(care_equivariance_loss(z_1, z_1 @ q, 3)) == pytest.approx(0.0, abs=1e-10)
    with pytest.raises(ValueError, match="chunks"):
        care_equivariance_loss(z_1, z_2, 5)


def test_infonce_terms_match_nt_xent_and_cares_definitions() -> None:
    g = torch.Generator().manual_seed(1)
    z_1, z_2 = torch.randn(5, 4, generator=g), torch.randn(5, 4, generator=g)
    tau = 0.5
    terms = contrastive_terms(*nt_xent_logits(z_1, z_2, tau))
    torch.testing.assert_close(terms["infonce"], nt_xent(z_1, z_2, tau))
    u = F.normalize(torch.cat([z_1, z_2]), dim=1)
    align, uniform = 0.0, 0.0
    for a in range(10):  # CARE utils.py:infoNCE: −log pos, log Σ_neg (self and partner out)
        partner = (a + 5) % 10
        align -= float(u[a] @ u[partner]) / tau
        uniform += math.log(
            sum(math.exp(float(u[a] @ u[k]) / tau) for k in range(10) if k not in (a, partner))
        )
    assert float(terms["alignment"]) == pytest.approx(align / 10)
    assert float(terms["uniformity"]) == pytest.approx(uniform / 10)


def _raw(b: int) -> RawBatch:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (b, 1, 3, 16, 16), generator=g, dtype=torch.uint8)
    return RawBatch(images, None, torch.zeros(b, dtype=torch.long), torch.arange(b))


def _care(base: str, **overrides: object) -> CARE:
    from tests.methods.conftest import TinyBackbone

    torch.manual_seed(0)
    extra: dict[str, object] = {"queue_size": 16, "bn_groups": 2} if base == "moco" else {}
    config = CAREConfig(
        base=base,
        projector_hidden=16,
        projector_dim=8,
        base_overrides=extra,
        **overrides,  # type: ignore[arg-type]
    )
    return CARE(config, TinyBackbone(16), 16)


@pytest.mark.parametrize("base", ["simclr", "moco"])
@pytest.mark.parametrize("subtype", ["infonce", "uniformity"])
def test_training_steps_on_chunk_shared_batches(base: str, subtype: str) -> None:
    method = _care(base, loss_subtype=subtype, equivariance_weight=0.5)
    config = load_augment_config("care")
    config.chunk_size = 4
    builder = make_batch_builder(method.spec(), CIFAR_LIKE, config)
    optimizer = torch.optim.Adam(method.parameters(), lr=1e-3)
    for step in range(2):
        batch = builder(_raw(8))
        out = method(batch)
        assert torch.isfinite(out.loss)
        expected = out.terms[subtype] + 0.5 * out.terms["equivariance"]
        torch.testing.assert_close(out.loss.detach(), expected)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        method.on_step_end(step, 2)
    assert method.backbone is method.base.backbone
    assert sum(1 for name, _ in method.named_modules() if name.endswith("backbone")) == (
        2 if base == "moco" else 1
    )  # one online backbone (+ MoCo's key encoder)
    unit = method.representations()["projector"].compute(torch.randn(3, 16))  # type: ignore[misc]
    torch.testing.assert_close(unit.norm(dim=1), torch.ones(3))


def test_equivariant_subset_and_missing_chunk_layout() -> None:
    method = _care("simclr", equivariant_images=4)
    config = load_augment_config("care")
    config.chunk_size = 2
    batch = make_batch_builder(method.spec(), CIFAR_LIKE, config)(_raw(8))
    assert torch.isfinite(method(batch).loss)
    batch.params[2].chunks = None
    with pytest.raises(ValueError, match="chunk-shared"):
        method(batch)
    with pytest.raises(ValueError, match="care.base"):
        CAREConfig(base="vicreg")
    with pytest.raises(ValueError, match="base_overrides"):
        CAREConfig(base="moco", base_overrides={"projector": "8-8"})
    with pytest.raises(ValueError, match="2N − 2"):
        CAREConfig(base_overrides={"negatives": "cross_view"})
