"""Every configs/dataset/*.yaml (mine) composes and resolves to its registered dataclass."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from sslequi.config import register_configs, resolve_config
from sslequi.data.folders import ImageNet100Config, STL10Config
from sslequi.data.threedie import THREEDIE_MEAN, ThreeDIEConfig, ThreeDIETConfig

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
EXPECTED = {
    "3diebench": (ThreeDIEConfig, 256),
    "3diebench_t": (ThreeDIETConfig, 256),
    "3diebench_ood": (ThreeDIEConfig, 256),
    "render3d_small": (ThreeDIEConfig, 64),
    "render3d_tiny": (ThreeDIEConfig, 32),
    "cifar10": (object, 32),
    "cifar100": (object, 32),
    "stl10": (STL10Config, 96),
    "imagenet100": (ImageNet100Config, 256),
    "imagefolder": (object, 256),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_dataset_config_resolves(name: str) -> None:
    register_configs()
    with initialize_config_dir(config_dir=str(CONFIGS), version_base=None):
        resolved = resolve_config(compose("pretrain", overrides=[f"dataset={name}"]))
    kind, resolution = EXPECTED[name]
    assert isinstance(resolved.dataset, kind)
    assert resolved.dataset.resolution == resolution
    if isinstance(resolved.dataset, ThreeDIEConfig):
        assert resolved.dataset.mean == THREEDIE_MEAN
