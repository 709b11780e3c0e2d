"""Probes on each backbone stage (eval ``layers=[…]``): the stage maps of the ResNets, the
stage representations every method declares, and the evaluation that reports every
requested stage and marks the best one (features with a known answer)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import Tensor

from sslequi.evaluation.protocol import HeadTraining, Protocol
from sslequi.evaluation.results import ResultRow
from sslequi.evaluation.runner import EvalConfig, Evaluation, RunIdentity, mark_best_layers
from sslequi.methods.base import global_average_pool
from sslequi.models.backbones import STAGES, BackboneConfig, build_resnet
from tests.evaluation.toys import PixelBackbone, PixelMethod, ToyConfig, ToyObjects

torch.set_num_threads(1)


class StagedPixelBackbone(PixelBackbone):
    """Two stages with known content: ``layer1`` = the pose/hue channels (label-free),
    ``layer2`` = the label's one-hot row as a 4-channel 1×1 map."""

    stages = ("layer1", "layer2")

    def feature_map(self, images: Tensor, layer: str = "layer2") -> Tensor:
        if layer == "layer1":
            return images[:, 1:3] * self.scale
        return images[:, 0, 0, :, None, None] * self.scale


class StagedPixelMethod(PixelMethod):
    def __init__(self) -> None:
        super().__init__()
        self.backbone = StagedPixelBackbone()


def _datasets() -> dict[str, ToyObjects]:
    cfg = ToyConfig(n_objects=40, views=4)
    return {"train": ToyObjects(cfg, "train"), "val": ToyObjects(cfg, "val")}


def _cfg(**kwargs: object) -> EvalConfig:
    cfg = EvalConfig(progress=False, wandb=False, protocol="paper", **kwargs)  # type: ignore[arg-type]
    cfg.probe.linear = HeadTraining(head="linear", lr=0.05, epochs=30, batch_size=32)
    return cfg


@pytest.mark.parametrize("style", ["torchvision", "vicreg"])
def test_resnet_stage_maps_are_the_stage_outputs(style: str) -> None:
    """feature_map(x, layerK) equals what layerK outputs inside forward; the last stage
    average-pooled is the backbone output."""
    backbone, dim = build_resnet(18, BackboneConfig(width_multiplier=0.125, style=style))
    backbone.eval()
    captured: dict[str, Tensor] = {}
    for name in STAGES:
        getattr(backbone, name).register_forward_hook(
            lambda m, i, o, name=name: captured.update({name: o})
        )
    images = torch.randn(2, 3, 64, 64)
    pooled = backbone(images)
    assert backbone.stages == STAGES
    for k, name in enumerate(STAGES):
        stage = backbone.feature_map(images, layer=name)
        assert torch.equal(stage, captured[name])
        assert stage.shape[1] == 8 * 2**k
    assert torch.allclose(global_average_pool(backbone.feature_map(images)), pooled, atol=1e-6)
    assert dim == 64
    with pytest.raises(ValueError, match="unknown ResNet stage"):
        backbone.feature_map(images, layer="layer5")


def test_every_resnet_method_declares_its_stages() -> None:
    from sslequi.methods.rotnet import RotNet, RotNetConfig

    backbone, dim = build_resnet(18, BackboneConfig(width_multiplier=0.125, stem="cifar"))
    method = RotNet(RotNetConfig(), backbone, dim).eval()
    reps = method.representations()
    assert [n for n in reps if n.startswith("layer")] == list(STAGES)
    assert all(reps[s].source == s and not reps[s].default for s in STAGES)
    images = torch.randn(3, 3, 32, 32)
    layer4 = reps["layer4"].compute(method.stage_map(images, "layer4"))  # type: ignore[misc]
    assert torch.allclose(layer4, method.encode(images), atol=1e-6)
    assert reps["layer2"].compute(method.stage_map(images, "layer2")).shape == (3, 16)  # type: ignore[misc]
    assert "layer1" not in PixelMethod().representations()  # no stages: nothing declared


def test_stage_probes_report_every_stage_and_mark_the_best(tmp_path: Path) -> None:
    """layer2 holds the label's one-hot row, layer1 nothing about it: linear top-1 reads 1.0
    on layer2, near chance on layer1, and layer2's rows are the ones marked best."""
    data = _datasets()
    cfg = _cfg(probes=["linear"], parts=["full"], layers=["all"])
    evaluation = Evaluation(StagedPixelMethod(), data, cfg, RunIdentity(), tmp_path / "cache")
    assert evaluation.parts == ["full", "layer1", "layer2"]
    images = torch.stack([data["val"].views_of(i).images for i in range(40)]).float() / 255
    layer1 = evaluation.part_features("val", "layer1")
    assert torch.allclose(layer1, images[:, :, 1:3].mean(dim=(-2, -1)), atol=1e-6)
    assert torch.equal(evaluation.part_features("val", "layer2"), images[:, :, 0, 0, :])
    rows = evaluation.run()
    val = {r.protocol.part: r for r in rows if r.metric == "top1" and r.split == "val"}
    assert set(val) == {"full", "layer1", "layer2"}
    assert val["layer2"].value == 1.0 and val["layer1"].value < 0.7
    assert val["layer2"].best_layer is True and val["layer1"].best_layer is False
    assert val["full"].best_layer is None  # not a stage
    assert all(r.best_layer is not None for r in rows if r.protocol.part.startswith("layer"))


def test_layer_requests_fail_clearly() -> None:
    data = _datasets()
    with pytest.raises(ValueError, match="unknown stage 'layer3'"):
        Evaluation(
            StagedPixelMethod(),
            data,
            _cfg(probes=["linear"], layers=["layer3"]),
            RunIdentity(),
            None,
        )
    with pytest.raises(ValueError, match="exposes no stages"):
        Evaluation(
            PixelMethod(), data, _cfg(probes=["linear"], layers=["all"]), RunIdentity(), None
        )
    evaluation = Evaluation(
        StagedPixelMethod(), data, _cfg(probes=["linear"], parts=["layer1"]), RunIdentity(), None
    )
    assert evaluation.parts == ["layer1"]  # a stage is also a plain part


def test_mark_best_layers_minimises_error_metrics() -> None:
    def row(part: str, metric: str, value: float) -> ResultRow:
        protocol = Protocol(probe="rotation", part=part, metric_definition=metric)
        return ResultRow("r", "m", "rotation", metric, "val", value, None, 10, protocol)

    rows = [
        row("layer1", "r2_global", 0.2),
        row("layer2", "r2_global", 0.5),
        row("layer1", "sign_invariant_error", 0.1),
        row("layer2", "sign_invariant_error", 0.3),
        row("full", "r2_global", 0.9),
    ]
    best = mark_best_layers(rows, ["layer1", "layer2"])
    assert [(r.protocol.part, r.metric) for r in best] == [
        ("layer2", "r2_global"),
        ("layer1", "sign_invariant_error"),
    ]
    assert [r.best_layer for r in rows] == [False, True, True, False, None]
    restored = ResultRow.from_json(rows[1].to_json())
    assert restored.best_layer is True
    legacy = rows[4].to_json()
    legacy.pop("best_layer")
    assert ResultRow.from_json(legacy).best_layer is None  # older results.json files load
