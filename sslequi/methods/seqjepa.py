"""seq-JEPA (Ghaemi, Muller, Bakhtiari, NeurIPS 2025, arXiv 2505.03176; methods.md §9).

A joint-embedding predictive architecture over a sequence of M observed views x₁…x_M and a
target view x_{M+1}, with relative actions a_i = t_{i+1} ⊖ t_i between consecutive views
(the harness's ``sslequi.actions``: ``rotation_quat`` / ``rot_color`` / ``all_latents`` on
3DIEBench, ``aug_params_9d`` on 2D sets, ``fixation_offset`` for STL-10 PLS).

Model (§9.1; official ``seq-jepa/src/models.py`` ``SeqJEPA_Transforms`` / ``SeqJEPA_PLS``):

- encoder z_i = f_θ(x_i) (the backbone, ``feature_dim`` D; 512 for ResNet-18);
- action embedding e(a) = BN₁₂₈(affine=False)(W a), W = Linear(d_a → 128, no bias);
- tokens [z_i ; e(a_i)] for i < M and [z_M ; 0] (the last observed token's action slot is
  zeroed *after* the projection, so the BatchNorm statistics include that zero row, as the
  code does);
- a zero-initialised [AGG] token is prepended; a post-norm ``nn.TransformerEncoder`` (3
  layers, 4 heads, d_model = D + 128, FFN 4·d_model, dropout 0.1, ReLU) with a final
  LayerNorm; **no positional encoding** (order enters only through the actions);
  z_AGG = out[:, 0];
- predictor ẑ_{M+1} = g([z_AGG ; e(a_M)]), g = Lin(→1024, no bias)-BN-ReLU-Lin(→D);
- target z̄_{M+1} = f_ξ(x_{M+1}), ξ an EMA of the **encoder only** (``sslequi.models.ema``;
  the target runs in train mode with its own batch statistics, its BN buffers are copied,
  never averaged). After each step ξ ← τξ + (1 − τ)θ with the per-epoch cosine
  τ(e) = 1 − (1 − 0.996)(cos(π e / E) + 1)/2 (§9.1). The official code sets τ(e) *after*
  each update, so its first update of an epoch still uses τ(e − 1); this file uses τ(e)
  for every update of epoch e (a one-step difference per epoch).

Loss (§9.2): L = 1 − mean_b cos(ẑ_{M+1}, sg z̄_{M+1}) (``seqjepa_loss``).

``action_conditioning=false`` is the paper's ablation (§0.3(a) last row): the action slots
of the tokens and the predictor's action are zeros (d_model unchanged; the official code
drops the slots instead, d_model = D; the zeros keep the parameter count equal).

Online probes (§9.2, ``engine.py``): the trainer's linear probe reads ``features[0]`` =
z_AGG (``online_probe_dim`` = d_model); ``online_action_probe`` adds the MLP(2D → 1024 →
1024 → d_a) regressing a₁ from detached [z₁ ; z₂] with MSE, added to the loss as the code
does (the pure JEPA term is logged as ``jepa``).

Evaluation: per-view encoder embeddings are the ``full`` representation (equivariant;
relative-rotation / colour / aug-param / fixation probes on pairs); z_AGG is read by the
``agg_linear`` probe through ``aggregate`` (M_val observed views and their actions).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sslequi.methods.base import Method, MethodConfig
from sslequi.models.ema import EMA, cosine_momentum
from sslequi.registry import register_method
from sslequi.types import ACTION_DIMS, Batch, MethodSpec, StepOutput

MomentumSchedule = Literal["epoch_cosine", "step_cosine", "constant"]


def seqjepa_loss(prediction: Tensor, target: Tensor) -> Tensor:
    """1 − mean_b cos(ẑ_b, sg z̄_b) (methods.md §9.2); ``target`` is detached here."""
    return 1.0 - F.cosine_similarity(prediction, target.detach(), dim=-1).mean()


def per_component_r2(targets: Tensor, predictions: Tensor) -> Tensor:
    """sklearn's ``r2_score`` (uniform average over outputs) on one batch (online probe)."""
    residual = (targets - predictions).pow(2).sum(0)
    total = (targets - targets.mean(0)).pow(2).sum(0).clamp_min(1e-12)
    return (1.0 - residual / total).mean()


