"""Backbones: shapes, feature dims, stems, width multiplier and the SIE/VICReg-style ResNet."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from sslequi.models.backbones import (
    MAXPOOL_PAD_VALUE,
    BackboneConfig,
    TinyBackboneConfig,
    resnet18,
    resnet18_tiny,
    resnet50,
)
from sslequi.registry import BACKBONES


def _shapes(module: nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in module.state_dict().items() if not k.startswith("fc.")}


def test_width_one_matches_torchvision_parameters() -> None:
    model, dim = resnet18(BackboneConfig())
    assert dim == 512
    assert _shapes(model) == _shapes(torchvision.models.resnet18())
    model50, dim50 = resnet50(BackboneConfig(name="resnet50"))
    assert dim50 == 2048
    assert _shapes(model50) == _shapes(torchvision.models.resnet50())


@pytest.mark.parametrize(
    ("factory", "width", "expected_dim"),
    [(resnet18, 0.125, 64), (resnet18, 0.25, 128), (resnet50, 0.125, 256)],
)
def test_width_multiplier_scales_channels(factory, width: float, expected_dim: int) -> None:
    model, dim = factory(BackboneConfig(width_multiplier=width, stem="cifar"))
    assert dim == expected_dim
    assert model.conv1.out_channels == round(64 * width)
    out = model(torch.randn(2, 3, 16, 16))
    assert out.shape == (2, expected_dim)


def test_tiny_default_is_registered_with_its_config() -> None:
    entry = BACKBONES.entry("resnet18_tiny")
    assert entry.config is TinyBackboneConfig
    model, dim = resnet18_tiny(TinyBackboneConfig())
    assert dim == 64
    assert model(torch.randn(3, 3, 16, 16)).shape == (3, 64)


def _spatial_after_stem(model: nn.Module, size: int) -> tuple[int, int]:
    seen: list[tuple[int, int]] = []
    handle = model.layer1.register_forward_pre_hook(
        lambda _m, args: seen.append(tuple(args[0].shape[-2:]))
    )
    model.eval()
    with torch.no_grad():
        model(torch.randn(1, 3, size, size))
    handle.remove()
    return seen[0]


@pytest.mark.parametrize("style", ["torchvision", "vicreg"])
def test_cifar_stem_keeps_resolution(style: str) -> None:
    cfg = BackboneConfig(width_multiplier=0.125, stem="cifar", style=style)
    model, _ = resnet18(cfg)
    assert _spatial_after_stem(model, 16) == (16, 16)
    assert isinstance(model.maxpool, nn.Identity)
    imagenet, _ = resnet18(BackboneConfig(width_multiplier=0.125, style=style))
    assert _spatial_after_stem(imagenet, 32) == (8, 8)


def test_vicreg_style_map_is_8x8_at_256px() -> None:
    model, dim = resnet18(BackboneConfig(width_multiplier=0.125, style="vicreg"))
    model.eval()
    with torch.no_grad():
        fmap = model.feature_map(torch.randn(1, 3, 256, 256))
        pooled = model(torch.randn(1, 3, 256, 256))
    assert fmap.shape == (1, dim, 8, 8)
    assert pooled.shape == (1, dim)


def _stem_output(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    outputs: list[torch.Tensor] = []
    handle = model.conv1.register_forward_hook(lambda _m, _a, out: outputs.append(out))
    with torch.no_grad():
        model(x)
    handle.remove()
    return outputs[0]


@pytest.mark.parametrize(("style", "offset"), [("vicreg", 1), ("torchvision", 0)])
def test_stem_padding_by_hand(style: str, offset: int) -> None:
    """A delta kernel at the 7×7 centre reads x[2i + offset, 2j + offset].

    SAME-style padding pads 2 on the left/top (centre tap 3 − 2 = 1); torchvision pads 3.
    """
    model, _ = resnet18(BackboneConfig(width_multiplier=0.125, style=style))
    model.eval()
    with torch.no_grad():
        model.conv1.weight.zero_()
        model.conv1.weight[0, 0, 3, 3] = 1.0
    x = torch.randn(1, 3, 64, 64)
    out = _stem_output(model, x)
    assert out.shape[-2:] == (32, 32)
    expected = x[0, 0, offset::2, offset::2]
    torch.testing.assert_close(out[0, 0], expected)


def test_vicreg_maxpool_pad_is_never_selected() -> None:
    model, _ = resnet18(BackboneConfig(width_multiplier=0.125, style="vicreg"))
    model.eval()
    captured: dict[str, torch.Tensor] = {}

    def hook(_m: nn.Module, args: tuple[torch.Tensor], out: torch.Tensor) -> None:
        captured["input"], captured["output"] = args[0], out

    handle = model.maxpool.register_forward_hook(hook)
    with torch.no_grad():
        model(torch.randn(2, 3, 64, 64))
    handle.remove()
    padded, pooled = captured["input"], captured["output"]
    # The pad is on the right/bottom only, with the −1e4 value.
    assert torch.all(padded[..., -1, :] == MAXPOOL_PAD_VALUE)
    assert torch.all(padded[..., :, -1] == MAXPOOL_PAD_VALUE)
    assert torch.all(padded[..., :-1, :-1] >= 0)
    assert pooled.min() >= 0  # post-ReLU values always beat the pad
    # Same as a ceil-mode pool over the unpadded map (windows at the border are partial).
    reference = F.max_pool2d(padded[..., :-1, :-1], 3, 2, ceil_mode=True)
    torch.testing.assert_close(pooled, reference)
    assert pooled.shape[-2:] == (16, 16)


def test_vicreg_layout_shortcuts_strides_and_zero_init() -> None:
    model, _ = resnet18(
        BackboneConfig(width_multiplier=0.125, style="vicreg", zero_init_residual=True)
    )
    for stage in (model.layer1, model.layer2, model.layer3, model.layer4):
        assert stage[0].downsample is not None  # a projection shortcut in every stage
        assert stage[1].downsample is None
        assert torch.all(stage[0].bn2.weight == 0)
    assert model.layer2[0].conv1.stride == (1, 1)  # SIE strides the second conv
    assert model.layer2[0].conv2.stride == (2, 2)
    torchvision_style, _ = resnet18(BackboneConfig(width_multiplier=0.125))
    assert torchvision_style.layer1[0].downsample is None
    assert torch.all(torchvision_style.layer1[0].bn2.weight == 1)


def test_vicreg_loads_sie_style_state_dict_names() -> None:
    model, _ = resnet18(BackboneConfig(style="vicreg", width_multiplier=0.125))
    names = set(model.state_dict())
    for expected in ("conv1.weight", "layer1.0.downsample.0.weight", "layer4.1.bn2.running_mean"):
        assert expected in names


@pytest.mark.parametrize(
    ("field", "value"), [("stem", "tiny"), ("style", "timm"), ("width_multiplier", 0.0)]
)
def test_bad_config_fails_clearly(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        BackboneConfig(**{field: value})


def test_resnet50_vicreg_forward() -> None:
    model, dim = resnet50(BackboneConfig(width_multiplier=0.125, style="vicreg"))
    assert dim == 256  # 2048 / 8
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 256)
