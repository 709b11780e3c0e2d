"""CARE — Contrastive Augmentation-induced Rotational Equivariance (Gupta*, Robinson*, Lim,
Villar, Jegelka, NeurIPS 2023, arXiv 2306.13924; code ``Sharut/CARE`` at ``7090100``;
methods.md §8).

    L = L_InfoNCE(ẑ¹, ẑ²) + λ · L_equi                                        (§8.1)

- L_InfoNCE: the base method's contrastive loss on the two per-sample views (views 0, 1):
  ``base=simclr``: NT-Xent with 2N − 2 negatives on unit projections (§1.2; CIFAR/STL τ 0.5);
  ``base=moco``: MoCo-v2's query/key InfoNCE against its queue (§8.4; IN-100 τ 0.2).
  ``loss_subtype`` (``--loss-subtype``) keeps one term: ``infonce`` (default), ``alignment``
  = −mean s_pos/τ, or ``uniformity`` = mean log Σ_neg e^{s/τ} (negatives only, as the
  official ``utils.py:infoNCE`` returns it); ``uniformity`` + λ L_equi is the paper's
  "equivariance + non-collapse, no invariance" variant.
- L_equi (``care_equivariance_loss``): a separate pair of batches (views 2, 3) rendered from
  the raw images by one augmentation pair (t₁, t₂) shared by every image of a chunk
  (``MethodSpec.chunk_shared_params``; ``configs/augment/care.yaml``). With K chunks of n
  images and Z = unit projections of the chunk's images, G = ZZᵀ,

      L_c = (2/n) Σ_i Σ_{j≠i} (⟨ẑ¹_i, ẑ¹_j⟩ − ⟨ẑ²_i, ẑ²_j⟩)²,   L_equi = (1/K) Σ_c L_c.

  Z¹Z¹ᵀ = Z²Z²ᵀ iff Z² = Z¹Q for an orthogonal Q: each augmentation pair is pushed to act as
  an element of O(d) on the sphere; Q is never computed (the ``orthogonality`` probe fits it).
  K comes from the batch (``ViewParams.chunks``), set by ``augment.chunk_size`` or
  ``augment.chunks``; item 15 (independent pairs per chunk, default, or one pair for all
  chunks) is ``augment.independent_chunks``.

Heads (§8.4) come from the base: CARE CIFAR/STL projector Lin(D, 512)-BN-ReLU-Lin(512, 128)
(``projector_hidden`` 512, ``projector_dim`` 128; the harness's SimCLR head puts the bias on
the first layer instead of the last: a documented difference), IN-100 MoCo-v2 head
Lin(D, 2048)-ReLU-Lin(2048, 128) (``base=moco``; with ``base=simclr`` the harness head has a
BN after the hidden layer). ``equivariant_images`` > 0 keeps only that many images of the
equivariance batches per process (CARE IN-100: ``--equivariant-batch-size 128`` over 4 GPUs,
32 per GPU, in Gram blocks of 8). Evaluation reads the backbone; ``projector`` (unit ẑ) is a
declared representation for the orthogonality probe.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sslequi.methods.base import Method, MethodConfig
from sslequi.methods.distributed import gather
from sslequi.methods.moco import MoCo
from sslequi.methods.simclr import SimCLR
from sslequi.registry import METHODS, RegistryError, register_method
from sslequi.types import Batch, MethodSpec, Parts, StepOutput

LossSubtype = Literal["infonce", "alignment", "uniformity"]
BASES = ("simclr", "moco")


def care_equivariance_loss(z_1: Tensor, z_2: Tensor, chunks: int) -> Tensor:
    """L_equi (§8.1): mean over K chunks of (2/n) Σ_i Σ_{j≠i} (G¹_ij − G²_ij)², G = ZZᵀ of the
    chunk's unit embeddings ``z_1``, ``z_2`` [K·n, d] (chunk c = rows c·n … c·n + n − 1)."""
    total, dim = z_1.shape
    if chunks < 1 or total % chunks:
        raise ValueError(f"care: {total} embeddings do not split into {chunks} chunks")
    n = total // chunks
    a, b = z_1.reshape(chunks, n, dim), z_2.reshape(chunks, n, dim)
    off_diagonal = 1.0 - torch.eye(n, device=z_1.device, dtype=z_1.dtype)
    difference = (a @ a.transpose(1, 2) - b @ b.transpose(1, 2)) * off_diagonal
    per_chunk = 2.0 * difference.pow(2).sum(dim=2).mean(dim=1)
    return per_chunk.mean()


