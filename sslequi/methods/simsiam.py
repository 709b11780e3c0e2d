"""SimSiam (Chen & He, CVPR 2021, arXiv 2011.10566): a siamese network with a stop-gradient.

    z = g(f(x)),  p = h(z),  L = ½ D(p₁, sg(z₂)) + ½ D(p₂, sg(z₁)),  D(p, z) = −cos(p, z)

(SimSiam Eqs. 1–4; E-SSL's SimSiam base, methods.md §7.1). Heads are lightly's: the
projector has BN on every layer and an output BN without affine parameters (paper §3,
``projector_layers = 3`` on ImageNet; E-SSL CIFAR and the paper's CIFAR model use 2 layers),
the predictor is the bottleneck ``2048 → 512 → 2048``. The loss uses lightly's
``NegativeCosineSimilarity``. E-SimSiam builds on ``SimSiam.siamese_loss``.

``fix_predictor_lr``: the predictor keeps the peak rate, with neither warmup nor cosine
(SimSiam paper §4.1 / official ``--fix-pred-lr``; on by default in E-SSL's ImageNet code;
E-SSL's CIFAR code optimises the predictor with its own SGD whose rate is never
scheduled nor warmed up — the same thing; methods.md §7.4). Default off (every group
scheduled); the recipes turn it on.
"""

from __future__ import annotations

from dataclasses import dataclass

from lightly.loss import NegativeCosineSimilarity
from lightly.models.modules.heads import ProjectionHead
from torch import Tensor, nn

from sslequi.methods.base import LRGroup, Method, MethodConfig
from sslequi.models.heads import simsiam_predictor, simsiam_projector
from sslequi.registry import register_method
from sslequi.types import Batch, MethodSpec, StepOutput


@dataclass
class SimSiamConfig(MethodConfig):
    """SimSiam options (``configs/method/simsiam.yaml``); defaults = the paper's ImageNet model."""

    name: str = "simsiam"
    projector_hidden: int = 2048
    projector_dim: int = 2048
    projector_layers: int = 3  # paper ImageNet: 3; paper CIFAR and E-SSL CIFAR: 2
    predictor_hidden: int = 512
    fix_predictor_lr: bool = False  # predictor at the peak rate, unscheduled (§7.4)

    def __post_init__(self) -> None:
        if self.projector_layers not in (2, 3):
            raise ValueError(
                f"simsiam.projector_layers must be 2 or 3, got {self.projector_layers}"
            )


def _two_layer_simsiam_projector(input_dim: int, hidden: int, out: int) -> ProjectionHead:
    """The CIFAR projector: Linear → BN → ReLU → Linear → BN(affine=False)."""
    return ProjectionHead(
        [
            (input_dim, hidden, nn.BatchNorm1d(hidden), nn.ReLU(inplace=True)),
            (hidden, out, nn.BatchNorm1d(out, affine=False), None),
        ]
    )


@register_method("simsiam", config=SimSiamConfig)
class SimSiam(Method):
    """Backbone f, projector g, predictor h; symmetric negative cosine with stop-gradient."""

    config_class = SimSiamConfig
    config: SimSiamConfig

    def __init__(self, config: SimSiamConfig, backbone: nn.Module, feature_dim: int) -> None:
        super().__init__(config, backbone, feature_dim)
        if config.projector_layers == 3:
            self.projector: nn.Module = simsiam_projector(
                feature_dim, config.projector_hidden, config.projector_dim
            )
        else:
            self.projector = _two_layer_simsiam_projector(
                feature_dim, config.projector_hidden, config.projector_dim
            )
        self.predictor = simsiam_predictor(config.projector_dim, config.predictor_hidden)
        self.criterion = NegativeCosineSimilarity()

    def spec(self) -> MethodSpec:
        return MethodSpec(num_views=2)

    def lr_groups(self) -> list[LRGroup]:
        if self.config.fix_predictor_lr:
            return [LRGroup("predictor", ("predictor",), fixed=True)]
        return []

    def siamese_loss(self, y_1: Tensor, y_2: Tensor) -> Tensor:
        """½ D(p₁, sg z₂) + ½ D(p₂, sg z₁) from two views' backbone features."""
        z_1, z_2 = self.projector(y_1), self.projector(y_2)
        p_1, p_2 = self.predictor(z_1), self.predictor(z_2)
        return 0.5 * self.criterion(p_1, z_2.detach()) + 0.5 * self.criterion(p_2, z_1.detach())

    def forward(self, batch: Batch) -> StepOutput:
        y_1, y_2 = (self.backbone(view) for view in batch.views[:2])
        loss = self.siamese_loss(y_1, y_2)
        return StepOutput(
            loss=loss, terms={"neg_cosine": loss.detach()}, features=[y_1.detach(), y_2.detach()]
        )
