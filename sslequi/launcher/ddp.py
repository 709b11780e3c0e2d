"""Process-group setup for DDP: under SLURM/submitit tasks, under ``torchrun``, or not at all.

One process per task (one task per GPU, harness_lessons.md §7.4). Under submitit the
rendezvous variables come from ``submitit.helpers.TorchDistributedEnvironment`` (first
host of the allocation, a port seeded by the job id); under ``torchrun`` they are already
in the environment. gloo on CPU, nccl on GPU. ``sslequi-pretrain``'s task joins the group
with ``init_distributed``; the trainer (sslequi/train) only *respects* it: it shards data,
converts BatchNorm to SyncBatchNorm when ``launcher.sync_batchnorm``, wraps DDP and lets
rank 0 write.

Batch and LR contract: the config's ``batch_size`` is the *global* batch; each rank takes
``batch_size / world_size`` (a remainder fails in ``sslequi.config.validate``, which the
launcher runs with its world size before submission), and the recipe's ``lr_scaling``
applies to the global batch, so one recipe trains the same way on any GPU count.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

import torch
import torch.distributed as dist

from sslequi.config import LauncherConfig
from sslequi.launcher.config import LauncherConfigError, SubmitLauncherConfig

Source = Literal["submitit", "torchrun"]


class DistributedConfigError(LauncherConfigError):
    """A DDP setting that cannot work (batch split, SyncBatchNorm on CPU, tasks vs GPUs)."""


@dataclass(frozen=True)
class DistributedContext:
    """Where this process sits in the job once the process group is up."""

    rank: int
    local_rank: int
    world_size: int
    backend: str
    device: torch.device
    source: Source


def detect_source() -> Source | None:
    """``submitit`` inside a multi-task submitit job, ``torchrun`` under torchrun, else None."""
    if _submitit_num_tasks() > 1:
        return "submitit"
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ:
        return "torchrun"
    return None


def _submitit_num_tasks() -> int:
    if not os.environ.get("SUBMITIT_EXECUTOR"):
        return 0
    import submitit

    try:
        return submitit.JobEnvironment().num_tasks
    except RuntimeError:  # SUBMITIT_EXECUTOR set, but not inside a job of that executor.
        return 0


def init_distributed(use_cuda: bool | None = None) -> DistributedContext | None:
    """Initialise the default process group if this process is one of several; else None.

    Idempotent: an already initialised group is described, not re-created. ``use_cuda``
    defaults to ``torch.cuda.is_available()``; it picks nccl (one GPU per local rank) or gloo.
    """
    source = detect_source()
    if source is None and not dist.is_initialized():
        return None
    if use_cuda is None:
        use_cuda = torch.cuda.is_available()
    if source == "submitit" and not dist.is_initialized():
        from submitit.helpers import TorchDistributedEnvironment

        # SLURM may already restrict each task's GPUs; select by local rank below instead.
        TorchDistributedEnvironment().export(set_cuda_visible_devices=False, overwrite=True)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if use_cuda:
        device = torch.device("cuda", local_rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    backend = "nccl" if use_cuda else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, init_method="env://")
    return DistributedContext(
        rank=dist.get_rank(),
        local_rank=local_rank,
        world_size=dist.get_world_size(),
        backend=str(dist.get_backend()),
        device=device,
        source=source or "torchrun",
    )


def shutdown_distributed() -> None:
    """Destroy the default process group if one is up."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def check_tasks_per_node(config: SubmitLauncherConfig) -> None:
    """DDP runs one task per GPU: an explicit ``tasks_per_node`` ≠ ``gpus_per_node`` is refused."""
    explicit = config.tasks_per_node
    if config.gpus_per_node > 0 and explicit is not None and explicit != config.gpus_per_node:
        raise DistributedConfigError(
            f"launcher.tasks_per_node={explicit} but launcher.gpus_per_node="
            f"{config.gpus_per_node}: DDP needs one task per GPU (hydra#2231, dinov2#111). "
            "Leave tasks_per_node empty (it then equals gpus_per_node)."
        )


def sync_batchnorm_requested(config: LauncherConfig) -> bool:
    """``launcher.sync_batchnorm`` (absent on the in-process ``local`` launcher → False)."""
    return bool(getattr(config, "sync_batchnorm", False))


def check_sync_batchnorm(config: LauncherConfig, use_cuda: bool) -> None:
    """SyncBatchNorm exists only for CUDA tensors in torch; refuse it on CPU up front."""
    if sync_batchnorm_requested(config) and not use_cuda:
        raise DistributedConfigError(
            "launcher.sync_batchnorm=true needs GPUs: torch's SyncBatchNorm rejects CPU "
            "tensors. Set launcher.sync_batchnorm=false for CPU runs."
        )
