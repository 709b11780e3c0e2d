"""ResNet backbones that map images [B, 3, H, W] to pooled features [B, D] (methods.md §1.3).

Two styles, both registered by name with ``@register_backbone``; every factory takes a
``BackboneConfig`` and returns ``(module, feature_dim)``:

- ``style="torchvision"``: torchvision's ``ResNet`` (its ``BasicBlock``/``Bottleneck`` and
  ``_make_layer``), ``fc = Identity``. At width 1 the parameters have exactly the names and
  shapes of ``torchvision.models.resnet18()``/``resnet50()``.
- ``style="vicreg"``: the VICReg/SIE ResNet (``facebookresearch/SIE:src/resnet.py``):
  TensorFlow-"SAME"-style padding (zero pad left/top 2, right/bottom 3) before the 7×7/2
  stem conv, a right/bottom pad of −1e4 before the 3×3/2 max-pool (the pad is never the
  maximum), every stride-2 3×3 conv preceded by a right/bottom zero pad of 1 and applied
  without padding, the stride on a block's *second* 3×3 conv (BasicBlock) or on the 3×3
  (Bottleneck), and a projection (1×1 conv + BN) shortcut on the first block of *every*
  stage. At 256 px this gives 512×8×8 before pooling, as in SIE. Parameter names follow
  the same layout (``conv1``, ``bn1``, ``layerK.J.conv1`` … ``downsample.0``), so SIE's
  ``final_weights.pth`` loads into it.

Width multiplier: stage widths are ``round(64·w)·(1, 2, 4, 8)`` (times the block expansion),
built by constructing each stage with the scaled number of planes through torchvision's own
``_make_layer`` (torchvision's ``width_per_group`` only widens Bottleneck interiors, so it
cannot shrink a ResNet-18). ``w = 1`` is the standard network.

Stems: ``"imagenet"`` (7×7/2 conv + 3×3/2 max-pool) or ``"cifar"`` (3×3/1 conv, padding 1,
no max-pool), which keeps the input resolution through the stem.

Initialisation (both styles): Kaiming-normal (fan_out, ReLU) convolutions, BN weight 1 and
bias 0, and, with ``zero_init_residual``, the last BN of each residual branch set to 0.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

from sslequi.registry import register_backbone

STEMS = ("imagenet", "cifar")
STYLES = ("torchvision", "vicreg")
MAXPOOL_PAD_VALUE = -1e4  # SIE: right/bottom pad before the max-pool, never selected
STAGES = ("layer1", "layer2", "layer3", "layer4")  # the residual stages, input to output


@dataclass
class BackboneConfig:
    """Typed config of the ``backbone`` group.

    ``stem`` is ``"imagenet"`` or ``"cifar"``; ``style`` is ``"torchvision"`` or
    ``"vicreg"`` (the SIE/VICReg ResNet). ``zero_init_residual`` zero-initialises the last BN
    of every residual branch (on in SIE; off in torchvision's default).
    """

    name: str = "resnet18"
    width_multiplier: float = 1.0
    stem: str = "imagenet"
    style: str = "torchvision"
    zero_init_residual: bool = False

    def __post_init__(self) -> None:
        if self.stem not in STEMS:
            raise ValueError(f"backbone.stem must be one of {STEMS}, got {self.stem!r}")
        if self.style not in STYLES:
            raise ValueError(f"backbone.style must be one of {STYLES}, got {self.style!r}")
        if not self.width_multiplier > 0:
            raise ValueError(f"backbone.width_multiplier must be > 0, got {self.width_multiplier}")


@dataclass
class TinyBackboneConfig(BackboneConfig):
    """Defaults of ``resnet18_tiny``: ResNet-18 at width 1/8 with the CIFAR stem (CPU tests)."""

    name: str = "resnet18_tiny"
    width_multiplier: float = 0.125
    stem: str = "cifar"


def base_width(width_multiplier: float) -> int:
    """Channels of the stem and the first stage: ``round(64 · w)``, at least 1."""
    return max(1, round(64 * width_multiplier))


class SamePadBasicBlock(nn.Module):
    """SIE's basic block: 3×3 → BN → ReLU → [pad] 3×3/s → BN, plus the shortcut."""

    expansion = 1

    def __init__(
        self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(
            planes, planes, 3, stride=stride, padding=1 if stride == 1 else 0, bias=False
        )
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        if self.stride != 1:
            out = F.pad(out, (0, 1, 0, 1))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)

    def last_bn(self) -> nn.BatchNorm2d:
        return self.bn2


class SamePadBottleneck(nn.Module):
    """SIE's bottleneck: 1×1 → [pad] 3×3/s → 1×1 (×4), BN + ReLU between, plus the shortcut."""

    expansion = 4

    def __init__(
        self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(
            planes, planes, 3, stride=stride, padding=1 if stride == 1 else 0, bias=False
        )
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        if self.stride != 1:
            out = F.pad(out, (0, 1, 0, 1))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)

    def last_bn(self) -> nn.BatchNorm2d:
        return self.bn3


BlockType = type[BasicBlock] | type[Bottleneck] | type[SamePadBasicBlock] | type[SamePadBottleneck]


class ScaledResNet(ResNet):
    """torchvision's ``ResNet`` with scaled stage widths, a choice of stem, and ``fc = Identity``.

    ``forward`` is torchvision's (conv1 → bn1 → relu → maxpool → layer1..4 → avgpool →
    flatten → fc). Only the construction differs: ``ResNet.__init__`` hard-codes 64 input
    planes, so this builds the same attributes with ``planes = base · 2^i``. ``stages``
    names the residual stages whose maps ``feature_map(x, layer)`` returns (stage probes).
    """

    stages: tuple[str, ...] = STAGES

    def __init__(
        self,
        block: BlockType,
        layers: list[int],
        width_multiplier: float = 1.0,
        stem: str = "imagenet",
        zero_init_residual: bool = False,
    ) -> None:
        nn.Module.__init__(self)
        width = base_width(width_multiplier)
        self._norm_layer = nn.BatchNorm2d
        self.inplanes = width
        self.dilation = 1
        self.groups = 1
        self.base_width = 64  # torchvision's width_per_group (Bottleneck interior ratio)
        self.conv1, self.maxpool = self._make_stem(stem, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = self._make_layer(block, width, layers[0])  # type: ignore[arg-type]
        self.layer2 = self._make_layer(block, width * 2, layers[1], stride=2)  # type: ignore[arg-type]
        self.layer3 = self._make_layer(block, width * 4, layers[2], stride=2)  # type: ignore[arg-type]
        self.layer4 = self._make_layer(block, width * 8, layers[3], stride=2)  # type: ignore[arg-type]
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Identity()
        self.feature_dim = width * 8 * block.expansion
        _initialise(self, zero_init_residual)

    @staticmethod
    def _make_stem(stem: str, width: int) -> tuple[nn.Conv2d, nn.Module]:
        if stem == "cifar":
            return nn.Conv2d(3, width, 3, stride=1, padding=1, bias=False), nn.Identity()
        return (
            nn.Conv2d(3, width, 7, stride=2, padding=3, bias=False),
            nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
        )

    def stem_output(self, x: Tensor) -> Tensor:
        """conv1 → bn1 → relu → maxpool (torchvision's forward before ``layer1``)."""
        return self.maxpool(self.relu(self.bn1(self.conv1(x))))

    def feature_map(self, x: Tensor, layer: str = "layer4") -> Tensor:
        """The map of stage ``layer`` (``STAGES``); by default the last, before pooling."""
        if layer not in STAGES:
            raise ValueError(f"unknown ResNet stage {layer!r}; stages: {list(STAGES)}")
        x = self.stem_output(x)
        for name in STAGES[: STAGES.index(layer) + 1]:
            x = getattr(self, name)(x)
        return x


class VICRegResNet(ScaledResNet):
    """The SIE/VICReg ResNet (module docstring): SAME-style pads and a shortcut per stage."""

    def __init__(
        self,
        block: type[SamePadBasicBlock] | type[SamePadBottleneck],
        layers: list[int],
        width_multiplier: float = 1.0,
        stem: str = "imagenet",
        zero_init_residual: bool = True,
    ) -> None:
        super().__init__(block, layers, width_multiplier, stem, zero_init_residual)
        self.stem = stem

    @staticmethod
    def _make_stem(stem: str, width: int) -> tuple[nn.Conv2d, nn.Module]:
        if stem == "cifar":
            return nn.Conv2d(3, width, 3, stride=1, padding=1, bias=False), nn.Identity()
        return (
            nn.Conv2d(3, width, 7, stride=2, padding=0, bias=False),
            nn.MaxPool2d(kernel_size=3, stride=2, padding=0),
        )

    def _make_layer(  # type: ignore[override]
        self,
        block: type[SamePadBasicBlock] | type[SamePadBottleneck],
        planes: int,
        blocks: int,
        stride: int = 1,
        dilate: bool = False,
    ) -> nn.Sequential:
        # SIE: a projection shortcut on the first block of every stage, even when the
        # shapes already match (stage 1 of ResNet-18).
        out_planes = planes * block.expansion
        downsample = nn.Sequential(
            nn.Conv2d(self.inplanes, out_planes, 1, stride=stride, bias=False),
            nn.BatchNorm2d(out_planes),
        )
        layers: list[nn.Module] = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = out_planes
        layers.extend(block(self.inplanes, planes) for _ in range(1, blocks))
        return nn.Sequential(*layers)

    def _forward_impl(self, x: Tensor) -> Tensor:
        return torch.flatten(self.avgpool(self.feature_map(x)), 1)

    def stem_output(self, x: Tensor) -> Tensor:
        """The SAME-padded stem; ``feature_map`` (inherited) continues with the stages, so
        the last stage's map is 512×8×8 for ResNet-18 at 256 px."""
        if self.stem == "imagenet":
            x = F.pad(x, (2, 3, 2, 3))
        x = self.relu(self.bn1(self.conv1(x)))
        if self.stem == "imagenet":
            x = F.pad(x, (0, 1, 0, 1), value=MAXPOOL_PAD_VALUE)
        return self.maxpool(x)


def _initialise(model: nn.Module, zero_init_residual: bool) -> None:
    """Kaiming-normal convs, unit/zero BN; optionally zero the last BN of each residual branch."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.BatchNorm2d | nn.GroupNorm):
            nn.init.constant_(module.weight, 1)
            nn.init.constant_(module.bias, 0)
    if not zero_init_residual:
        return
    for module in model.modules():
        if isinstance(module, Bottleneck):
            nn.init.constant_(module.bn3.weight, 0)
        elif isinstance(module, BasicBlock):
            nn.init.constant_(module.bn2.weight, 0)
        elif isinstance(module, SamePadBasicBlock | SamePadBottleneck):
            nn.init.constant_(module.last_bn().weight, 0)


def build_resnet(depth: int, config: BackboneConfig) -> tuple[nn.Module, int]:
    """ResNet-18 or -50 in ``config``'s style, stem and width: ``(module, feature_dim)``."""
    layers = {18: [2, 2, 2, 2], 50: [3, 4, 6, 3]}[depth]
    model: ScaledResNet
    if config.style == "vicreg":
        vicreg_block = SamePadBasicBlock if depth == 18 else SamePadBottleneck
        model = VICRegResNet(
            vicreg_block, layers, config.width_multiplier, config.stem, config.zero_init_residual
        )
    else:
        block = BasicBlock if depth == 18 else Bottleneck
        model = ScaledResNet(
            block, layers, config.width_multiplier, config.stem, config.zero_init_residual
        )
    return model, model.feature_dim


BackboneFactory = Callable[[BackboneConfig], tuple[nn.Module, int]]


@register_backbone("resnet18", config=BackboneConfig)
def resnet18(config: BackboneConfig) -> tuple[nn.Module, int]:
    """ResNet-18: 512-d features at width 1 (methods.md §1.3)."""
    return build_resnet(18, config)


@register_backbone("resnet50", config=BackboneConfig)
def resnet50(config: BackboneConfig) -> tuple[nn.Module, int]:
    """ResNet-50: 2048-d features at width 1 (methods.md §1.3)."""
    return build_resnet(50, config)


@register_backbone("resnet18_tiny", config=TinyBackboneConfig)
def resnet18_tiny(config: BackboneConfig) -> tuple[nn.Module, int]:
    """ResNet-18 at width 1/8 with the CIFAR stem (64-d features): fast CPU tests and demos."""
    return build_resnet(18, config)
