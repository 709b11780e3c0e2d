"""Loss terms shared across methods: plain functions, tensors in, scalar out.

References are to ``shared/reference/methods.md``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def invariance_mse(z_a: Tensor, z_b: Tensor) -> Tensor:
    """VICReg invariance term: mean squared error over batch and dims (§1.1)."""
    return F.mse_loss(z_a, z_b)


def variance_hinge(z: Tensor, eps: float = 1e-4) -> Tensor:
    """v(Z) = (1/D) Σ_d ReLU(1 − √(Var(Z_d) + ε)) (§1.1; unbiased variance)."""
    std = torch.sqrt(z.var(dim=0) + eps)
    return F.relu(1.0 - std).mean()


def covariance_penalty(z: Tensor, denominator: int | None = None) -> Tensor:
    """c(Z) = (1/D) Σ_{i≠j} C(Z)²_ij with C = ZᵀZ/(N − 1) on centred Z (§1.1).

    ``denominator`` is the N used in N − 1 (the SIE code passes its global batch-size
    argument; register item 4). ``None`` uses the actual batch.
    """
    n, d = z.shape
    n_eff = n if denominator is None else denominator
    z = z - z.mean(dim=0)
    cov = (z.T @ z) / (n_eff - 1)
    off_diagonal = cov - torch.diag(torch.diagonal(cov))
    return off_diagonal.pow(2).sum() / d


def nt_xent(z_a: Tensor, z_b: Tensor, temperature: float) -> Tensor:
    """SimCLR NT-Xent with 2N − 2 negatives, mean over the 2N anchors (§1.2)."""
    n = z_a.shape[0]
    u = F.normalize(torch.cat([z_a, z_b]), dim=1)
    logits = (u @ u.T) / temperature
    logits.fill_diagonal_(float("-inf"))
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z_a.device)
    return F.cross_entropy(logits, targets)


def cross_view_infonce(z_a: Tensor, z_b: Tensor, temperature: float) -> Tensor:
    """E-SSL CIFAR InfoNCE with B − 1 cross-view negatives, symmetrised (§1.2)."""
    a = F.normalize(z_a, dim=1)
    b = F.normalize(z_b, dim=1)
    logits = (a @ b.T) / temperature
    targets = torch.arange(a.shape[0], device=a.device)
    return 0.5 * F.cross_entropy(logits, targets) + 0.5 * F.cross_entropy(logits.T, targets)


def negative_cosine(p: Tensor, z: Tensor) -> Tensor:
    """2 − 2 cos(p, z) averaged over the batch (BYOL); ``z`` should be detached."""
    return 2.0 - 2.0 * F.cosine_similarity(p, z, dim=-1).mean()


def vicreg_terms(z_a: Tensor, z_b: Tensor) -> dict[str, Tensor]:
    """Unweighted VICReg terms (§1.1) as the SIE code computes them: ``sim`` = MSE on the
    local batch; ``var`` = ½ v(Z) + ½ v(Z′) and ``cov`` = c(Z) + c(Z′) on the batch gathered
    over ranks. Weighted sum: λ_sim·sim + λ_std·var + λ_cov·cov."""
    from sslequi.methods.distributed import gather

    sim = invariance_mse(z_a, z_b)
    z_a, z_b = gather(z_a), gather(z_b)
    return {
        "sim": sim,
        "var": 0.5 * variance_hinge(z_a) + 0.5 * variance_hinge(z_b),
        "cov": covariance_penalty(z_a) + covariance_penalty(z_b),
    }
