"""Registries: duplicates rejected, unknown names list the alternatives, configs round-trip."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from sslequi.data.synthetic import SyntheticConfig
from sslequi.methods.byol import BYOLConfig
from sslequi.methods.simclr import SimCLR, SimCLRConfig
from sslequi.methods.simsiam import SimSiamConfig
from sslequi.methods.vicreg import VICRegConfig
from sslequi.models.backbones import BackboneConfig, TinyBackboneConfig
from sslequi.registry import BACKBONES, DATASETS, METHODS, Registry, RegistryError

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_duplicate_name_is_rejected_and_names_the_first_owner() -> None:
    registry: Registry[type] = Registry("widget")

    @registry.register("a")
    class First:
        pass

    with pytest.raises(RegistryError, match=r"duplicate widget name 'a'.*First"):

        @registry.register("a")
        class Second:
            pass

    assert registry.get("a") is First


def test_global_registry_rejects_a_second_simclr() -> None:
    with pytest.raises(RegistryError, match="duplicate method name 'simclr'"):
        METHODS.register("simclr")(type("Impostor", (), {}))
    assert METHODS.get("simclr") is SimCLR


def test_unknown_names_list_the_alternatives() -> None:
    with pytest.raises(RegistryError) as info:
        METHODS.get("simclrr")
    message = str(info.value)
    assert "unknown method 'simclrr'" in message
    for name in ("simclr", "vicreg", "byol", "simsiam"):
        assert name in message
    with pytest.raises(RegistryError, match="resnet18_tiny"):
        BACKBONES.get("resnet19")
    with pytest.raises(RegistryError, match="synthetic"):
        DATASETS.get("synthtic")
    assert "none registered" in _empty_error()


def _empty_error() -> str:
    try:
        Registry("thing").get("x")
    except RegistryError as error:
        return str(error)
    return ""


def test_membership_and_iteration() -> None:
    assert "vicreg" in METHODS and "nope" not in METHODS
    assert {"resnet18", "resnet50", "resnet18_tiny"} <= set(BACKBONES.names())
    assert any(entry.name == "synthetic" for entry in DATASETS)


@pytest.mark.parametrize(
    ("path", "schema"),
    [
        ("method/simclr.yaml", SimCLRConfig),
        ("method/vicreg.yaml", VICRegConfig),
        ("method/byol.yaml", BYOLConfig),
        ("method/simsiam.yaml", SimSiamConfig),
        ("dataset/synthetic.yaml", SyntheticConfig),
        ("backbone/resnet18.yaml", BackboneConfig),
        ("backbone/resnet18_sie.yaml", BackboneConfig),
        ("backbone/resnet18_cifar.yaml", BackboneConfig),
        ("backbone/resnet50.yaml", BackboneConfig),
        ("backbone/resnet18_tiny.yaml", TinyBackboneConfig),
    ],
)
def test_config_files_match_their_registered_schema(path: str, schema: type) -> None:
    """Every key of the YAML is a field of the dataclass and the values type-check."""
    node = OmegaConf.merge(OmegaConf.structured(schema), OmegaConf.load(CONFIGS / path))
    typed = OmegaConf.to_object(node)
    assert isinstance(typed, schema)
    registry = {"method": METHODS, "dataset": DATASETS, "backbone": BACKBONES}[path.split("/")[0]]
    assert registry.entry(typed.name).config is schema


def test_yaml_defaults_equal_dataclass_defaults() -> None:
    for path, schema in [
        ("method/simclr.yaml", SimCLRConfig),
        ("method/vicreg.yaml", VICRegConfig),
        ("method/byol.yaml", BYOLConfig),
        ("method/simsiam.yaml", SimSiamConfig),
    ]:
        loaded = OmegaConf.to_object(
            OmegaConf.merge(OmegaConf.structured(schema), OmegaConf.load(CONFIGS / path))
        )
        assert loaded == schema(), path
