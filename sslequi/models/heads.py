"""Projector and predictor MLPs, built on lightly's ``ProjectionHead`` blocks.

- ``mlp_projector``: SIE's ``Projector`` (``facebookresearch/SIE:src/models.py``; methods.md
  §2.1, §14): ``[Linear(bias) → BN1d → ReLU] × (L − 1) → Linear(no bias)`` with widths from a
  string such as ``"2048-2048-2048"``. Used by SIE, and by SIE's SimCLR and VICReg baselines.
  ``hidden_bias=False`` and ``final_bn`` give E-SSL's SimCLR projectors (methods.md §7.3):
  every Linear without bias, ending in BatchNorm (``no_affine`` on CIFAR, ``affine`` on
  ImageNet).
  lightly's ``VICRegProjectionHead`` differs (no bias before BN, a bias on the last layer),
  so this one is assembled from lightly's generic ``ProjectionHead`` with explicit bias
  flags instead.
- lightly's method heads where they match the papers: ``BYOLProjectionHead`` /
  ``BYOLPredictionHead`` (Linear → BN → ReLU → Linear, BYOL §3.3) and
  ``SimSiamProjectionHead`` / ``SimSiamPredictionHead`` (SimSiam §3: 3-layer projector with
  BN on every layer, output BN without affine; 2-layer bottleneck predictor). The builders
  below only name their sizes.
"""

from __future__ import annotations

from lightly.models.modules.heads import (
    BYOLPredictionHead,
    BYOLProjectionHead,
    ProjectionHead,
    SimSiamPredictionHead,
    SimSiamProjectionHead,
)
from torch import nn


def parse_mlp(spec: str) -> tuple[int, ...]:
    """``"2048-2048-2048"`` → ``(2048, 2048, 2048)``; clear errors for malformed strings."""
    text = str(spec).strip()
    if not text:
        raise ValueError("MLP spec is empty; expected widths like '2048-2048-2048'")
    widths: list[int] = []
    for part in text.split("-"):
        try:
            width = int(part)
        except ValueError:
            raise ValueError(
                f"MLP spec {spec!r}: {part!r} is not an integer; expected widths like "
                "'2048-2048-2048'"
            ) from None
        if width < 1:
            raise ValueError(f"MLP spec {spec!r}: width {width} must be ≥ 1")
        widths.append(width)
    return tuple(widths)


FINAL_BN = ("none", "affine", "no_affine")


def mlp_projector(
    input_dim: int,
    widths: tuple[int, ...] | str,
    hidden_bias: bool = True,
    final_bn: str = "none",
) -> ProjectionHead:
    """SIE's projector: ``[Linear → BN1d → ReLU] × (L − 1) → Linear(no bias)``.

    ``widths`` are the output sizes of the L linear layers (a tuple or a ``"a-b-c"`` string).
    The output dimension is ``widths[-1]``. ``hidden_bias`` False drops the biases of the
    hidden Linears (E-SSL); ``final_bn`` ``affine`` / ``no_affine`` appends a BatchNorm1d
    (with / without learnable scale and shift) after the last Linear.
    """
    if final_bn not in FINAL_BN:
        raise ValueError(f"projector final_bn must be one of {FINAL_BN}, got {final_bn!r}")
    sizes = parse_mlp(widths) if isinstance(widths, str) else tuple(widths)
    if not sizes:
        raise ValueError("a projector needs at least one layer")
    dims = (input_dim, *sizes)
    blocks: list[tuple[int, int, nn.Module | None, nn.Module | None, bool]] = [
        (dims[i], dims[i + 1], nn.BatchNorm1d(dims[i + 1]), nn.ReLU(inplace=True), hidden_bias)
        for i in range(len(sizes) - 1)
    ]
    last_bn = None
    if final_bn != "none":
        last_bn = nn.BatchNorm1d(dims[-1], affine=final_bn == "affine")
    blocks.append((dims[-2], dims[-1], last_bn, None, False))
    return ProjectionHead(blocks)


def byol_projector(input_dim: int, hidden_dim: int, output_dim: int) -> BYOLProjectionHead:
    """BYOL projector (Grill et al. 2020 §3.3): Linear → BN → ReLU → Linear."""
    return BYOLProjectionHead(input_dim, hidden_dim, output_dim)


def byol_predictor(dim: int, hidden_dim: int) -> BYOLPredictionHead:
    """BYOL predictor q: the same MLP shape as the projector, ``dim → hidden → dim``."""
    return BYOLPredictionHead(dim, hidden_dim, dim)


def simsiam_projector(input_dim: int, hidden_dim: int, output_dim: int) -> SimSiamProjectionHead:
    """SimSiam projector (Chen & He 2021 §3): three BN'd layers, output BN without affine."""
    return SimSiamProjectionHead(input_dim, hidden_dim, output_dim)


def simsiam_predictor(dim: int, hidden_dim: int) -> SimSiamPredictionHead:
    """SimSiam predictor h: bottleneck ``dim → hidden (BN, ReLU) → dim``."""
    return SimSiamPredictionHead(dim, hidden_dim, dim)


def output_dim(head: nn.Module) -> int:
    """Output width of a head built from ``Linear`` layers (its last ``Linear``)."""
    linears = [m for m in head.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"{type(head).__name__} has no Linear layer")
    return linears[-1].out_features
