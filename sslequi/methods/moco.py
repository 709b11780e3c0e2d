"""MoCo-v2 (Chen, Fan, Girshick, He 2020, arXiv 2003.04297; MoCo v1 arXiv 1911.05722):
contrast a query against its momentum-encoded key and a queue of past keys.

    q = ĝ_θ(f_θ(x₁)),  k = ĝ_ξ(f_ξ(x₂)) (no gradient),  ĝ = g/‖g‖
    L = −log( e^{q·k/τ} / (e^{q·k/τ} + Σ_{κ ∈ queue} e^{q·κ/τ}) ),  mean over the batch
    (MoCo Eq. 1, ``moco_infonce``); then the batch's keys are enqueued, the oldest dequeued;
    after every optimizer step ξ ← m ξ + (1 − m) θ (parameters only, MoCo §3.2).

This is CARE's ImageNet-100 ``--method moco`` (methods.md §8.4, ``Sharut/CARE`` at
``7090100``, ``imagenet100/model/builder.py``): MoCo-v2 head Lin(D, 2048)-ReLU-Lin(2048, 128)
(lightly's ``MoCoProjectionHead``), key momentum **0.99** (CARE's script; the MoCo paper
uses 0.999), queue **65,536**, τ **0.2**. Lightly pieces used where they match: the head and
``update_momentum`` (the same parameter-only EMA as MoCo's ``_momentum_update_key_encoder``).
The queue is this file's own buffer, not lightly's ``MemoryBankModule``: lightly registers its
bank as non-persistent buffers, so a checkpoint would not hold the queue and a resumed run
would restart from a random one. Here ``queue`` and ``queue_ptr`` are persistent buffers of
the method's state dict (exact resume). The loss equals lightly's ``NTXentLoss`` with a
memory bank holding the same queue (tested).

BatchNorm (shuffle-BN, MoCo §3.3; register item 16 for SyncBN): one process emulates
``bn_groups`` GPUs: the query encoder runs on ``bn_groups`` contiguous slices (per-GPU BN
statistics) and, with ``shuffle_bn``, the key encoder's input is permuted across the
slices first and its output un-permuted, so a query and its key never share BN statistics.
``sync_bn=True`` is SyncBN's behaviour: BN over the whole batch (``bn_groups`` unused); on
several GPUs also set ``launcher.sync_batchnorm=true``. Under DDP each process emulates its
groups locally (no cross-process shuffle). CARE's code turns SyncBN on only with its
equivariant loss; the harness default is the same setting for method and baseline.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from lightly.models.modules.heads import MoCoProjectionHead
from lightly.models.utils import deactivate_requires_grad, update_momentum
from torch import Tensor, nn

from sslequi.methods.base import Method, MethodConfig
from sslequi.methods.distributed import gather
from sslequi.registry import register_method
from sslequi.types import Batch, MethodSpec, StepOutput


def moco_logits(q: Tensor, k: Tensor, queue: Tensor, temperature: float) -> Tensor:
    """[B, 1 + K] logits: column 0 the positive q·k, then q·κ for every queued key κ
    (rows of ``queue`` [K, d]); all inputs unit-norm."""
    positive = (q * k).sum(dim=1, keepdim=True)
    negative = q @ queue.T
    return torch.cat([positive, negative], dim=1) / temperature


def moco_infonce(q: Tensor, k: Tensor, queue: Tensor, temperature: float) -> Tensor:
    """MoCo's InfoNCE (Eq. 1): CE of ``moco_logits`` with the positive at index 0."""
    logits = moco_logits(q, k, queue, temperature)
    return F.cross_entropy(logits, torch.zeros(q.shape[0], dtype=torch.long, device=q.device))


@dataclass
class MoCoConfig(MethodConfig):
    """MoCo-v2 options (``configs/method/moco.yaml``); defaults: CARE's IN-100 MoCo-v2."""

    name: str = "moco"
    projector_hidden: int = 2048  # MoCo-v2 head Lin(D, 2048)-ReLU-Lin(2048, 128)
    projector_dim: int = 128
    temperature: float = 0.2  # τ (CARE --moco-t 0.2)
    queue_size: int = 65536  # K (MoCo, CARE)
    momentum: float = 0.99  # key encoder m (CARE's script; MoCo paper 0.999)
    shuffle_bn: bool = True  # permute the key batch across the emulated GPUs
    bn_groups: int = 4  # emulated GPUs with their own BN statistics (CARE IN-100: 4 GPUs)
    sync_bn: bool = False  # BN over the whole batch, as SyncBN (register item 16)

    def __post_init__(self) -> None:
        if not self.temperature > 0:
            raise ValueError(f"moco.temperature must be > 0, got {self.temperature}")
        if not 0.0 <= self.momentum <= 1.0:
            raise ValueError(f"moco.momentum must lie in [0, 1], got {self.momentum}")
        if self.queue_size < 1:
            raise ValueError(f"moco.queue_size must be ≥ 1, got {self.queue_size}")
        if self.bn_groups < 1:
            raise ValueError(f"moco.bn_groups must be ≥ 1, got {self.bn_groups}")

    @property
    def groups(self) -> int:
        """The number of BN groups actually used (1 under ``sync_bn``)."""
        return 1 if self.sync_bn else self.bn_groups

    def check_batch(self, batch_size: int) -> None:
        """The batch must fill the queue in whole batches and split into BN groups of ≥ 2."""
        if self.queue_size % batch_size:
            raise ValueError(
                f"moco.queue_size={self.queue_size} is not a multiple of train.batch_size="
                f"{batch_size} (the queue is filled one whole batch of keys at a time)"
            )
        if batch_size % self.groups or batch_size // self.groups < 2:
            raise ValueError(
                f"moco.bn_groups={self.bn_groups}: train.batch_size={batch_size} must split "
                "into that many groups of at least 2 images (or set moco.sync_bn=true)"
            )


