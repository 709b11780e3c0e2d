"""E-SSL — Equivariant Self-Supervised Learning, as a composition over any invariant method.

Dangovski et al., ICLR 2022 (arXiv 2111.00899); code ``rdangovs/essl`` at ``70b2cd0``
(methods.md §7). E-SSL adds to an invariance loss a 4-way rotation classification on the
backbone features of a separate small view shown in all four rotations (§7.1–7.2):

    L = L_inv + λ · L_rot,   L_rot = CE(H(f(x_rot)), k),  k ∈ {0, 1, 2, 3} (k·90° CCW),

averaged over the 4B rotated samples. H reads the **backbone** output f(·), not the
projector; it is an MLP with LayerNorm (§7.3): CIFAR SimCLR head Lin(D, 2048)-LN-ReLU-
Lin(2048, 2048)-LN-ReLU-Lin(2048, 4); the SimSiam head drops the second ReLU
(``head_second_relu=False``); the ImageNet heads add a bottleneck Lin(2048, b)-LN before the
classifier (``head_bottleneck=128`` SimCLR, ``256`` SimSiam / Barlow Twins).

``base`` names any registered invariant method (``simclr``, ``simsiam``, ``vicreg``, ``byol``,
…); it is built from its registered config with ``base_overrides`` applied, on the same
backbone, and computes L_inv. The rotated view is declared through
``MethodSpec.rotated_view`` and arrives as ``Batch.rotated``. Recipes (§7.1, §7.4): λ = 0.4
for E-SimCLR (τ 0.5, cross-view InfoNCE as in the code, register item 14) and E-SimSiam on
CIFAR-10, 0.08 for E-SimSiam on ImageNet; the official E-runs double the base LR, which the
recipe configs set explicitly in ``optim``, never here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from sslequi.methods.base import LRGroup, Method, MethodConfig
from sslequi.registry import METHODS, RegistryError, register_method
from sslequi.types import Batch, MethodSpec, Parts, RotatedViewSpec, StepOutput


def rotation_head(
    feature_dim: int, hidden: int = 2048, second_relu: bool = True, bottleneck: int | None = None
) -> nn.Sequential:
    """H: Lin(D, h)-LN-ReLU-Lin(h, h)-LN-[ReLU]-[Lin(h, b)-LN]-Lin(·, 4) (§7.3)."""
    layers: list[nn.Module] = [
        nn.Linear(feature_dim, hidden),
        nn.LayerNorm(hidden),
        nn.ReLU(inplace=True),
        nn.Linear(hidden, hidden),
        nn.LayerNorm(hidden),
    ]
    if second_relu:
        layers.append(nn.ReLU(inplace=True))
    last = hidden
    if bottleneck is not None:
        layers += [nn.Linear(hidden, bottleneck), nn.LayerNorm(bottleneck)]
        last = bottleneck
    layers.append(nn.Linear(last, 4))
    return nn.Sequential(*layers)


def _import_methods() -> None:
    """Register every method module, so ``base`` may name any of them."""
    from sslequi.config import import_components

    import_components()


def rotation_classification_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """L_rot = mean CE over the 4B rotated samples (§7.1)."""
    return F.cross_entropy(logits, labels)


@dataclass
class ESSLConfig(MethodConfig):
    """E-SSL options; defaults = E-SimCLR on CIFAR-10 (methods.md §7)."""

    name: str = "essl"
    base: str = "simclr"  # any registered invariant method
    base_overrides: dict[str, Any] = field(default_factory=dict)  # fields of the base config
    rotation_weight: float = 0.4  # λ
    rotated_size: int = 16  # side of the small rotated view (16 CIFAR, 96 ImageNet)
    rotated_scale: list[float] = field(default_factory=lambda: [0.2, 1.0])  # its RRC scale
    rotated_source_view: int = 0  # which view's image the small crop is taken from
    head_hidden: int = 2048
    head_second_relu: bool = True  # False for E-SimSiam (§7.3)
    head_bottleneck: int | None = None  # ImageNet heads: 128 (SimCLR) / 256 (SimSiam, BT)

    def __post_init__(self) -> None:
        if self.base == self.name or self.base == "essl":
            raise ValueError("essl: base must be an invariant method, not essl itself")
        if self.rotation_weight < 0:
            raise ValueError(f"essl: rotation_weight must be ≥ 0, got {self.rotation_weight}")
        if self.rotated_size < 4:
            raise ValueError(f"essl: rotated_size must be ≥ 4 px, got {self.rotated_size}")
        scale = [float(s) for s in self.rotated_scale]
        if len(scale) != 2 or not 0 < scale[0] <= scale[1] <= 1:
            raise ValueError(f"essl: rotated_scale must be (lo, hi) in (0, 1], got {scale}")
        self.rotated_scale = scale
        self.base_overrides = dict(self.base_overrides)
        try:
            self.base_config()  # unknown base names and override fields fail at config time
        except RegistryError as error:
            raise ValueError(f"essl.base: {error}") from None

    def base_config(self) -> MethodConfig:
        """The base method's registered config with ``base_overrides`` applied."""
        _import_methods()
        entry = METHODS.entry(self.base)  # unknown names list the alternatives
        config_class = entry.config
        if config_class is None or not dataclasses.is_dataclass(config_class):
            raise ValueError(f"essl: base method {self.base!r} has no typed config")
        known = {f.name for f in dataclasses.fields(config_class)}
        unknown = sorted(set(self.base_overrides) - known)
        if unknown:
            raise ValueError(
                f"essl: base_overrides {unknown} are not fields of {config_class.__name__} "
                f"(base={self.base!r}); valid fields: {sorted(known - {'name'})}"
            )
        overrides = {k: v for k, v in self.base_overrides.items() if k != "name"}
        return config_class(**{**overrides, "name": self.base})