def contrastive_terms(positive: Tensor, negative: Tensor) -> dict[str, Tensor]:
    """InfoNCE and its two parts from logits (already divided by τ): ``positive`` [N],
    ``negative`` [N, M]. infonce = mean(−pos + log(e^pos + Σ e^neg)); alignment = −mean pos;
    uniformity = mean log Σ e^neg (``Sharut/CARE`` ``utils.py:infoNCE``)."""
    all_logits = torch.cat([positive[:, None], negative], dim=1)
    return {
        "infonce": (torch.logsumexp(all_logits, dim=1) - positive).mean(),
        "alignment": -positive.mean(),
        "uniformity": torch.logsumexp(negative, dim=1).mean(),
    }


def nt_xent_logits(z_1: Tensor, z_2: Tensor, temperature: float) -> tuple[Tensor, Tensor]:
    """(positive [2N], negatives [2N, 2N − 2]) of NT-Xent (§1.2) on u = [ẑ¹; ẑ²]."""
    n = z_1.shape[0]
    u = F.normalize(torch.cat([z_1, z_2]), dim=1)
    similarity = (u @ u.T) / temperature
    partner = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(u.device)
    rows = torch.arange(2 * n, device=u.device)
    positive = similarity[rows, partner]
    keep = torch.ones_like(similarity, dtype=torch.bool)
    keep[rows, rows] = False
    keep[rows, partner] = False
    return positive, similarity[keep].reshape(2 * n, 2 * n - 2)


@dataclass
class CAREConfig(MethodConfig):
    """CARE options (``configs/method/care.yaml``); defaults: CARE CIFAR-10 (§8.2–8.5)."""

    name: str = "care"
    base: str = "simclr"  # simclr | moco
    base_overrides: dict[str, Any] = field(default_factory=dict)  # other base-config fields
    equivariance_weight: float = 0.03  # λ: 0.03 C10, 0.001 C100, 0.01 STL-10, 0.005 IN-100
    loss_subtype: str = "infonce"  # infonce | alignment | uniformity (--loss-subtype)
    temperature: float = 0.5  # τ: 0.5 CIFAR/STL, 0.2 IN-100 (--moco-t)
    projector_hidden: int = 512  # 512 CIFAR/STL head, 2048 IN-100 (MoCo-v2 head)
    projector_dim: int = 128
    equivariant_images: int = 0  # per process; 0 = the whole batch (IN-100: 128 over 4 GPUs)

    def __post_init__(self) -> None:
        if self.base not in BASES:
            raise ValueError(f"care.base must be one of {BASES}, got {self.base!r}")
        if self.loss_subtype not in ("infonce", "alignment", "uniformity"):
            raise ValueError(
                "care.loss_subtype must be infonce, alignment or uniformity, got "
                f"{self.loss_subtype!r}"
            )
        if self.equivariance_weight < 0:
            raise ValueError(
                f"care.equivariance_weight must be ≥ 0, got {self.equivariance_weight}"
            )
        if self.equivariant_images < 0:
            raise ValueError(f"care.equivariant_images must be ≥ 0, got {self.equivariant_images}")
        self.base_overrides = dict(self.base_overrides)
        try:
            config = self.base_config()
        except RegistryError as error:
            raise ValueError(f"care.base: {error}") from None
        if getattr(config, "negatives", "all") != "all":
            raise ValueError("care: the InfoNCE term is NT-Xent with 2N − 2 negatives (§8.1)")

    def base_config(self) -> MethodConfig:
        """The base's registered config: CARE's τ and head, then ``base_overrides``."""
        from sslequi.config import import_components

        import_components()
        config_class = METHODS.entry(self.base).config
        assert config_class is not None and dataclasses.is_dataclass(config_class)
        known = {f.name for f in dataclasses.fields(config_class)}
        unknown = sorted(set(self.base_overrides) - known)
        if unknown:
            raise ValueError(
                f"care: base_overrides {unknown} are not fields of {config_class.__name__} "
                f"(base={self.base!r}); valid fields: {sorted(known - {'name'})}"
            )
        head: dict[str, Any] = (
            {"projector": f"{self.projector_hidden}-{self.projector_dim}"}
            if self.base == "simclr"
            else {"projector_hidden": self.projector_hidden, "projector_dim": self.projector_dim}
        )
        values = {"temperature": self.temperature, **head, **self.base_overrides}
        values.pop("name", None)
        return config_class(**values, name=self.base)

    def check_batch(self, batch_size: int) -> None:
        """The base's batch constraints (MoCo's queue and BN groups)."""
        check = getattr(self.base_config(), "check_batch", None)
        if callable(check):
            check(batch_size)


