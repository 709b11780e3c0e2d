"""Transformation-conditioned predictors: SIE's hypernetwork and the concatenation MLP.

SIE (Garrido et al. 2023, methods.md §1.5, §2.1): a hypernetwork H maps the action g to the
weights of a small predicted network applied to the equivariant embedding. With the
default linear hypernetwork and a single predicted layer,

    ẑ′ = W(g) z,   W(g) = Σ_k g_k A_k,   A_k ∈ ℝ^{d×d},

so the prediction is linear in g and W(−q) = −W(q) for a quaternion q (§2.1, derived).
Options as in the SIE code (`src/hypernetwork.py`): ``deep`` hypernetwork (Linear(k, k) →
ReLU → Linear(k, k) → ReLU → Linear(k, P)), ``bias_hypernet`` (bias in H's layers, so
W(g) = A_0 + Σ g_k A_k), ``bias_pred`` (H also emits the predicted layers' biases),
``hidden`` (hidden widths of the predicted network) and ``relu`` between predicted layers.

Initialisation (``init``): ``torch_default`` is ``nn.Linear``'s (the official code): each
entry of A_k is U(−1/√k, 1/√k), variance 1/(3k), so ‖W(g)z‖ ≈ √(d/12)·‖z‖ for a unit
quaternion (×4.6 at d = 256). Over the ~80k GPU steps of the papers Adam reshapes that;
over a few hundred CPU steps it does not (the weights stay within ~3 % of their init).
``norm_preserving`` (this harness's choice for the ``_cpu`` recipes, docs/recipes.md) draws
A_k ~ N(0, 1/(d_in·E‖g‖²)), so ‖W(g)z‖ ≈ ‖z‖ at init for actions of the encoding's typical
norm (``EXPECTED_ACTION_SQ_NORM``); hypernetwork and predicted biases start at zero.

EquiMod/SEN's concatenation predictor (`src/predictors.py MLPPredictor`, seq-JEPA
`SEN_Contrastive`): ẑ′ = MLP([g ‖ z]).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor, nn

PredictorType = Literal["hypernetwork", "mlp"]
HypernetworkKind = Literal["linear", "deep"]
PredictorInit = Literal["torch_default", "norm_preserving"]
PREDICTOR_INITS = ("torch_default", "norm_preserving")

# E‖g‖² of an action encoding over random view pairs (datasets.md §1.5): unit quaternions;
# a rotation matrix has ‖R‖²_F = 3; a hue difference of two U(0, 1) hues has E[Δ²] = 1/6.
EXPECTED_ACTION_SQ_NORM: dict[str, float] = {
    "rotation_quat": 1.0,
    "rotation_matrix": 3.0,
    "color_delta": 2.0 / 6.0,
    "rot_color": 1.0 + 2.0 / 6.0,
}


@dataclass
class PredictorConfig:
    """Options of a transformation-conditioned predictor (defaults: SIE README command)."""

    type: PredictorType = "hypernetwork"
    hypernetwork: HypernetworkKind = "linear"
    hidden: list[int] = field(default_factory=list)  # SIE `--predictor`; [] = one linear map
    relu: bool = False  # SIE `--predictor-relu`
    bias_pred: bool = False  # SIE `--bias-pred`
    bias_hypernet: bool = False  # SIE `--bias-hypernet`
    mlp_layers: int = 1  # concat predictor depth (SIE `--tf-num-layers`)
    init: str = "torch_default"  # torch_default (official code) | norm_preserving
    init_action_sq_norm: float | None = None  # E‖g‖² for norm_preserving; None: the table

    def __post_init__(self) -> None:
        if self.init not in PREDICTOR_INITS:
            raise ValueError(f"predictor.init must be one of {PREDICTOR_INITS}, got {self.init!r}")
        if self.init == "norm_preserving" and self.type != "hypernetwork":
            raise ValueError(
                "predictor.init=norm_preserving is defined for the hypernetwork predictor; "
                f"predictor.type={self.type!r} keeps torch's default init"
            )
        if self.init == "norm_preserving" and self.hypernetwork == "deep":
            raise ValueError(
                "predictor.init=norm_preserving is defined for the linear hypernetwork only "
                "(a deep hypernetwork's output norm depends on its hidden activations); "
                "use predictor.init=torch_default with predictor.hypernetwork=deep"
            )
        if self.init_action_sq_norm is not None and not self.init_action_sq_norm > 0:
            raise ValueError(
                f"predictor.init_action_sq_norm must be > 0, got {self.init_action_sq_norm}"
            )
        if self.type not in ("hypernetwork", "mlp"):
            raise ValueError(f"predictor.type must be 'hypernetwork' or 'mlp', got {self.type!r}")
        if self.hypernetwork not in ("linear", "deep"):
            raise ValueError(
                f"predictor.hypernetwork must be 'linear' or 'deep', got {self.hypernetwork!r}"
            )
        if any(h < 1 for h in self.hidden):
            raise ValueError(f"predictor.hidden widths must be positive, got {self.hidden}")
        if self.mlp_layers < 1:
            raise ValueError(f"predictor.mlp_layers must be ≥ 1, got {self.mlp_layers}")


class HypernetworkPredictor(nn.Module):
    """ẑ′ = f_{H(g)}(z): a predicted network whose parameters a hypernetwork emits from g."""

    def __init__(
        self,
        dim: int,
        action_dim: int,
        kind: HypernetworkKind = "linear",
        hidden: tuple[int, ...] | list[int] = (),
        relu: bool = False,
        bias_pred: bool = False,
        bias_hypernet: bool = False,
    ) -> None:
        super().__init__()
        self.widths = [dim, *hidden, dim]
        self.action_dim = action_dim
        self.bias_pred = bias_pred
        self.activation: nn.Module = nn.ReLU() if relu else nn.Identity()
        # Parameter layout of the predicted network: per layer, weight [out, in] then bias.
        self.layer_shapes = list(zip(self.widths[1:], self.widths[:-1], strict=True))
        sizes = [o * i + (o if bias_pred else 0) for o, i in self.layer_shapes]
        self.num_predicted = sum(sizes)
        if kind == "linear":
            self.hypernet: nn.Module = nn.Linear(action_dim, self.num_predicted, bias=bias_hypernet)
        else:
            self.hypernet = nn.Sequential(
                nn.Linear(action_dim, action_dim, bias=bias_hypernet),
                nn.ReLU(),
                nn.Linear(action_dim, action_dim, bias=bias_hypernet),
                nn.ReLU(),
                nn.Linear(action_dim, self.num_predicted, bias=bias_hypernet),
            )
        self.kind = kind

    def init_norm_preserving(self, action_sq_norm: float) -> None:
        """A_k ~ N(0, 1/(d_in·E‖g‖²)) per predicted layer, biases zero: ‖W(g)z‖ ≈ ‖z‖ at init."""
        if not isinstance(self.hypernet, nn.Linear):
            raise ValueError("norm-preserving init is defined for the linear hypernetwork only")
        weight = self.hypernet.weight  # [P, k]: row p emits predicted parameter p
        with torch.no_grad():
            offset = 0
            for out_dim, in_dim in self.layer_shapes:
                rows = weight[offset : offset + out_dim * in_dim]
                rows.normal_(0.0, (in_dim * action_sq_norm) ** -0.5)
                offset += out_dim * in_dim
                if self.bias_pred:
                    weight[offset : offset + out_dim].zero_()
                    offset += out_dim
            if self.hypernet.bias is not None:
                self.hypernet.bias.zero_()

    def predicted_parameters(self, g: Tensor) -> list[tuple[Tensor, Tensor | None]]:
        """Per predicted layer: weights [B, out, in] and biases [B, out] (or None)."""
        flat = self.hypernet(g)
        params: list[tuple[Tensor, Tensor | None]] = []
        offset = 0
        for out_dim, in_dim in self.layer_shapes:
            weight = flat[:, offset : offset + out_dim * in_dim].view(-1, out_dim, in_dim)
            offset += out_dim * in_dim
            bias = None
            if self.bias_pred:
                bias = flat[:, offset : offset + out_dim]
                offset += out_dim
            params.append((weight, bias))
        return params

    def weight(self, g: Tensor) -> Tensor:
        """W(g) [B, d, d] of a single-layer predicted network (the SIE default)."""
        if len(self.layer_shapes) != 1:
            raise ValueError("weight() is defined for a single predicted layer (hidden=[])")
        return self.predicted_parameters(g)[0][0]

    def forward(self, z: Tensor, g: Tensor) -> Tensor:
        if g.shape[-1] != self.action_dim:
            raise ValueError(f"action width {g.shape[-1]} != predictor's {self.action_dim}")
        if self._is_plain_linear():
            return self._linear_fast(z, g)
        out = z
        layers = self.predicted_parameters(g)
        for index, (weight, bias) in enumerate(layers):
            out = torch.bmm(weight, out.unsqueeze(-1)).squeeze(-1)
            if bias is not None:
                out = out + bias
            if index < len(layers) - 1:
                out = self.activation(out)
        return out

    def _is_plain_linear(self) -> bool:
        return (
            self.kind == "linear"
            and len(self.layer_shapes) == 1
            and not self.bias_pred
            and isinstance(self.hypernet, nn.Linear)
            and self.hypernet.bias is None
        )

    def _linear_fast(self, z: Tensor, g: Tensor) -> Tensor:
        """Σ_k g_k (A_k z) without materialising W(g) per sample (same value)."""
        out_dim, in_dim = self.layer_shapes[0]
        assert isinstance(self.hypernet, nn.Linear)
        # nn.Linear stores H as [P, k]: column k is vec(A_k) in row-major [out, in] order.
        a = self.hypernet.weight.T.reshape(self.action_dim, out_dim, in_dim)
        a_z = torch.einsum("koi,bi->bko", a, z)
        return torch.einsum("bk,bko->bo", g, a_z)


class ConcatPredictor(nn.Module):
    """ẑ′ = MLP([g ‖ z]) (EquiMod/SEN concatenation predictor, methods.md §1.5)."""

    def __init__(self, dim: int, action_dim: int, num_layers: int = 1) -> None:
        super().__init__()
        self.action_dim = action_dim
        layers: list[nn.Module] = []
        in_dim = dim + action_dim
        for _ in range(num_layers - 1):
            layers += [nn.Linear(in_dim, dim), nn.ReLU()]
            in_dim = dim
        layers.append(nn.Linear(in_dim, dim))
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor, g: Tensor) -> Tensor:
        if g.shape[-1] != self.action_dim:
            raise ValueError(f"action width {g.shape[-1]} != predictor's {self.action_dim}")
        return self.net(torch.cat([g, z], dim=-1))


def expected_action_sq_norm(config: PredictorConfig, action: str | None) -> float:
    """E‖g‖² used by the norm-preserving init: the config's value, else the encoding's."""
    if config.init_action_sq_norm is not None:
        return config.init_action_sq_norm
    if action in EXPECTED_ACTION_SQ_NORM:
        return EXPECTED_ACTION_SQ_NORM[action]
    raise ValueError(
        f"predictor.init=norm_preserving needs E‖g‖² of the action encoding {action!r}; "
        f"known for {sorted(EXPECTED_ACTION_SQ_NORM)}: set predictor.init_action_sq_norm"
    )


def build_predictor(
    config: PredictorConfig, dim: int, action_dim: int, action: str | None = None
) -> nn.Module:
    """The predictor ``config`` describes, acting on ``dim``-wide embeddings.

    ``action`` names the encoding of g (``ACTION_DIMS``); the norm-preserving init reads
    its expected squared norm.
    """
    if config.type == "mlp":
        return ConcatPredictor(dim, action_dim, config.mlp_layers)
    predictor = HypernetworkPredictor(
        dim,
        action_dim,
        kind=config.hypernetwork,
        hidden=config.hidden,
        relu=config.relu,
        bias_pred=config.bias_pred,
        bias_hypernet=config.bias_hypernet,
    )
    if config.init == "norm_preserving":
        predictor.init_norm_preserving(expected_action_sq_norm(config, action))
    return predictor


def hypernetwork_parameter_count(dim: int, action_dim: int) -> int:
    """Parameters of SIE's default linear hypernetwork: k·d² (4,194,304 for d = 1024, k = 4)."""
    return action_dim * dim * dim


__all__ = [
    "EXPECTED_ACTION_SQ_NORM",
    "ConcatPredictor",
    "HypernetworkPredictor",
    "PredictorConfig",
    "build_predictor",
    "expected_action_sq_norm",
    "hypernetwork_parameter_count",
]