@dataclass
class SeqJEPAConfig(MethodConfig):
    """seq-JEPA options (``configs/method/seqjepa.yaml``); defaults are the paper's (§9.1)."""

    name: str = "seqjepa"
    observed_views: int = 3  # M (--seq-len); the method consumes M + 1 views
    action: str = "rotation_quat"  # the ACTION_DIMS encoding of a_i (rot: 4, rotcolor: 6, ...)
    action_conditioning: bool = True  # false: the ablation (zero action slots)
    action_embed_dim: int = 128  # --act-projdim
    num_layers: int = 3  # --num-enc-layers
    num_heads: int = 4
    ffn_ratio: int = 4  # FFN width = ffn_ratio · d_model
    dropout: float = 0.1  # nn.TransformerEncoderLayer default, as the code
    predictor_hidden: int = 1024  # --pred-hidden
    base_momentum: float = 0.996  # τ_base (--ema-decay)
    momentum_schedule: MomentumSchedule = "epoch_cosine"  # §9.1; step_cosine: BYOL's
    online_action_probe: bool = True  # §9.2 MLP regressing a₁ from [z₁ ; z₂]
    online_probe_hidden: int = 1024

    def __post_init__(self) -> None:
        if self.observed_views < 1:
            raise ValueError(f"seqjepa.observed_views must be ≥ 1, got {self.observed_views}")
        if self.action not in ACTION_DIMS:
            raise ValueError(
                f"seqjepa.action {self.action!r} is not an action encoding; known: "
                f"{sorted(ACTION_DIMS)}"
            )
        for name in ("action_embed_dim", "num_layers", "num_heads", "ffn_ratio"):
            if getattr(self, name) < 1:
                raise ValueError(f"seqjepa.{name} must be ≥ 1, got {getattr(self, name)}")
        if self.predictor_hidden < 1 or self.online_probe_hidden < 1:
            raise ValueError("seqjepa.predictor_hidden and online_probe_hidden must be ≥ 1")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"seqjepa.dropout must lie in [0, 1), got {self.dropout}")
        if not 0.0 <= self.base_momentum <= 1.0:
            raise ValueError(f"seqjepa.base_momentum must lie in [0, 1], got {self.base_momentum}")
        if self.momentum_schedule not in ("epoch_cosine", "step_cosine", "constant"):
            raise ValueError(
                "seqjepa.momentum_schedule must be epoch_cosine, step_cosine or constant, got "
                f"{self.momentum_schedule!r}"
            )

    def validate(self, feature_dim: int) -> None:
        """d_model = feature_dim + action_embed_dim must split over the heads."""
        d_model = feature_dim + self.action_embed_dim
        if d_model % self.num_heads:
            raise ValueError(
                f"seqjepa: d_model = feature dim {feature_dim} + action_embed_dim "
                f"{self.action_embed_dim} = {d_model} is not divisible by num_heads "
                f"{self.num_heads}"
            )


def epoch_cosine_momentum(epoch: int, epochs: int, base: float) -> float:
    """τ(e) = 1 − (1 − base)(cos(π e / E) + 1)/2 (§9.1), e the 0-based epoch."""
    return cosine_momentum(epoch, epochs, base)


