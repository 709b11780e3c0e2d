"""The self-routing capsule layer and the capsule projector (methods.md §11.1–11.2)."""

from __future__ import annotations

import pytest
import torch

from sslequi.models.backbones import BackboneConfig, build_resnet
from sslequi.models.capsules import (
    CapsuleProjector,
    SelfRouting2d,
    feature_map_shape,
    parse_pose,
)


def _randomise_routing(layer: SelfRouting2d, seed: int = 0) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        layer.W2.copy_(torch.randn(layer.W2.shape, generator=gen))
        layer.b2.copy_(torch.randn(layer.b2.shape, generator=gen))


def _loop_reference(
    layer: SelfRouting2d, activations: torch.Tensor, poses: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """§11.1 written out per output location and input capsule (stride 1, no padding)."""
    b, cap_a, h, w = activations.shape
    k, cap_b, c, d = layer.kernel_size, layer.out_capsules, layer.in_pose, layer.out_pose
    assert layer.W1 is not None
    h_out, w_out = h - k + 1, w - k + 1
    a_out = torch.zeros(b, cap_b, h_out, w_out, dtype=torch.float64)
    p_out = torch.zeros(b, cap_b * d, h_out, w_out, dtype=torch.float64)
    w1, w2, b2 = layer.W1.double(), layer.W2.double(), layer.b2.double()[0, 0]
    for n in range(b):
        for y in range(h_out):
            for x in range(w_out):
                a_list, r_list, v_list = [], [], []
                for cap in range(cap_a):
                    for dy in range(k):
                        for dx in range(k):
                            i = cap * k * k + dy * k + dx  # the layer's input-capsule order
                            u = poses[n, cap * c : (cap + 1) * c, y + dy, x + dx].double()
                            a_list.append(activations[n, cap, y + dy, x + dx].double())
                            r_list.append(torch.softmax(w2[i] @ u + b2[i], dim=0))
                            v_list.append((w1[i] @ u).view(cap_b, d))
                a_i = torch.stack(a_list)  # [N]
                r = torch.stack(r_list)  # [N, B]
                votes = torch.stack(v_list)  # [N, B, D]
                ar = a_i[:, None] * r
                a_out[n, :, y, x] = ar.sum(0) / a_i.sum()
                coeff = ar / ar.sum(0, keepdim=True)
                p_out[n, :, y, x] = (coeff[..., None] * votes).sum(0).reshape(-1)
    return a_out, p_out


def test_layer_matches_a_loop_over_inputs_and_activations_sum_to_one() -> None:
    torch.manual_seed(0)
    layer = SelfRouting2d(3, 4, 4, 9, kernel_size=2)
    _randomise_routing(layer)
    activations, poses = torch.rand(2, 3, 3, 3), torch.randn(2, 12, 3, 3)
    a_out, p_out = layer(activations, poses)
    assert a_out.shape == (2, 4, 2, 2) and p_out is not None and p_out.shape == (2, 36, 2, 2)
    assert torch.allclose(a_out.sum(1), torch.ones(2, 2, 2), atol=1e-6)
    a_ref, p_ref = _loop_reference(layer, activations, poses)
    assert torch.allclose(a_out.double(), a_ref, atol=1e-6)
    assert torch.allclose(p_out.double(), p_ref, atol=1e-5)


def test_routing_is_uniform_at_init() -> None:
    torch.manual_seed(1)
    layer = SelfRouting2d(5, 6, 9, 9, kernel_size=3)
    assert torch.count_nonzero(layer.W2) == 0 and torch.count_nonzero(layer.b2) == 0
    activations, poses = torch.rand(4, 5, 3, 3), torch.randn(4, 45, 3, 3)
    a_out, p_out = layer(activations, poses)
    # r_ij = 1/B for every i, so a_j = 1/B and p_j is the a-weighted mean of the votes.
    assert torch.allclose(a_out, torch.full_like(a_out, 1 / 6), atol=1e-7)
    a_ref, p_ref = _loop_reference(layer, activations, poses)
    assert p_out is not None and torch.allclose(p_out.double(), p_ref, atol=1e-5)


def test_checkpointing_changes_nothing_but_memory() -> None:
    torch.manual_seed(2)
    plain = SelfRouting2d(3, 4, 9, 9, kernel_size=2, activation_checkpoint=False)
    _randomise_routing(plain)
    checkpointed = SelfRouting2d(3, 4, 9, 9, kernel_size=2, activation_checkpoint=True)
    checkpointed.load_state_dict(plain.state_dict())
    grads = []
    for layer in (plain, checkpointed):
        poses = torch.randn(2, 27, 2, 2, generator=torch.Generator().manual_seed(3))
        poses.requires_grad_(True)
        activations = torch.rand(2, 3, 2, 2, generator=torch.Generator().manual_seed(4))
        a_out, p_out = layer(activations, poses)
        assert p_out is not None
        (a_out.pow(2).sum() + p_out.sin().sum()).backward()
        grads.append([poses.grad, layer.W1.grad, layer.W2.grad, layer.b2.grad])  # type: ignore[union-attr]
    for g_plain, g_ckpt in zip(*grads, strict=True):
        assert torch.equal(g_plain, g_ckpt)


@pytest.mark.parametrize(("side", "expected"), [(3, 7.44e6), (4, 20.4e6)])
def test_projector_parameters_at_paper_size(side: int, expected: float) -> None:
    """§11.2: K = 32 on ResNet-18's 512 × 8 × 8 map at 256 px."""
    with torch.device("meta"):
        backbone, _ = build_resnet(18, BackboneConfig(style="vicreg", zero_init_residual=True))
        channels, h, w = feature_map_shape(backbone, 256)
        projector = CapsuleProjector(channels, h, num_capsules=32, pose_side=side)
    assert (channels, h, w) == (512, 8, 8)
    count = sum(p.numel() for p in projector.parameters())
    assert count == pytest.approx(expected, rel=0.005)
    routing = projector.routing
    assert routing.W1 is not None
    d = side * side
    assert routing.W1.numel() == 2048 * 32 * d * d  # N = 8·8·32 inputs (5.308 M for 3×3)
    assert routing.W2.numel() == 2048 * 32 * d and routing.b2.numel() == 2048 * 32


def test_projector_from_a_one_by_one_map_up() -> None:
    backbone, _ = build_resnet(18, BackboneConfig(width_multiplier=0.125))
    for resolution, size in ((32, 1), (64, 2)):
        channels, h, _ = feature_map_shape(backbone, resolution)
        assert h == size
        projector = CapsuleProjector(channels, h, num_capsules=8, pose_side=4)
        out = projector(backbone.feature_map(torch.randn(3, 3, resolution, resolution)))
        assert out.activations.shape == (3, 8) and out.poses.shape == (3, 8, 4, 4)
        assert torch.allclose(out.activations.sum(1), torch.ones(3), atol=1e-6)
        assert out.flat_poses.shape == (3, 128)
    with pytest.raises(ValueError, match="kernel covers a 2×2 map"):
        projector(torch.randn(1, channels, 1, 1))


def test_pose_strings() -> None:
    assert parse_pose("3x3") == 3 and parse_pose("4x4") == 4
    with pytest.raises(ValueError, match="square"):
        parse_pose("3x4")


@pytest.mark.parametrize("style", ["torchvision", "vicreg"])
def test_feature_map_pools_to_the_backbone_output(style: str) -> None:
    backbone, _ = build_resnet(18, BackboneConfig(width_multiplier=0.125, style=style))
    backbone.eval()
    images = torch.randn(2, 3, 64, 64)
    pooled = backbone.feature_map(images).mean(dim=(2, 3))
    assert torch.allclose(pooled, backbone(images), atol=1e-6)
