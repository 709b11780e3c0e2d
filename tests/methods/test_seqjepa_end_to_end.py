"""seq-JEPA pretrain → evaluate on tiny data: 3D sequences (synthetic objects), the
CIFAR-100 and STL-10 PLS ``_cpu`` recipes (methods.md §9.3-9.4, evaluation.md §2.1, §9)."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sslequi.cli.pretrain import compose_config
from sslequi.evaluation.results import ResultRow
from sslequi.evaluation.runner import eval_config_from_dict, evaluate_run
from sslequi.train.run import pretrain
from tests.data.test_pls import write_tiny_stl

TINY_HEADS = [
    "method.action_embed_dim=16",
    "method.predictor_hidden=32",
    "method.online_probe_hidden=16",
    "train.log_every=1",
    "train.progress=false",
    "train.checkpoint_every_min=0",
    "logger.mode=disabled",
]
FAST_PROBES: dict[str, Any] = {
    "linear": {"epochs": 2},
    "rotation": {"epochs": 2, "hidden": [16, 16]},
    "agg_linear": {"epochs": 2, "draws": 2},
    "aug_params": {"epochs": 2, "draws": 1, "hidden": [16, 16]},
    "fixation": {"epochs": 2},
}


@pytest.fixture(autouse=True)
def _quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


def _evaluate(
    run: Path, probes: list[str], agg_views: int = 3, **overrides: Any
) -> list[ResultRow]:
    settings = {**FAST_PROBES, "agg_linear": {**FAST_PROBES["agg_linear"], "views": agg_views}}
    cfg = eval_config_from_dict(
        {
            "run": str(run),
            "probes": probes,
            "protocol": "paper",
            "wandb": False,
            "progress": False,
            "device": "cpu",
            "batch_size": 16,
            "probe": settings,
            **overrides,
        }
    )
    return evaluate_run(cfg, progress_print=lambda _: None)


def _metrics(rows: list[ResultRow]) -> set[tuple[str, str]]:
    return {(row.probe, row.metric) for row in rows}


def test_3d_sequences_pretrain_and_evaluate(tmp_path: Path) -> None:
    run = tmp_path / "run3d"
    cfg = compose_config(
        [
            "method=seqjepa",
            "method.observed_views=2",
            "backbone=resnet18_tiny",
            "dataset.resolution=16",
            "dataset.n_objects=16",
            "dataset.n_val_objects=8",
            "train.batch_size=8",
            "train.steps=2",
            *TINY_HEADS,
            f"run_dir={run}",
        ]
    )
    pretrain(cfg)
    rows = _evaluate(run, ["agg_linear", "linear", "rotation"], agg_views=3)
    found = _metrics(rows)
    assert {("agg_linear", "top1"), ("linear", "top1")} <= found
    assert {("rotation", "r2_global"), ("rotation", "r2_per_component")} <= found
    agg = [r for r in rows if r.probe == "agg_linear" and r.split == "val"]
    assert agg and "M_val=3" in agg[0].protocol.extra and agg[0].protocol.part == "agg"
    with pytest.raises(ValueError, match="probe.agg_linear.views=9"):
        _evaluate(run, ["agg_linear"], agg_views=9)


def _write_cifar100(root: Path) -> None:
    base = root / "cifar-100-python"
    base.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name, n in (("train", 24), ("test", 8)):
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 100, n)]
        with (base / name).open("wb") as handle:
            pickle.dump({b"data": data, b"fine_labels": labels}, handle)
    (base / "meta").write_bytes(pickle.dumps({b"fine_label_names": []}))


def test_cifar100_cpu_recipe_end_to_end(tmp_path: Path) -> None:
    _write_cifar100(tmp_path / "data")
    run = tmp_path / "cifar"
    cfg = compose_config(
        [
            "experiment=seqjepa_cifar100_cpu",
            f"dataset.root={tmp_path / 'data'}",
            "train.batch_size=8",
            "train.steps=2",
            "optim.warmup_steps=1",
            *TINY_HEADS,
            f"run_dir={run}",
        ]
    )
    pretrain(cfg)
    rows = _evaluate(run, ["agg_linear", "linear", "aug_params"], eval_splits=["test"])
    found = _metrics(rows)
    assert ("agg_linear", "top1") in found and ("linear", "top1") in found
    for group in ("crop", "jitter", "blur"):
        assert ("aug_params", f"{group}_r2_per_component") in found
        assert ("aug_params", f"{group}_r2_global") in found


def test_stl10_pls_cpu_recipe_end_to_end(tmp_path: Path) -> None:
    write_tiny_stl(tmp_path / "data", counts=(8, 6, 16))
    run = tmp_path / "pls"
    cfg = compose_config(
        [
            "experiment=seqjepa_stl10_pls_cpu",
            f"dataset.root={tmp_path / 'data'}",
            "train.batch_size=8",
            "train.steps=2",
            "optim.warmup_steps=1",
            *TINY_HEADS,
            f"run_dir={run}",
        ]
    )
    pretrain(cfg)
    rows = _evaluate(
        run,
        ["linear", "fixation", "agg_linear"],
        train_split="labeled",
        eval_splits=["test"],
        agg_views=4,
    )
    found = _metrics(rows)
    assert {("fixation", "r2_global"), ("fixation", "r2_per_component")} <= found
    assert ("agg_linear", "top1") in found and ("linear", "top1") in found
