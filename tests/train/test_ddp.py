"""The trainer under an initialised process group (two CPU processes, gloo, via torchrun):
the global batch is split over ranks, the ranks stay in sync, and only rank 0 writes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch

from sslequi.train.checkpoint import load_checkpoint
from sslequi.train.sampler import ResumableSampler


def test_sampler_shards_disjointly_and_resumes_mid_epoch() -> None:
    ranks = [ResumableSampler(10, seed=3, rank=r, world_size=2) for r in range(2)]
    epoch = [[index for index, _ in sampler] for sampler in ranks]
    assert len(epoch[0]) == len(epoch[1]) == 5 and not set(epoch[0]) & set(epoch[1])
    ranks[0].set_position(0, 2)
    assert [index for index, _ in ranks[0]] == epoch[0][2:]
    ranks[0].set_position(1, 0)
    assert [index for index, _ in ranks[0]] != epoch[0]  # a new order each epoch
    seeds = {seed for sampler in ranks for _, seed in sampler}
    assert len(seeds) == 5 + 5  # one item seed per (rank, position)


def test_two_rank_run_writes_once(tiny_overrides, subprocess_env, tmp_path: Path) -> None:
    run_dir = tmp_path / "ddp"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node=2",
            "--master_port=29533",
            "-m",
            "sslequi.cli.pretrain",
            *tiny_overrides,
            "train.steps=2",
            "train.log_every=1",
            "train.device=cpu",
            f"run_dir={run_dir}",
        ],
        env=subprocess_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2]  # rank 0 only, averaged over ranks
    assert json.loads((run_dir / "run.json").read_text())["status"] == "completed"
    state = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    assert state["world_size"] == 2 and state["step"] == 2
    # 32 objects over 2 ranks with a global batch of 8: 4 per rank, 4 steps per epoch.
    assert state["data_position"] == {"epoch": 0, "batch": 2}
    assert all(torch.isfinite(v).all() for v in state["method"].values() if v.is_floating_point())