@register_method("essl", config=ESSLConfig)
class ESSL(Method):
    """Base invariant method + λ · 4-fold rotation classification on a small view (§7)."""

    config_class = ESSLConfig
    config: ESSLConfig

    def __init__(self, config: ESSLConfig, backbone: nn.Module, feature_dim: int) -> None:
        super().__init__(config, backbone, feature_dim)
        # The backbone belongs to the base method; keep one copy in the module tree.
        del self._modules["backbone"]
        _import_methods()
        base_class = METHODS.get(config.base)
        self.base = base_class(config.base_config(), backbone, feature_dim)
        if self.base.spec().rotated_view is not None:
            raise ValueError(f"essl: base {config.base!r} already uses a rotated view")
        self.rotation_head = rotation_head(
            feature_dim, config.head_hidden, config.head_second_relu, config.head_bottleneck
        )

    @property
    def backbone(self) -> nn.Module:  # type: ignore[override]
        return self.base.backbone

    def spec(self) -> MethodSpec:
        cfg = self.config
        rotated = RotatedViewSpec(
            size=cfg.rotated_size,
            scale=(cfg.rotated_scale[0], cfg.rotated_scale[1]),
            source_view=cfg.rotated_source_view,
        )
        return dataclasses.replace(self.base.spec(), rotated_view=rotated)

    def parts(self) -> Parts:
        return self.base.parts()

    def encode(self, images: Tensor) -> Tensor:
        return self.base.encode(images)

    def on_step_end(self, step: int, total_steps: int) -> None:
        self.base.on_step_end(step, total_steps)

    def lr_groups(self) -> list[LRGroup]:
        """The base method's groups (module names under ``base.``); the rotation head
        follows the main schedule, as in the official code (§7.4)."""
        return [
            dataclasses.replace(group, modules=tuple(f"base.{m}" for m in group.modules))
            for group in self.base.lr_groups()
        ]

    def forward(self, batch: Batch) -> StepOutput:
        if batch.rotated is None:
            raise ValueError("essl: the batch has no rotated views; build it from essl's spec()")
        out = self.base(batch)
        logits = self.rotation_head(self.base.backbone(batch.rotated.images))
        rot = rotation_classification_loss(logits, batch.rotated.labels)
        accuracy = (logits.argmax(dim=1) == batch.rotated.labels).float().mean()
        terms = {**out.terms, "base": out.loss.detach(), "rot": rot.detach(), "rot_acc": accuracy}
        return StepOutput(
            loss=out.loss + self.config.rotation_weight * rot, terms=terms, features=out.features
        )
