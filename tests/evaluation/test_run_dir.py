"""``evaluate_run`` on a run directory: checkpoint loading, datasets from the run config,
results.json merging across evaluations, the feature cache reused by the second one."""

from __future__ import annotations

from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from sslequi.build import build_method
from sslequi.cli.pretrain import configs_dir
from sslequi.config import register_configs, resolve_config
from sslequi.evaluation.protocol import HeadTraining
from sslequi.evaluation.results import load_results
from sslequi.evaluation.runner import EvalConfig, evaluate_run
from sslequi.train.checkpoint import FORMAT_VERSION, save_atomic

OVERRIDES = [
    "method=vicreg",
    "dataset=synthetic",
    "dataset.n_objects=12",
    "dataset.n_val_objects=6",
    "dataset.views_per_object=3",
    "dataset.resolution=16",
    "backbone=resnet18_tiny",
]


def _make_run(run_dir: Path) -> None:
    register_configs()
    with initialize_config_dir(str(configs_dir()), version_base="1.3"):
        cfg = compose("pretrain", overrides=OVERRIDES)
    container = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    method = build_method(resolve_config(cfg))
    run_dir.mkdir(parents=True)
    OmegaConf.save(cfg, run_dir / "config.yaml")
    state = {
        "format_version": FORMAT_VERSION,
        "step": 7,
        "method": method.state_dict(),
        "config": container,
    }
    save_atomic(state, run_dir / "checkpoints" / "last.pt")


def test_evaluate_run_twice_merges_rows_and_reuses_the_cache(tmp_path: Path) -> None:
    run_dir = tmp_path / "runs" / "exp" / "single" / "vicreg"
    _make_run(run_dir)
    cfg = EvalConfig(
        run=str(run_dir),
        probes=["linear", "rotation"],
        progress=False,
        wandb=False,
        protocol="paper",
    )
    cfg.probe.linear = HeadTraining(head="linear", epochs=2, batch_size=8)
    cfg.probe.rotation = HeadTraining(head="mlp", hidden=[16], epochs=2, batch_size=8)
    first = evaluate_run(cfg)
    cache_files = sorted((run_dir / "eval_features").glob("*.pt"))
    assert len(cache_files) == 2  # train and val, all views
    stamps = [f.stat().st_mtime_ns for f in cache_files]
    second = evaluate_run(cfg)
    assert [f.stat().st_mtime_ns for f in cache_files] == stamps  # cache hit: not rewritten
    rows = load_results(run_dir)
    assert len(rows) == len(first) + len(second)
    assert {r.evaluation for r in rows} == {1, 2}
    row = rows[0]
    assert row.method == "vicreg" and row.protocol.checkpoint_step == 7
    assert row.protocol.image_size == 16 and row.protocol.dataset == "synthetic@16"
    assert torch.isfinite(torch.tensor([r.value for r in rows])).all()