@register_method("care", config=CAREConfig)
class CARE(Method):
    """Base InfoNCE (SimCLR or MoCo-v2) + λ · within-chunk Gram matching (§8.1)."""

    config_class = CAREConfig
    config: CAREConfig

    def __init__(self, config: CAREConfig, backbone: nn.Module, feature_dim: int) -> None:
        super().__init__(config, backbone, feature_dim)
        del self._modules["backbone"]  # owned by the base: one copy in the module tree
        base_class = METHODS.get(config.base)
        self.base: SimCLR | MoCo = base_class(config.base_config(), backbone, feature_dim)  # type: ignore[assignment]

    @property
    def backbone(self) -> nn.Module:  # type: ignore[override]
        return self.base.backbone

    def spec(self) -> MethodSpec:
        return MethodSpec(num_views=4, chunk_shared_params=True)

    def parts(self) -> Parts:
        return self.base.parts()

    def encode(self, images: Tensor) -> Tensor:
        return self.base.encode(images)

    def project(self, y: Tensor) -> Tensor:
        """ẑ: the unit projection of backbone features (both losses live here)."""
        return F.normalize(self.base.projector(y), dim=1)

    def embed(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """(backbone y, unit ẑ) of ``images`` through the base's query path."""
        if isinstance(self.base, MoCo):
            return self.base.query(images)
        y = self.base.backbone(images)
        return y, self.project(y)

    def contrastive(self, batch: Batch) -> tuple[dict[str, Tensor], list[Tensor]]:
        """The InfoNCE terms on views 0, 1 and the backbone features of those views."""
        if isinstance(self.base, MoCo):
            _, logits, y_q, _ = self.base.contrast(batch.views[0], batch.views[1])
            return contrastive_terms(logits[:, 0], logits[:, 1:]), [y_q.detach()]
        y_1, z_1 = self.embed(batch.views[0])
        y_2, z_2 = self.embed(batch.views[1])
        if self.base.config.gather_distributed:
            z_1, z_2 = gather(z_1), gather(z_2)
        positive, negative = nt_xent_logits(z_1, z_2, self.config.temperature)
        return contrastive_terms(positive, negative), [y_1.detach(), y_2.detach()]

    def chunks_of(self, batch: Batch) -> int:
        """K of the chunk-shared views (recorded by the augmentation pipeline)."""
        chunks = {p.chunks for p in batch.params[2:4]} if len(batch.params) >= 4 else {None}
        if None in chunks or len(chunks) != 1:
            raise ValueError(
                "care: views 2 and 3 must be chunk-shared (augment=care, or a recipe with "
                "chunk_shared: true views); the batch records no chunk layout"
            )
        return int(chunks.pop())  # type: ignore[arg-type]

    def equivariance(self, batch: Batch) -> Tensor:
        """L_equi on the chunk-shared views 2, 3 (optionally their first images only)."""
        chunks = self.chunks_of(batch)
        view_1, view_2 = batch.views[2], batch.views[3]
        size = view_1.shape[0] // chunks
        keep = self.config.equivariant_images
        if keep:
            if keep % size or keep > view_1.shape[0]:
                raise ValueError(
                    f"care.equivariant_images={keep} must be a multiple of the chunk size "
                    f"{size} and at most the batch {view_1.shape[0]}"
                )
            view_1, view_2, chunks = view_1[:keep], view_2[:keep], keep // size
        _, z_1 = self.embed(view_1)
        _, z_2 = self.embed(view_2)
        return care_equivariance_loss(z_1, z_2, chunks)

    def forward(self, batch: Batch) -> StepOutput:
        terms, features = self.contrastive(batch)
        invariance = terms[self.config.loss_subtype]
        equi = self.equivariance(batch)
        loss = invariance + self.config.equivariance_weight * equi
        logged = {name: value.detach() for name, value in terms.items()}
        logged["equivariance"] = equi.detach()
        return StepOutput(loss=loss, terms=logged, features=features)

    def on_step_end(self, step: int, total_steps: int) -> None:
        self.base.on_step_end(step, total_steps)
