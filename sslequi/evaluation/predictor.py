"""MRR, Hit@k and PRE of a method's learned predictor (evaluation.md §6–7).

1. Every view of every object is embedded (cached features, eval mode), the equivariant
   part sliced (``Method.parts().equivariant``; the full representation when the method
   declares none) and projected with ``method.embed_equivariant`` → z.
2. For object o and every view t (t = 0 included): action g = encoding of view 0 → view t
   (``method.predictor_action`` through ``sslequi.actions``), ẑ = ``method.predict(z₀, g)``.
3. Candidates are the views of the same object: rank of t among ⟨ẑ, z_k⟩ → MRR and H@k.
4. PRE: nearest neighbour of ẑ over the whole target set; mean 1 − ⟨q_t, q_nn⟩² of the
   absolute rotation quaternions.

Unlike the official scripts (§11 pitfalls 3–4), any width mismatch between the features,
the projector and the predictor raises before anything is computed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from sslequi.actions import ActionOptions, compute_actions
from sslequi.augment.params import ViewParams
from sslequi.evaluation import metrics
from sslequi.evaluation.features import ViewFeatures, part_slice
from sslequi.evaluation.protocol import PredictorSettings
from sslequi.methods.base import Method
from sslequi.types import ACTION_DIMS


class UnsupportedProbe(ValueError):
    """A probe the method or the dataset cannot support."""


@dataclass
class PredictorScores:
    """Metric name → value, plus the counts they were computed on."""

    values: dict[str, float]
    num_queries: int
    num_candidates: int
    bank_size: int


def check_predictor(method: Method) -> str:
    """The predictor's action encoding; fails clearly for a method without a predictor."""
    action = method.predictor_action
    if action is None or not method.has_predictor:
        raise UnsupportedProbe(
            f"probe 'mrr' needs a learned predictor, but {type(method).__name__} declares "
            "none (Method.predictor_action is None)"
        )
    if action not in ACTION_DIMS:
        raise UnsupportedProbe(f"{type(method).__name__}.predictor_action {action!r} is unknown")
    return action


def equivariant_slice(method: Method, dim: int) -> slice:
    parts = method.parts()
    return part_slice("equivariant" if parts.equivariant is not None else "full", parts, dim)


@torch.no_grad()
def embed_all(method: Method, features: ViewFeatures, device: torch.device) -> Tensor:
    """z = embed_equivariant(y_equi) for every view: [N, V, E]; fails loudly on mismatch."""
    y = features.features[..., equivariant_slice(method, features.features.shape[-1])]
    flat = y.reshape(-1, y.shape[-1]).float()
    method.eval()
    out = []
    for start in range(0, flat.shape[0], 4096):
        chunk = flat[start : start + 4096].to(device)
        try:
            out.append(method.embed_equivariant(chunk).float().cpu())
        except RuntimeError as error:
            raise ValueError(
                f"{type(method).__name__}.embed_equivariant rejected equivariant features of "
                f"width {chunk.shape[-1]} (parts {method.parts()}): {error}"
            ) from error
    z = torch.cat(out)
    return z.reshape(y.shape[0], y.shape[1], -1)


def _actions(latents: Tensor, name: str, source_view: int) -> Tensor:
    """[N, V, k]: action from the source view to every view t of the same object."""
    n, v, _ = latents.shape
    source = latents[:, source_view : source_view + 1].expand(n, v, -1)
    pairs = torch.stack([source, latents], dim=2).reshape(n * v, 2, -1)
    params = [ViewParams.empty(), ViewParams.empty()]
    return compute_actions((name,), pairs, params, ActionOptions()).pair(name).reshape(n, v, -1)


def absolute_quaternions(latents: Tensor) -> Tensor:
    """quat(R) of every view: [N, V, 4] (relative action from the identity)."""
    n, v, _ = latents.shape
    flat = latents.reshape(n * v, 1, -1)
    pairs = torch.cat([torch.zeros_like(flat), flat], dim=1)
    params = [ViewParams.empty(), ViewParams.empty()]
    quats = compute_actions(("rotation_quat",), pairs, params, ActionOptions())
    return quats.pair("rotation_quat").reshape(n, v, 4)


@torch.no_grad()
def predict_all(
    method: Method, z: Tensor, latents: Tensor, action: str, source_view: int, device: torch.device
) -> Tensor:
    """ẑ = predict(z_source, g_source→t) for every object and view t: [N, V, E]."""
    n, v, e = z.shape
    if not 0 <= source_view < v:
        raise ValueError(f"source_view {source_view} outside 0..{v - 1}")
    actions = _actions(latents, action, source_view)
    sources = z[:, source_view : source_view + 1].expand(n, v, e).reshape(n * v, e)
    flat_actions = actions.reshape(n * v, -1)
    out = []
    for start in range(0, n * v, 4096):
        try:
            pred = method.predict(
                sources[start : start + 4096].to(device),
                flat_actions[start : start + 4096].to(device),
            )
        except RuntimeError as error:
            raise ValueError(
                f"{type(method).__name__}.predict rejected z of width {e} with {action!r} "
                f"actions of width {flat_actions.shape[-1]}: {error}"
            ) from error
        if pred.shape != (min(4096, n * v - start), e):
            raise ValueError(
                f"{type(method).__name__}.predict returned {tuple(pred.shape)}; the "
                f"embeddings are {e}-wide, so predictions must be [B, {e}]"
            )
        out.append(pred.float().cpu())
    return torch.cat(out).reshape(n, v, e)


def predictor_metrics(
    method: Method,
    query: ViewFeatures,
    settings: PredictorSettings,
    device: torch.device,
    extra_bank: ViewFeatures | None = None,
) -> PredictorScores:
    """MRR, H@k (fractions) and PRE of ``query``'s split; ``extra_bank`` widens PRE (val-all)."""
    action = check_predictor(method)
    if query.latents is None:
        raise UnsupportedProbe("probe 'mrr' needs dataset latents (rotations); this split has none")
    z = embed_all(method, query, device)
    z_hat = predict_all(method, z, query.latents, action, settings.source_view, device)
    ranks = metrics.retrieval_ranks(z_hat, z, normalize=settings.normalize)
    values = metrics.mrr_and_hits(ranks, tuple(settings.ks))
    values["mrr_chance"] = metrics.chance_mrr(z.shape[1])

    bank, bank_quats = z.reshape(-1, z.shape[-1]), absolute_quaternions(query.latents)
    bank_quats = bank_quats.reshape(-1, 4)
    if extra_bank is not None:
        if extra_bank.latents is None:
            raise UnsupportedProbe("the PRE bank split has no latents")
        extra_z = embed_all(method, extra_bank, device)
        bank = torch.cat([bank, extra_z.reshape(-1, extra_z.shape[-1])])
        bank_quats = torch.cat(
            [bank_quats, absolute_quaternions(extra_bank.latents).reshape(-1, 4)]
        )
    nn_index = metrics.nearest_neighbours(
        z_hat.reshape(-1, z_hat.shape[-1]), bank, normalize=settings.normalize
    )
    target_quats = absolute_quaternions(query.latents).reshape(-1, 4)
    values["pre"] = metrics.prediction_error_of_retrieval(target_quats, bank_quats[nn_index])
    return PredictorScores(
        values=values,
        num_queries=int(ranks.numel()),
        num_candidates=int(z.shape[1]),
        bank_size=int(bank.shape[0]),
    )
