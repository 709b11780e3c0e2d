"""DDP on the CPU: 2 gloo ranks with a gathered loss equal the single-process step.

The model is BatchNorm-free; the loss (NT-Xent) needs the global batch, so each rank
gathers the embeddings of all ranks with ``sslequi.methods.distributed.gather``. The
ranks are forked with torchrun's environment variables, which exercises the ``torchrun``
path of ``sslequi.launcher.ddp.init_distributed``.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import socket
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from sslequi.config import LauncherConfig
from sslequi.launcher import ddp
from sslequi.launcher.config import SlurmLauncherConfig, SubmititLocalLauncherConfig
from sslequi.methods.distributed import gather
from sslequi.methods.losses import nt_xent

GLOBAL_BATCH = 8
WORLD_SIZE = 2


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 4))


def _global_batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    view_a = torch.randn(GLOBAL_BATCH, 6, generator=generator)
    view_b = view_a + 0.1 * torch.randn(GLOBAL_BATCH, 6, generator=generator)
    return view_a, view_b


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _rank_main(rank: int, port: int, out: Path) -> None:
    torch.set_num_threads(1)
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(WORLD_SIZE),
    )
    context = ddp.init_distributed(use_cuda=False)
    assert context is not None and context.world_size == WORLD_SIZE
    assert context.backend == "gloo" and context.source == "torchrun"
    per_rank = GLOBAL_BATCH // context.world_size
    model = DistributedDataParallel(_model())
    view_a, view_b = _global_batch()
    rows = slice(rank * per_rank, (rank + 1) * per_rank)
    local_a = model(view_a[rows])
    local_b = model(view_b[rows])
    all_a, all_b = gather(local_a), gather(local_b)
    loss = nt_xent(all_a, all_b, temperature=0.5)
    loss.backward()
    torch.save(
        {
            "loss": loss.detach(),
            "grads": [p.grad.clone() for p in model.parameters()],
            "gathered_requires_grad": all_a.requires_grad,
            "gathered_shape": tuple(all_a.shape),
            "gathered": all_a.detach(),
        },
        out / f"rank{rank}.pt",
    )
    ddp.shutdown_distributed()


def test_two_gloo_ranks_match_single_process_step(tmp_path: Path) -> None:
    context = mp.get_context("fork")
    port = _free_port()
    workers = [context.Process(target=_rank_main, args=(r, port, tmp_path)) for r in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0

    model = _model()
    view_a, view_b = _global_batch()
    embeddings_a = model(view_a)
    reference = nt_xent(embeddings_a, model(view_b), temperature=0.5)
    reference.backward()
    for rank in range(WORLD_SIZE):
        result = torch.load(tmp_path / f"rank{rank}.pt")
        assert result["gathered_requires_grad"]
        assert result["gathered_shape"] == (GLOBAL_BATCH, 4)
        torch.testing.assert_close(result["gathered"], embeddings_a.detach())
        torch.testing.assert_close(result["loss"], reference.detach())
        for got, want in zip(result["grads"], model.parameters(), strict=True):
            torch.testing.assert_close(got, want.grad, rtol=1e-5, atol=1e-6)


def test_gather_is_identity_without_process_group() -> None:
    tensor = torch.randn(3, 2, requires_grad=True)
    assert gather(tensor) is tensor
    assert ddp.init_distributed(use_cuda=False) is None


def test_sync_batchnorm_refused_on_cpu() -> None:
    config = SubmititLocalLauncherConfig(sync_batchnorm=True)
    with pytest.raises(ddp.DistributedConfigError, match="SyncBatchNorm rejects CPU"):
        ddp.check_sync_batchnorm(config, use_cuda=False)
    ddp.check_sync_batchnorm(config, use_cuda=True)
    ddp.check_sync_batchnorm(SubmititLocalLauncherConfig(sync_batchnorm=False), use_cuda=False)
    ddp.check_sync_batchnorm(LauncherConfig(), use_cuda=False)


def test_explicit_tasks_per_node_must_equal_gpus_per_node() -> None:
    ddp.check_tasks_per_node(SlurmLauncherConfig(gpus_per_node=4))
    ddp.check_tasks_per_node(SlurmLauncherConfig(gpus_per_node=4, tasks_per_node=4))
    assert SlurmLauncherConfig(gpus_per_node=4, nodes=2).world_size() == 8
    with pytest.raises(ddp.DistributedConfigError, match="one task per GPU"):
        ddp.check_tasks_per_node(SlurmLauncherConfig(gpus_per_node=4, tasks_per_node=1))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="SyncBatchNorm runs on GPU only")
def test_sync_batchnorm_runs_on_gpu() -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()))
    torch.distributed.init_process_group("nccl", init_method="env://", rank=0, world_size=1)
    try:
        ddp.check_sync_batchnorm(SubmititLocalLauncherConfig(sync_batchnorm=True), use_cuda=True)
        model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)).cuda()
        converted = nn.SyncBatchNorm.convert_sync_batchnorm(model)  # as the trainer does
        assert isinstance(converted[1], nn.SyncBatchNorm)
        converted(torch.randn(2, 3, 8, 8, device="cuda")).sum().backward()
    finally:
        ddp.shutdown_distributed()


def _submitit_rank_main(rank: int, port: int, out: Path) -> None:
    """One task of a 2-task SLURM job as submitit sees it (no torchrun variables)."""
    torch.set_num_threads(1)
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR"):
        os.environ.pop(name, None)
    os.environ.update(
        SUBMITIT_EXECUTOR="slurm",
        SLURM_JOB_ID="777",
        SLURM_NTASKS="2",
        SLURM_PROCID=str(rank),
        SLURM_LOCALID=str(rank),
        SLURM_NODEID="0",
        SLURM_JOB_NUM_NODES="1",
        SLURM_JOB_NODELIST="localhost",
        MASTER_PORT=str(port),
    )
    assert ddp.detect_source() == "submitit"
    context = ddp.init_distributed(use_cuda=False)
    assert context is not None and context.source == "submitit"
    value = torch.tensor([float(rank + 1)])
    torch.distributed.all_reduce(value)
    torch.save(
        {"rank": context.rank, "world": context.world_size, "sum": value.item()},
        out / f"submitit{rank}.pt",
    )
    ddp.shutdown_distributed()


def test_process_group_from_submitit_task_environment(tmp_path: Path) -> None:
    context = mp.get_context("fork")
    port = _free_port()
    workers = [
        context.Process(target=_submitit_rank_main, args=(r, port, tmp_path)) for r in range(2)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    results = [torch.load(tmp_path / f"submitit{r}.pt") for r in range(2)]
    assert [(r["rank"], r["world"], r["sum"]) for r in results] == [(0, 2, 3.0), (1, 2, 3.0)]
