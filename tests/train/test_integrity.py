"""A run is what its config says (issue 16 items 1, 3, 4, 5): resume compares a data
fingerprint, not the path, and never rewrites the stored config; ``resume=never`` leaves
nothing of the previous run; metrics are not duplicated after a kill; a model with
non-finite weights is never saved."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from sslequi.config import ConfigError
from sslequi.data.render.generate import RenderConfig, generate
from sslequi.train.checkpoint import load_checkpoint
from sslequi.train.run import pretrain
from sslequi.train.rundir import read_metrics
from sslequi.train.trainer import Trainer


@pytest.fixture(scope="module")
def rendered_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("render") / "root"
    generate(
        RenderConfig.from_preset(
            "tiny", out, objects_per_class=4, views_per_object=4, resolution=16, progress=False
        )
    )
    return out


@pytest.fixture
def rendered(tiny_overrides: list[str]) -> list[str]:
    """A tiny VICReg run on a rendered 3DIEBench-format root (16 px, 2 steps)."""
    kept = [o for o in tiny_overrides if not o.startswith(("dataset.", "train.steps"))]
    return [*kept, "dataset=render3d_tiny", "dataset.resolution=16", "train.steps=2"]


def _checkpoint(run_dir: Path) -> dict:
    return load_checkpoint(run_dir / "checkpoints" / "last.pt")


def test_same_data_at_a_new_root_resumes_and_records_both_roots(compose_cfg, tmp_path) -> None:
    """The synthetic set is defined by its config: another root holds the same data."""
    run_dir = pretrain(compose_cfg("dataset.root=/mnt/a", "train.stop_after=2"))
    pretrain(compose_cfg("dataset.root=/mnt/b"))  # a requeue onto a node with another mount
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "completed" and info["step"] == 4
    assert info["dataset_roots"] == ["/mnt/a", "/mnt/b"]
    assert info["data_fingerprint"]["items"] == 32
    state = _checkpoint(run_dir)
    assert state["config"]["dataset"]["root"] == "/mnt/a"  # the stored config is never rewritten
    assert state["data"]["roots"] == ["/mnt/a", "/mnt/b"]
    assert OmegaConf.load(run_dir / "config.yaml").dataset.root == "/mnt/a"


def test_different_data_is_refused_with_both_fingerprints(
    compose_cfg, rendered: list[str], rendered_root: Path, tmp_path: Path
) -> None:
    run_dir = pretrain(
        compose_cfg(*rendered, f"dataset.root={rendered_root}", "train.stop_after=1", tiny=False)
    )
    assert json.loads((run_dir / "run.json").read_text())["status"] == "requeued"

    # Identical data copied elsewhere continues the run.
    copy = tmp_path / "copy"
    shutil.copytree(rendered_root, copy)
    pretrain(compose_cfg(*rendered, f"dataset.root={copy}", tiny=False))
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "completed" and info["step"] == 2
    assert info["dataset_roots"] == [str(rendered_root), str(copy)]
    finished = (run_dir / "checkpoints" / "last.pt").stat().st_mtime_ns, info

    # Another data set (one training object fewer) is refused before anything changes.
    other = tmp_path / "other"
    shutil.copytree(rendered_root, other)
    images = np.load(other / "train_images.npy")
    labels = np.load(other / "train_labels.npy")
    np.save(other / "train_images.npy", images[:-1])
    np.save(other / "train_labels.npy", labels[:-1])
    with pytest.raises(ConfigError) as refused:
        pretrain(compose_cfg(*rendered, f"dataset.root={other}", tiny=False))
    message = str(refused.value)
    assert "other data" in message and str(rendered_root) in message and str(other) in message
    assert f"items: {len(images)} → {len(images) - 1}" in message
    assert message.count('"sha256"') == 2  # both fingerprints are named
    state = _checkpoint(run_dir)
    assert state["config"]["dataset"]["root"] == str(rendered_root)
    after = json.loads((run_dir / "run.json").read_text())
    assert (run_dir / "checkpoints" / "last.pt").stat().st_mtime_ns == finished[0]
    assert after == finished[1]


def test_resume_never_removes_every_trace_of_the_previous_run(compose_cfg) -> None:
    run_dir = pretrain(compose_cfg("train.checkpoint_every_steps=2", "train.keep_checkpoints=true"))
    assert (run_dir / "checkpoints" / "step_2.pt").exists()
    (run_dir / "results.json").write_text('{"format": 1, "rows": []}')
    (run_dir / "eval_features").mkdir()
    (run_dir / "eval_features" / "train-2-abc.pt").write_bytes(b"old features")

    pretrain(compose_cfg("train.steps=2", "train.resume=never"))
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["last.pt"]
    assert not (run_dir / "results.json").exists()
    assert not (run_dir / "eval_features").exists()
    assert [r["step"] for r in read_metrics(run_dir)] == [2]
    info = json.loads((run_dir / "run.json").read_text())
    assert info["attempts"] == 1 and info["step"] == 2


def _failing_at(step: int, monkeypatch: pytest.MonkeyPatch, error: type = RuntimeError) -> None:
    """Make the trainer die when it starts step ``step`` (a kill between two saves)."""
    original = Trainer._train_step

    def step_or_die(self: Trainer, raw):  # type: ignore[no-untyped-def]
        if self.step + 1 == step:
            raise error("killed")
        return original(self, raw)

    monkeypatch.setattr(Trainer, "_train_step", step_or_die)


def test_metrics_after_the_checkpoint_are_not_repeated_on_resume(
    compose_cfg, monkeypatch: pytest.MonkeyPatch
) -> None:
    overrides = ["train.steps=6", "train.log_every=1", "train.checkpoint_every_steps=2"]
    with monkeypatch.context() as patch:
        _failing_at(4, patch)
        with pytest.raises(RuntimeError, match="killed"):
            pretrain(compose_cfg(*overrides))
    run_dir = Path(compose_cfg().run_dir)
    assert [r["step"] for r in read_metrics(run_dir)] == [1, 2, 3]  # checkpoint at 2
    with (run_dir / "metrics.jsonl").open("a") as stream:
        stream.write('{"step": 4, "loss": 1.')  # a line cut by the kill
    pretrain(compose_cfg(*overrides))
    assert [r["step"] for r in read_metrics(run_dir)] == [1, 2, 3, 4, 5, 6]


def test_non_finite_weights_are_never_saved(compose_cfg, monkeypatch: pytest.MonkeyPatch) -> None:
    """The loss of step 4 is finite, but its update makes a weight infinite: the periodic
    save at step 4 must refuse, keeping the good checkpoint of step 2."""
    original = Trainer._train_step

    def diverge_at_4(self: Trainer, raw):  # type: ignore[no-untyped-def]
        record = original(self, raw)
        if self.step + 1 == 4:
            with torch.no_grad():
                next(self.method.parameters()).view(-1)[0] = float("inf")
        return record

    monkeypatch.setattr(Trainer, "_train_step", diverge_at_4)
    cfg = compose_cfg("train.steps=6", "train.checkpoint_every_steps=2", "train.log_every=2")
    with pytest.raises(FloatingPointError, match="non-finite weights at step 4"):
        pretrain(cfg)
    run_dir = Path(cfg.run_dir)
    state = _checkpoint(run_dir)
    assert state["step"] == 2
    assert all(torch.isfinite(t).all() for t in state["method"].values() if t.is_floating_point())
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "failed" and "non-finite weights" in info["reason"]
    # The rerun resumes from the good checkpoint instead of failing at once.
    monkeypatch.setattr(Trainer, "_train_step", original)
    pretrain(cfg)
    assert json.loads((run_dir / "run.json").read_text())["status"] == "completed"
