"""SEN — Symmetric Embedding Network: a contrastive, transformation-conditioned embedding.

Park et al., "Learning Symmetric Embeddings for Equivariant World Models", ICML 2022
(arXiv 2204.11371, id unverified); implementations followed (methods.md §4):
``facebookresearch/SIE:src/models.py`` ``SimCLROnlyEqui`` (l. 701; the SEN-style baseline of
the SIE table, mapping unverified) and ``hafezgh/seq-jepa`` ``SEN_Contrastive`` (l. 742).

One projector z = h(y); a predictor maps view 1's embedding and the action g onto view 2's:
ẑ′ = p_g(z). The only loss is contrastive between predicted and actual embeddings:

    L = NT-Xent(ẑ′, z′),  τ = 0.1, gathered over ranks (§1.2).

There is no invariant objective. Predictor: SIE's hypernetwork by default (the SIE-table
row); ``predictor.type=mlp`` gives SEN's original concatenation predictor Linear([g, z]).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from torch import Tensor, nn

from sslequi.methods.base import Method, MethodConfig
from sslequi.methods.distributed import gather
from sslequi.methods.losses import nt_xent
from sslequi.models.heads import mlp_projector, parse_mlp
from sslequi.models.hypernetwork import PredictorConfig, build_predictor
from sslequi.registry import register_method
from sslequi.types import ACTION_DIMS, Batch, MethodSpec, Parts, StepOutput


def sen_loss(pred_b: Tensor, z_b: Tensor, temperature: float) -> Tensor:
    """NT-Xent between the predicted and the actual embedding of view 2 (§4)."""
    return nt_xent(gather(pred_b), gather(z_b), temperature)


@dataclass
class SENConfig(MethodConfig):
    """SEN options (SIE `SimCLROnlyEqui` defaults)."""

    name: str = "sen"
    projector: str = "2048-2048-2048"
    temperature: float = 0.1
    action: str = "rotation_quat"  # 'rot_color' for the RotColor variant
    predictor: PredictorConfig = field(default_factory=PredictorConfig)

    def __post_init__(self) -> None:
        if isinstance(self.predictor, Mapping):
            self.predictor = PredictorConfig(**self.predictor)
        parse_mlp(self.projector)
        if self.action not in ACTION_DIMS:
            raise ValueError(f"sen: unknown action {self.action!r}; known {sorted(ACTION_DIMS)}")
        if self.temperature <= 0:
            raise ValueError("sen: temperature must be > 0")


@register_method("sen", config=SENConfig)
class SEN(Method):
    """Contrastive loss between p_g(h(y)) and h(y′) (§4)."""

    config_class = SENConfig
    predictor_action = "rotation_quat"
    config: SENConfig

    def __init__(self, config: SENConfig, backbone: nn.Module, feature_dim: int) -> None:
        super().__init__(config, backbone, feature_dim)
        self.predictor_action = config.action  # instance value: the configured encoding
        widths = parse_mlp(config.projector)
        self.projector = mlp_projector(feature_dim, widths)
        self.predictor = build_predictor(
            config.predictor, widths[-1], ACTION_DIMS[config.action], config.action
        )

    def spec(self) -> MethodSpec:
        return MethodSpec(num_views=2, structure="pairs", actions=(self.config.action,))

    def parts(self) -> Parts:
        return Parts(invariant=None, equivariant=slice(0, self.feature_dim))

    def embed_equivariant(self, y_equi: Tensor) -> Tensor:
        return self.projector(y_equi)

    def predict(self, z_equi: Tensor, action: Tensor) -> Tensor:
        return self.predictor(z_equi, action)

    def forward(self, batch: Batch) -> StepOutput:
        y_a, y_b = self.backbone(batch.views[0]), self.backbone(batch.views[1])
        pred = self.predictor(self.projector(y_a), batch.actions.pair(self.config.action))
        loss = sen_loss(pred, self.projector(y_b), self.config.temperature)
        return StepOutput(
            loss=loss, terms={"equi": loss.detach()}, features=[y_a.detach(), y_b.detach()]
        )
