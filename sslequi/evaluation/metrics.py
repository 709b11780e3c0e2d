"""Metric formulas of the evaluators (evaluation.md §2–§7), as plain tensor functions.

* R² both ways (§4.1): ``r2_global`` (SIE/CapsIE/EquiCaps, one scalar mean over every
  component) and ``r2_per_component`` (sklearn's default, seq-JEPA), each with the floor of
  the best constant predictor on the same targets (§4.2).
* Sign-aware quaternion reporting (§5.1 harness addition): w ≥ 0 canonicalisation and the
  sign-invariant error 1 − ⟨q, q̂/‖q̂‖⟩².
* Top-k accuracy, weighted cosine kNN (§3), ranks / MRR / Hit@k (§6) and PRE (§7).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def _as_2d(values: Tensor) -> Tensor:
    values = values.double()
    return values.unsqueeze(1) if values.dim() == 1 else values.reshape(values.shape[0], -1)


def r2_global(targets: Tensor, predictions: Tensor) -> float:
    """R²_SIE = 1 − Σ_{n,j}(y−ŷ)² / Σ_{n,j}(y − ȳ)², ȳ one scalar over all entries (§4.1)."""
    y, y_hat = _as_2d(targets), _as_2d(predictions)
    _check_shapes(y, y_hat)
    denominator = (y - y.mean()).pow(2).sum()
    if denominator <= 0:
        raise ValueError("R²_global undefined: the targets are constant")
    return float(1.0 - (y - y_hat).pow(2).sum() / denominator)


def r2_per_component(targets: Tensor, predictions: Tensor) -> float:
    """sklearn's r2_score (uniform average): mean_j [1 − Σ_n(y−ŷ)² / Σ_n(y − ȳ_j)²] (§4.1).

    Components with zero variance score 1 if predicted exactly, else 0 (sklearn's rule).
    """
    y, y_hat = _as_2d(targets), _as_2d(predictions)
    _check_shapes(y, y_hat)
    residual = (y - y_hat).pow(2).sum(0)
    total = (y - y.mean(0, keepdim=True)).pow(2).sum(0)
    per_component = torch.where(
        total > 0,
        1.0 - residual / total.clamp_min(1e-300),
        (residual == 0).double(),
    )
    return float(per_component.mean())


def constant_floor_global(targets: Tensor) -> float:
    """R²_global of the best constant predictor ŷ_nj = ȳ_j on these targets (§4.2)."""
    y = _as_2d(targets)
    return r2_global(y, y.mean(0, keepdim=True).expand_as(y))


def constant_floor_per_component(targets: Tensor) -> float:
    """R²_pc of ŷ_nj = ȳ_j: 0 whenever every component varies (§4.2)."""
    y = _as_2d(targets)
    return r2_per_component(y, y.mean(0, keepdim=True).expand_as(y))


def canonicalize_quaternion(quaternions: Tensor) -> Tensor:
    """Flip (x, y, z, w) quaternions so that w ≥ 0 (the same rotation, a continuous target)."""
    sign = torch.where(quaternions[..., 3:4] < 0, -1.0, 1.0).to(quaternions.dtype)
    return quaternions * sign


def sign_invariant_error(targets: Tensor, predictions: Tensor) -> float:
    """mean 1 − ⟨q, q̂/‖q̂‖⟩²: 0 for the right rotation whatever the sign (§5.1 addition)."""
    q = targets.double()
    q = q / q.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    q_hat = predictions.double()
    q_hat = q_hat / q_hat.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return float((1.0 - (q * q_hat).sum(-1).pow(2)).mean())


def topk_accuracy(logits: Tensor, labels: Tensor, k: int) -> float:
    """Fraction of rows whose label is among the k highest logits."""
    k = min(k, logits.shape[1])
    top = logits.topk(k, dim=1).indices
    return float((top == labels.unsqueeze(1)).any(dim=1).double().mean())


def knn_class_scores(
    bank: Tensor,
    bank_labels: Tensor,
    queries: Tensor,
    num_classes: int,
    k: int,
    temperature: float,
    chunk_size: int = 1024,
) -> Tensor:
    """Weighted cosine kNN (§3): S_c = Σ_{i∈top-k} 1[y_i = c]·exp(s_i / T). Returns [Q, C]."""
    bank = torch.nn.functional.normalize(bank.float(), dim=1)
    queries = torch.nn.functional.normalize(queries.float(), dim=1)
    k = min(k, bank.shape[0])
    scores = []
    for start in range(0, queries.shape[0], chunk_size):
        similarity = queries[start : start + chunk_size] @ bank.T
        top_sim, top_idx = similarity.topk(k, dim=1)
        weights = (top_sim / temperature).exp()
        votes = torch.zeros(similarity.shape[0], num_classes, device=bank.device)
        votes.scatter_add_(1, bank_labels[top_idx], weights)
        scores.append(votes)
    return torch.cat(scores)


def retrieval_ranks(predictions: Tensor, candidates: Tensor, normalize: bool = True) -> Tensor:
    """Rank of the true candidate for each query (§6 step 3).

    ``predictions`` [N, T, E]: object n's prediction of its view t; ``candidates`` [N, T, E]:
    the embeddings of the same object's views. rank = 1 + #{k : s_k > s_t}, s_k = ⟨ẑ, z_k⟩.
    Returns [N, T] int64.
    """
    if predictions.shape != candidates.shape:
        raise ValueError(
            f"predictions {tuple(predictions.shape)} and candidates "
            f"{tuple(candidates.shape)} must both be [objects, views, dim]"
        )
    if normalize:
        predictions = predictions / predictions.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        candidates = candidates / (candidates.norm(dim=-1, keepdim=True) + 1e-8)
    scores = predictions @ candidates.transpose(1, 2)  # [N, T(query), T(candidate)]
    own = scores.diagonal(dim1=1, dim2=2).unsqueeze(-1)
    return 1 + (scores > own).sum(-1)


def mrr_and_hits(ranks: Tensor, ks: tuple[int, ...] = (1, 2, 5, 10)) -> dict[str, float]:
    """MRR = mean 1/rank and H@k = mean 1[rank ≤ k] (§6 step 4, fractions)."""
    ranks = ranks.reshape(-1).double()
    out = {"mrr": float((1.0 / ranks).mean())}
    for k in ks:
        out[f"hit@{k}"] = float((ranks <= k).double().mean())
    return out


def chance_mrr(num_candidates: int) -> float:
    """E[1/rank] for a uniformly random ranking: (1/n) Σ_{r=1}^{n} 1/r (≈ 0.090 for 50)."""
    return sum(1.0 / r for r in range(1, num_candidates + 1)) / num_candidates


def nearest_neighbours(
    queries: Tensor, bank: Tensor, normalize: bool = True, chunk_size: int = 2048
) -> Tensor:
    """Index of argmax_k ⟨q̂, z_k⟩ over the whole bank for every query (§7)."""
    if normalize:
        queries = queries / queries.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        bank = bank / (bank.norm(dim=-1, keepdim=True) + 1e-8)
    found = [
        (queries[start : start + chunk_size] @ bank.T).argmax(dim=1)
        for start in range(0, queries.shape[0], chunk_size)
    ]
    return torch.cat(found)


def prediction_error_of_retrieval(target_quats: Tensor, retrieved_quats: Tensor) -> float:
    """PRE = mean [1 − ⟨q_t, q_nn⟩²] = mean sin²(θ/2), independent of sign (§7)."""
    q_t = target_quats.double() / target_quats.double().norm(dim=-1, keepdim=True)
    q_nn = retrieved_quats.double() / retrieved_quats.double().norm(dim=-1, keepdim=True)
    return float((1.0 - (q_t * q_nn).sum(-1).pow(2)).mean())


def _check_shapes(y: Tensor, y_hat: Tensor) -> None:
    if y.shape != y_hat.shape:
        raise ValueError(f"targets {tuple(y.shape)} and predictions {tuple(y_hat.shape)} differ")
    if y.shape[0] < 2:
        raise ValueError("R² needs at least two samples")
    if not math.isfinite(float(y_hat.sum())):
        raise ValueError("predictions contain NaN or inf")
