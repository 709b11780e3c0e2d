"""The E-SSL CPU recipes train (issue 11): each ``_cpu`` variant, shrunk further to a few
pixels and 2 steps, runs ``sslequi-pretrain``'s path end to end on tiny data in the
standard formats (a CIFAR-10 python tree; an ImageFolder of non-square JPEGs, cropped on
the full image in the workers), with its fixed-LR predictor group where it has one."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torchvision.io import encode_jpeg

from sslequi.cli.pretrain import compose_config
from sslequi.train.checkpoint import load_checkpoint
from sslequi.train.run import pretrain
from tests.data.test_folders import _write_cifar10

TINY = [
    "train.batch_size=4",
    "train.steps=2",
    "train.log_every=1",
    "train.progress=false",
    "train.checkpoint_every_min=0",
    "logger.mode=disabled",
    "optim.warmup_steps=1",
    "method.head_hidden=16",
]
SIMCLR_HEADS = ["method.base_overrides.projector=16-16"]
SIMSIAM_HEADS = [
    "method.base_overrides.projector_hidden=16",
    "method.base_overrides.projector_dim=16",
    "method.base_overrides.predictor_hidden=8",
]


def _jpeg_tree(root: Path) -> None:
    g = torch.Generator().manual_seed(0)
    for c in range(2):
        folder = root / "train" / f"n0{c}"
        folder.mkdir(parents=True)
        for j, (h, w) in enumerate([(37, 50), (50, 37)] * 2):
            image = torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=g)
            (folder / f"{j}.JPEG").write_bytes(encode_jpeg(image).numpy().tobytes())


CASES = {
    "esimclr_cifar10_cpu": SIMCLR_HEADS,
    "esimsiam_cifar10_cpu": SIMSIAM_HEADS,
    "simclr_cifar10_cpu": ["method.projector=16-16"],
    "simsiam_cifar10_cpu": [
        "method.projector_hidden=16",
        "method.projector_dim=16",
        "method.predictor_hidden=8",
    ],
    "esimclr_imagenet_cpu": ["method.base_overrides.projector=16-16-8"],
    "esimsiam_imagenet_cpu": SIMSIAM_HEADS,
}


@pytest.mark.parametrize("recipe", sorted(CASES))
def test_cpu_recipe_trains_two_steps(recipe: str, tmp_path: Path) -> None:
    data = tmp_path / "data"
    overrides = [f"experiment={recipe}", f"dataset.root={data}", *CASES[recipe]]
    if "imagenet" in recipe:
        _jpeg_tree(data)
        overrides += [
            "dataset.resolution=16",
            "augment.rotated_view.ops.0.size=8",
            "method.rotated_size=8",
        ]
    else:
        _write_cifar10(data)
        overrides += ["method.rotated_size=8"]
    if recipe.startswith(("simclr", "simsiam")):
        overrides.remove("method.rotated_size=8")
    heads = [o for o in TINY if not (recipe.startswith(("simclr", "simsiam")) and "head_" in o)]
    run = pretrain(compose_config([*overrides, *heads, f"run_dir={tmp_path / 'run'}"]))
    state = load_checkpoint(run / "checkpoints" / "last.pt")
    assert state["step"] == 2
    groups = {g.get("name"): g for g in state["optimizer"]["param_groups"]}
    if "simsiam" in recipe:  # §7.4: the predictor's rate never moves
        assert groups["predictor"]["fixed_lr"]
        assert groups["predictor"]["lr"] != groups["method"]["lr"]