def grouped(fn: Callable[[Tensor], Tensor], x: Tensor, groups: int, shuffle: bool) -> Tensor:
    """``fn`` on ``groups`` contiguous slices of ``x`` (each with its own BN statistics);
    with ``shuffle`` the rows are permuted across slices first and restored after."""
    if groups == 1:
        return fn(x)
    if x.shape[0] % groups:
        raise ValueError(f"a batch of {x.shape[0]} does not split into {groups} BN groups")
    order = torch.randperm(x.shape[0], device=x.device) if shuffle else None
    if order is not None:
        x = x[order]
    out = torch.cat([fn(part) for part in x.chunk(groups)])
    if order is not None:
        out = out[torch.argsort(order)]
    return out


@register_method("moco", config=MoCoConfig)
class MoCo(Method):
    """Query encoder (backbone + MoCo-v2 head), momentum key encoder, queue of keys."""

    config_class = MoCoConfig
    config: MoCoConfig

    def __init__(self, config: MoCoConfig, backbone: nn.Module, feature_dim: int) -> None:
        super().__init__(config, backbone, feature_dim)
        self.projector = MoCoProjectionHead(
            feature_dim, config.projector_hidden, config.projector_dim
        )
        self.key_backbone = copy.deepcopy(backbone)
        self.key_projector = copy.deepcopy(self.projector)
        deactivate_requires_grad(self.key_backbone)
        deactivate_requires_grad(self.key_projector)
        queue = F.normalize(torch.randn(config.queue_size, config.projector_dim), dim=1)
        self.register_buffer("queue", queue)  # persistent: checkpoints hold it
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))
        self.queue: Tensor
        self.queue_ptr: Tensor

    def spec(self) -> MethodSpec:
        return MethodSpec(num_views=2)

    def project(self, y: Tensor) -> Tensor:
        """ẑ = g_θ(y)/‖g_θ(y)‖, the query embedding of backbone features."""
        return F.normalize(self.projector(y), dim=1)

    def query(self, view: Tensor) -> tuple[Tensor, Tensor]:
        """(backbone features y, unit query q) under the emulated per-GPU BN."""
        y = grouped(self.backbone, view, self.config.groups, shuffle=False)
        return y, F.normalize(self.projector(y), dim=1)

    @torch.no_grad()
    def key(self, view: Tensor) -> Tensor:
        """Unit keys from the momentum encoder, BN shuffled across the emulated GPUs."""

        def encode(x: Tensor) -> Tensor:
            return self.key_projector(self.key_backbone(x))

        groups = self.config.groups
        return F.normalize(grouped(encode, view, groups, self.config.shuffle_bn), dim=1)

    @torch.no_grad()
    def enqueue(self, keys: Tensor) -> None:
        """Replace the oldest queue entries with ``keys`` (gathered over processes)."""
        keys = gather(keys)
        n, size = keys.shape[0], self.queue.shape[0]
        if size % n:
            raise ValueError(f"moco.queue_size={size} is not a multiple of the key batch {n}")
        ptr = int(self.queue_ptr)
        self.queue[ptr : ptr + n] = keys.to(self.queue.dtype)
        self.queue_ptr.fill_((ptr + n) % size)

    def contrast(self, view_q: Tensor, view_k: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(loss, logits, y_q, k) for one query/key pair of views; enqueues k when training."""
        y_q, q = self.query(view_q)
        k = self.key(view_k)
        logits = moco_logits(q, k, self.queue.clone().detach(), self.config.temperature)
        labels = torch.zeros(q.shape[0], dtype=torch.long, device=q.device)
        loss = F.cross_entropy(logits, labels)
        if self.training:
            self.enqueue(k)
        return loss, logits, y_q, k

    def forward(self, batch: Batch) -> StepOutput:
        loss, logits, y_q, _ = self.contrast(batch.views[0], batch.views[1])
        accuracy = (logits.argmax(dim=1) == 0).float().mean()
        return StepOutput(
            loss=loss,
            terms={"infonce": loss.detach(), "pos_top1": accuracy.detach()},
            features=[y_q.detach()],  # the query view's backbone features (online probe)
        )

    def on_step_end(self, step: int, total_steps: int) -> None:
        """ξ ← m ξ + (1 − m) θ for the key backbone and head (parameters only)."""
        update_momentum(self.backbone, self.key_backbone, self.config.momentum)
        update_momentum(self.projector, self.key_projector, self.config.momentum)
