"""Probes as registered units, and the contract for what a probe reads (declared
representations: backbone slices, or functions of the pooled output or pre-pool map)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import Tensor

from sslequi.evaluation.probes import PROBES, Probe, load_probes, register_probe
from sslequi.evaluation.protocol import ALL_PROBES, HeadTraining
from sslequi.evaluation.runner import EvalConfig, Evaluation, RunIdentity, evaluate_method
from sslequi.types import Representation
from tests.evaluation.toys import SIDE, PixelMethod, ToyConfig, ToyObjects


class MapBackbonePixelMethod(PixelMethod):
    """PixelMethod whose backbone map is the image; two computed representations."""

    def feature_map(self, images: Tensor) -> Tensor:
        return images * self.backbone.scale

    def representations(self) -> dict[str, Representation]:
        found = super().representations()
        found["label_row"] = Representation("label_row", compute=lambda y: y[:, :SIDE] * 2.0)
        found["pose_map"] = Representation(
            "pose_map",
            compute=lambda m: m[:, 1, 0, :4],
            source="feature_map",
            default=False,
        )
        return found


def _datasets() -> dict[str, ToyObjects]:
    cfg = ToyConfig(n_objects=40, views=4)
    return {"train": ToyObjects(cfg, "train"), "val": ToyObjects(cfg, "val")}


def _cfg(**kwargs: object) -> EvalConfig:
    cfg = EvalConfig(progress=False, wandb=False, **kwargs)  # type: ignore[arg-type]
    cfg.probe.linear = HeadTraining(head="linear", lr=0.05, epochs=30, batch_size=32)
    return cfg


def test_every_documented_probe_is_registered() -> None:
    assert set(ALL_PROBES) <= set(load_probes().names())
    assert all(issubclass(PROBES.get(name), Probe) for name in ALL_PROBES)


def test_a_new_probe_is_a_registered_class(tmp_path: Path) -> None:
    if "feature_mean" not in PROBES:

        @register_probe("feature_mean")
        class FeatureMean(Probe):
            def run(self, evaluation: Evaluation, part: str) -> None:
                value = float(evaluation.part_features("val", part).mean())
                protocol = evaluation.protocol_for("feature_mean", part, "mean")
                evaluation.add_row(protocol, "mean", "val", value, None, 1)

    data = _datasets()
    rows = evaluate_method(PixelMethod(), data, _cfg(probes=["feature_mean"], parts=["full"]))
    expected = float(
        torch.stack([data["val"].views_of(i).images for i in range(40)]).float().div(255).mean()
    )
    assert [r.probe for r in rows] == ["feature_mean"]
    assert abs(rows[0].value - expected) < 1e-5


def test_computed_representations_are_extracted_cached_and_probed(tmp_path: Path) -> None:
    data = _datasets()
    method = MapBackbonePixelMethod()
    cfg = _cfg(probes=["linear"], parts=["auto"], protocol="paper")
    evaluation = Evaluation(method, data, cfg, RunIdentity(), tmp_path / "cache")
    assert evaluation.parts == ["full", "invariant", "equivariant", "label_row"]  # default only
    label_row = evaluation.part_features("val", "label_row")
    backbone = evaluation.part_features("val", "full")
    assert torch.equal(label_row, backbone[..., :SIDE] * 2.0)
    pose = evaluation.part_features("val", "pose_map")
    images = torch.stack([data["val"].views_of(i).images for i in range(40)]).float() / 255
    assert torch.allclose(pose, images[:, :, 1, 0, :4])
    cached = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert len(cached) == 3  # backbone, label_row, pose_map (val split)
    rows = evaluation.run()
    top1 = {r.protocol.part: r.value for r in rows if r.metric == "top1" and r.split == "val"}
    assert top1["label_row"] == 1.0  # the label's one-hot row: the known answer


def test_unknown_or_computed_representations_fail_clearly() -> None:
    data = _datasets()
    with pytest.raises(ValueError, match="declares.*label_row"):
        evaluate_method(MapBackbonePixelMethod(), data, _cfg(probes=["linear"], parts=["agg"]))
    cfg = _cfg(probes=["linear"], parts=["label_row"], mode="live", protocol="paper")
    with pytest.raises(Exception, match="computed"):
        evaluate_method(MapBackbonePixelMethod(), data, cfg)
