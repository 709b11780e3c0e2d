"""Exact resume of the capsule methods with activation checkpointing on (methods.md §11.2):
4 uninterrupted steps equal 2 steps + a resumed run of 2 more, bitwise (as test_resume.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sslequi.train.checkpoint import load_checkpoint
from sslequi.train.run import pretrain
from tests.train.test_resume import _assert_same_state


@pytest.mark.parametrize("method", ["equicaps", "capsie"])
def test_capsule_resume_is_bitwise_exact(
    compose_cfg, tiny_overrides, tmp_path: Path, method: str
) -> None:
    common = [o for o in tiny_overrides if not o.startswith("method.projector=")] + [
        f"method={method}",
        "method.num_capsules=4",
        "method.activation_checkpoint=true",
        "train.steps=4",
        "train.batch_size=4",
        "dataset.n_objects=16",
    ]
    straight = pretrain(compose_cfg(*common, tiny=False, run_dir=tmp_path / "straight"))
    resumed = tmp_path / "resumed"
    pretrain(compose_cfg(*common, "train.stop_after=2", tiny=False, run_dir=resumed))
    assert json.loads((resumed / "run.json").read_text())["step"] == 2
    pretrain(compose_cfg(*common, tiny=False, run_dir=resumed))
    a = load_checkpoint(straight / "checkpoints" / "last.pt")
    b = load_checkpoint(resumed / "checkpoints" / "last.pt")
    assert a["step"] == b["step"] == 4
    for key in ("method", "optimizer", "data_position"):
        _assert_same_state(a[key], b[key], key)
    if method == "capsie":  # the target temperature buffer follows the schedule
        assert a["method"]["target_temperature"].item() > 0.025