@register_method("seqjepa", config=SeqJEPAConfig)
class SeqJEPA(Method):
    """Encoder + action embedding + [AGG] transformer + predictor; EMA target encoder."""

    config_class = SeqJEPAConfig
    config: SeqJEPAConfig

    def __init__(self, config: SeqJEPAConfig, backbone: nn.Module, feature_dim: int) -> None:
        super().__init__(config, backbone, feature_dim)
        config.validate(feature_dim)
        self.action_dim = ACTION_DIMS[config.action]
        embed = config.action_embed_dim
        self.d_model = feature_dim + embed
        self.action_embedding = nn.Sequential(
            nn.Linear(self.action_dim, embed, bias=False),
            nn.BatchNorm1d(embed, affine=False),
        )
        self.agg_token = nn.Parameter(torch.zeros(1, 1, self.d_model))
        layer = nn.TransformerEncoderLayer(
            d_model=self.d_model,
            nhead=config.num_heads,
            dim_feedforward=config.ffn_ratio * self.d_model,
            dropout=config.dropout,
            activation="relu",
            batch_first=True,
            norm_first=False,  # post-norm
        )
        self.aggregator = nn.TransformerEncoder(
            layer,
            num_layers=config.num_layers,
            norm=nn.LayerNorm(self.d_model),
            enable_nested_tensor=False,
        )
        self.predictor = nn.Sequential(
            nn.Linear(self.d_model + embed, config.predictor_hidden, bias=False),
            nn.BatchNorm1d(config.predictor_hidden),
            nn.ReLU(inplace=True),
            nn.Linear(config.predictor_hidden, feature_dim),
        )
        self.target_backbone = EMA(self.backbone)
        self.action_probe: nn.Module | None = None
        if config.online_action_probe:
            hidden = config.online_probe_hidden
            self.action_probe = nn.Sequential(
                nn.Linear(2 * feature_dim, hidden),
                nn.ReLU(),
                nn.Linear(hidden, hidden),
                nn.ReLU(),
                nn.Linear(hidden, self.action_dim),
            )
        self.online_probe_dim = self.d_model  # the trainer's linear probe reads z_AGG
        self.momentum = config.base_momentum
        self.steps_per_epoch = 0  # set by the trainer (on_train_start); 0: one step = one epoch

    # ------------------------------------------------------------------ contract

    @property
    def sequence_action(self) -> str:
        return self.config.action

    def spec(self) -> MethodSpec:
        return MethodSpec(
            num_views=self.config.observed_views + 1,
            structure="sequence",
            actions=(self.config.action,),
        )

    def on_train_start(self, steps_per_epoch: int, total_steps: int) -> None:
        self.steps_per_epoch = steps_per_epoch

    # ------------------------------------------------------------------ model

    def embed_actions(self, actions: Tensor) -> Tensor:
        """e(a) for [B, k, d_a] → [B, k, 128] (one BatchNorm over the B·k rows)."""
        b, k, _ = actions.shape
        return self.action_embedding(actions.reshape(b * k, -1)).reshape(b, k, -1)

    def tokens(self, z_observed: Tensor, observed_actions: Tensor | None) -> Tensor:
        """[z_i ; e(a_i)] for i < M, [z_M ; 0] (§9.1): [B, M, d_model].

        ``observed_actions`` [B, M − 1, d_a] (a_i: view i → i + 1 among the observed views).
        """
        b, m, _ = z_observed.shape
        slots = torch.zeros(b, m, self.config.action_embed_dim, device=z_observed.device)
        if self.config.action_conditioning and m > 1:
            if observed_actions is None or observed_actions.shape[1] != m - 1:
                raise ValueError(f"the aggregator needs {m - 1} actions between {m} views")
            padded = torch.cat(
                [observed_actions, observed_actions.new_zeros(b, 1, self.action_dim)], dim=1
            )
            embedded = self.embed_actions(padded.to(z_observed.dtype))
            slots = torch.cat([embedded[:, :-1], slots[:, -1:].to(embedded.dtype)], dim=1)
        return torch.cat([z_observed, slots.to(z_observed.dtype)], dim=-1)

    def aggregate(self, z_observed: Tensor, observed_actions: Tensor | None) -> Tensor:
        """z_AGG [B, d_model] from encoder embeddings [B, M, D] and actions [B, M − 1, d_a]."""
        return self.aggregate_tokens(self.tokens(z_observed, observed_actions))

    def aggregate_tokens(self, tokens: Tensor) -> Tensor:
        """[AGG] prepended to ``tokens`` [B, M, d_model], the transformer, out[:, 0]."""
        agg = self.agg_token.expand(tokens.shape[0], -1, -1).to(tokens.dtype)
        return self.aggregator(torch.cat([agg, tokens], dim=1))[:, 0]

    def predict_next(self, z_agg: Tensor, next_action: Tensor) -> Tensor:
        """ẑ_{M+1} = g([z_AGG ; e(a_M)]); e(a_M) is zeros without action conditioning."""
        if self.config.action_conditioning:
            embedded = self.action_embedding(next_action.to(z_agg.dtype))
        else:
            embedded = z_agg.new_zeros(z_agg.shape[0], self.config.action_embed_dim)
        return self.predictor(torch.cat([z_agg, embedded.to(z_agg.dtype)], dim=-1))

    @torch.no_grad()
    def target_embedding(self, view: Tensor) -> Tensor:
        """z̄ = f_ξ(x), no gradient (the target in the owner's mode: train while training)."""
        return self.target_backbone(view)

    def forward(self, batch: Batch) -> StepOutput:
        m = self.config.observed_views
        if batch.num_views != m + 1:
            raise ValueError(f"seq-JEPA with M={m} needs {m + 1} views, got {batch.num_views}")
        actions = batch.actions.get(self.config.action).float()  # [B, M, d_a]
        b = batch.batch_size
        z_observed = self.backbone(torch.cat(batch.views[:m])).reshape(m, b, -1).transpose(0, 1)
        target = self.target_embedding(batch.views[m])
        z_agg = self.aggregate(z_observed, actions[:, : m - 1])
        prediction = self.predict_next(z_agg, actions[:, m - 1])
        jepa = seqjepa_loss(prediction, target)
        loss = jepa
        terms = {
            "jepa": jepa.detach(),
            "momentum": torch.tensor(self.momentum, device=jepa.device),
        }
        if self.action_probe is not None:
            second = z_observed[:, 1] if m > 1 else target
            pair = torch.cat([z_observed[:, 0], second], dim=-1).detach().float()
            predicted_action = self.action_probe(pair)
            probe_mse = F.mse_loss(predicted_action, actions[:, 0])
            loss = loss + probe_mse
            terms["online_action_mse"] = probe_mse.detach()
            terms["online_action_r2"] = per_component_r2(actions[:, 0], predicted_action).detach()
        return StepOutput(loss=loss, terms=terms, features=[z_agg.detach()])

    # ------------------------------------------------------------------ EMA

    def momentum_at(self, step: int, total_steps: int) -> float:
        """τ for the update after optimizer step ``step`` (1-based)."""
        base = self.config.base_momentum
        if self.config.momentum_schedule == "constant":
            return base
        if self.config.momentum_schedule == "step_cosine" or self.steps_per_epoch <= 0:
            return cosine_momentum(step - 1, total_steps, base)
        epochs = -(-total_steps // self.steps_per_epoch)  # ceil
        return epoch_cosine_momentum((step - 1) // self.steps_per_epoch, epochs, base)

    def on_step_end(self, step: int, total_steps: int) -> None:
        """ξ ← τξ + (1 − τ)θ for the encoder only (§9.1)."""
        self.momentum = self.momentum_at(step, total_steps)
        self.target_backbone.update(self.backbone, self.momentum)
