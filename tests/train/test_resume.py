"""Exact resume: 10 uninterrupted steps equal 5 steps + a fresh process resuming for 5 more,
bitwise, on the CPU (issue 2 "Tests")."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch

from sslequi.train.checkpoint import load_checkpoint
from sslequi.train.run import pretrain


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sslequi.cli.pretrain", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _assert_same_state(a: dict, b: dict, where: str) -> None:
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            _assert_same_state(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_same_state(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def test_resume_in_fresh_process_is_bitwise_exact(
    compose_cfg, tiny_overrides, subprocess_env, tmp_path: Path
) -> None:
    common = [
        "method=byol",
        "train.steps=10",
        "method.projector_hidden=32",
        "method.projector_dim=16",
        "method.predictor_hidden=32",
    ]
    common = [o for o in tiny_overrides if not o.startswith("method.projector=")] + common
    straight = pretrain(compose_cfg(*common, tiny=False, run_dir=tmp_path / "straight"))

    resumed = tmp_path / "resumed"
    pretrain(compose_cfg(*common, "train.stop_after=5", tiny=False, run_dir=resumed))
    info = json.loads((resumed / "run.json").read_text())
    assert info["status"] == "requeued" and info["step"] == 5
    assert load_checkpoint(resumed / "checkpoints" / "last.pt")["step"] == 5

    # A fresh process continues (and loads with a DataLoader worker: the stream is the same).
    second = _cli([*common, f"run_dir={resumed}", "train.num_workers=1"], subprocess_env)
    assert second.returncode == 0, second.stderr[-3000:]
    info = json.loads((resumed / "run.json").read_text())
    assert info["status"] == "completed" and info["step"] == 10 and info["attempts"] == 2

    a = load_checkpoint(straight / "checkpoints" / "last.pt")
    b = load_checkpoint(resumed / "checkpoints" / "last.pt")
    assert a["step"] == b["step"] == 10
    for key in ("method", "probe", "optimizer", "scheduler", "data_position"):
        _assert_same_state(a[key], b[key], key)
    _assert_same_state(a["rng"]["torch"], b["rng"]["torch"], "rng")
    # Logged windows that do not straddle the stop at step 5 are identical too.
    resumed_log = {m["step"]: m["loss"] for m in _records(resumed)}
    straight_log = {m["step"]: m["loss"] for m in _records(straight)}
    assert 5 in resumed_log and 5 not in straight_log
    for step in (2, 4, 8, 10):
        assert resumed_log[step] == straight_log[step]


def _records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_resume_with_a_fixed_rate_group_is_bitwise_exact(
    compose_cfg, tiny_overrides, tmp_path: Path
) -> None:
    """SimSiam with its predictor at a fixed rate (methods.md §7.4), warmup from 0 and an
    epoch-wise cosine: 8 straight steps equal 4 + 4 after a resume, and the predictor's
    group never left the peak rate."""
    common = [o for o in tiny_overrides if not o.startswith("method.projector=")] + [
        "method=simsiam",
        "method.projector_hidden=16",
        "method.projector_dim=16",
        "method.projector_layers=2",
        "method.predictor_hidden=8",
        "method.fix_predictor_lr=true",
        "optim=sgd",
        "optim.lr=0.05",
        "optim.warmup_steps=3",
        "optim.warmup_from_zero=true",
        "optim.schedule_granularity=epoch",
        "train.steps=8",
    ]
    straight = pretrain(compose_cfg(*common, tiny=False, run_dir=tmp_path / "straight"))
    resumed = tmp_path / "resumed"
    pretrain(compose_cfg(*common, "train.stop_after=4", tiny=False, run_dir=resumed))
    pretrain(compose_cfg(*common, tiny=False, run_dir=resumed))
    a = load_checkpoint(straight / "checkpoints" / "last.pt")
    b = load_checkpoint(resumed / "checkpoints" / "last.pt")
    assert a["step"] == b["step"] == 8
    for key in ("method", "probe", "optimizer", "scheduler", "data_position"):
        _assert_same_state(a[key], b[key], key)
    groups = {g.get("name"): g for g in b["optimizer"]["param_groups"]}
    assert groups["predictor"]["fixed_lr"] and groups["predictor"]["lr"] == 0.05 * 8 / 256
    assert groups["method"]["lr"] != groups["predictor"]["lr"]


def test_resume_with_the_float16_grad_scaler_is_bitwise_exact(
    compose_cfg, tiny_overrides, tmp_path: Path, monkeypatch
) -> None:
    """float16 autocast + GradScaler (the SIE and E-SSL ImageNet recipes, methods.md §2.4,
    §7.4): the scaler's scale and growth tracker are checkpointed and restored, so 6 straight
    steps equal 3 + 3. Autocast is switched on for the CPU here to run without a GPU."""
    from sslequi.train import trainer

    monkeypatch.setattr(trainer, "AMP_DEVICE_TYPES", ("cuda", "cpu"))
    common = [o for o in tiny_overrides if not o.startswith("method.projector=")] + [
        "method=simclr",
        "method.projector=16-16",
        "train.amp=true",
        "train.amp_dtype=float16",
        "train.steps=6",
    ]
    straight = pretrain(compose_cfg(*common, tiny=False, run_dir=tmp_path / "straight"))
    resumed = tmp_path / "resumed"
    pretrain(compose_cfg(*common, "train.stop_after=3", tiny=False, run_dir=resumed))
    pretrain(compose_cfg(*common, tiny=False, run_dir=resumed))
    a = load_checkpoint(straight / "checkpoints" / "last.pt")
    b = load_checkpoint(resumed / "checkpoints" / "last.pt")
    assert a["scaler"], "the float16 run has a GradScaler"
    fresh = torch.amp.GradScaler("cpu").state_dict()
    assert (a["scaler"]["scale"], a["scaler"]["_growth_tracker"]) != (
        fresh["scale"],
        fresh["_growth_tracker"],
    ), "the scaler moved, so a lost state would show"
    for key in ("method", "probe", "optimizer", "scheduler", "scaler"):
        _assert_same_state(a[key], b[key], key)


def _jpeg_tree(root: Path) -> None:
    """Two classes of non-square JPEGs (an ImageFolder tree)."""
    from torchvision.io import encode_jpeg

    g = torch.Generator().manual_seed(0)
    for c in range(2):
        folder = root / "train" / f"n0{c}"
        folder.mkdir(parents=True)
        for j, (h, w) in enumerate([(37, 50), (50, 37), (30, 64), (45, 40)] * 2):
            image = torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=g)
            (folder / f"{j}.JPEG").write_bytes(encode_jpeg(image).numpy().tobytes())


def test_resume_with_full_image_crops_in_workers_is_bitwise_exact(
    compose_cfg, tmp_path: Path
) -> None:
    """The E-SimSiam ImageNet CPU recipe on a tiny JPEG tree: views (and E-SSL's rotated
    view) cut from the full images in DataLoader workers (dataset.full_image_crops), the
    predictor at a fixed rate, the epoch-wise cosine. 6 straight steps in the main process
    equal 3 + 3 where the second half loads with a worker: the boxes are seeded per item."""
    _jpeg_tree(tmp_path / "data")
    common = [
        "experiment=esimsiam_imagenet_cpu",
        f"dataset.root={tmp_path / 'data'}",
        "dataset.resolution=16",
        "augment.rotated_view.ops.0.size=8",
        "method.rotated_size=8",
        "method.head_hidden=16",
        "method.base_overrides.projector_hidden=16",
        "method.base_overrides.projector_dim=16",
        "method.base_overrides.predictor_hidden=8",
        "train.batch_size=4",
        "train.steps=6",
        "train.log_every=2",
        "train.progress=false",
        "logger.mode=disabled",
        "optim.warmup_steps=2",
    ]
    assert compose_cfg(*common, tiny=False).dataset.full_image_crops
    straight = pretrain(compose_cfg(*common, tiny=False, run_dir=tmp_path / "straight"))
    resumed = tmp_path / "resumed"
    pretrain(compose_cfg(*common, "train.stop_after=3", tiny=False, run_dir=resumed))
    pretrain(compose_cfg(*common, "train.num_workers=1", tiny=False, run_dir=resumed))
    a = load_checkpoint(straight / "checkpoints" / "last.pt")
    b = load_checkpoint(resumed / "checkpoints" / "last.pt")
    assert a["step"] == b["step"] == 6
    for key in ("method", "probe", "optimizer", "scheduler", "data_position"):
        _assert_same_state(a[key], b[key], key)
