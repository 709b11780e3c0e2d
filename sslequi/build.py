"""Builders: typed config → backbone, method, dataset, via the registries.

Every builder takes the resolved (typed) config, so an unknown name or a bad value has
already failed in ``sslequi.config.resolve_config``.
"""

from __future__ import annotations

import torch
from torch import nn

from sslequi.actions import latent_encodings
from sslequi.augment.ops import AugmentConfigError
from sslequi.augment.pipeline import build_pipeline, check_chunking
from sslequi.config import ConfigError, ResolvedConfig, import_components
from sslequi.data.base import DatasetConfig, DatasetInfo, ImageDataset
from sslequi.methods.base import Method
from sslequi.registry import BACKBONES, DATASETS, METHODS
from sslequi.types import MethodSpec


def build_backbone(cfg: ResolvedConfig) -> tuple[nn.Module, int]:
    """The registered backbone factory's ``(module, feature_dim)``."""
    import_components()
    factory = BACKBONES.get(cfg.backbone.name)
    module, feature_dim = factory(cfg.backbone)  # type: ignore[misc]
    return module, int(feature_dim)


def build_method(cfg: ResolvedConfig) -> Method:
    """The registered method around a freshly built backbone."""
    backbone, feature_dim = build_backbone(cfg)
    method_class = METHODS.get(cfg.method.name)
    method = method_class(cfg.method, backbone, feature_dim)
    if not isinstance(method, Method):
        raise TypeError(f"method {cfg.method.name!r} built a {type(method)}, not a Method")
    return method


def build_dataset(dataset_cfg: DatasetConfig, split: str, num_views: int) -> ImageDataset:
    """The registered dataset class for ``split`` delivering ``num_views`` views per item.

    A missing root or a bad data file surfaces as a ``ConfigError`` naming the dataset.
    """
    import_components()
    dataset_class = DATASETS.get(dataset_cfg.name)
    try:
        dataset = dataset_class(dataset_cfg, split, num_views)
    except (OSError, ValueError) as error:
        if isinstance(error, ConfigError):
            raise
        raise ConfigError(f"dataset {dataset_cfg.name!r} ({split}): {error}") from error
    if not isinstance(dataset, ImageDataset):
        raise TypeError(
            f"dataset {dataset_cfg.name!r} built a {type(dataset)}, not an ImageDataset"
        )
    return dataset


def feature_dim_of(cfg: ResolvedConfig) -> int:
    """The backbone's feature dimension, built on the meta device (no memory, no compute)."""
    with torch.device("meta"):
        _, feature_dim = build_backbone(cfg)
    return feature_dim


def method_spec_of(cfg: ResolvedConfig) -> MethodSpec:
    """The method's ``MethodSpec``, from a meta-device build (before any compute).

    A method whose constructor cannot run on ``meta`` is built on the CPU instead. Errors
    the constructor raises about its options become a ``ConfigError`` naming the method.
    """
    try:
        with torch.device("meta"):
            method = build_method(cfg)
    except (ValueError, TypeError, KeyError) as error:
        raise ConfigError(f"method {cfg.method.name!r}: {error}") from None
    except (RuntimeError, NotImplementedError):
        method = build_method(cfg)
    return method.spec()


def check_compatible(spec: MethodSpec, info: DatasetInfo, cfg: ResolvedConfig) -> None:
    """Fail before compute when the dataset or the augmentation recipe cannot deliver
    what the method declares (latents, 2D action parameters, view layout)."""
    problems = []
    if spec.needs_latents and info.latent_dim is None:
        problems.append(
            f"method {cfg.method.name!r} needs dataset latents, but dataset "
            f"{cfg.dataset.name!r} has none"
        )
    needs = sorted(set(spec.actions) & latent_encodings())
    if needs and info.latent_dim is None:
        problems.append(
            f"method {cfg.method.name!r} needs actions {needs} computed from dataset latents, "
            f"but dataset {cfg.dataset.name!r} has none"
        )
    if problems:
        raise ConfigError("; ".join(problems))
    try:  # the recipe against the method and dataset: what the trainer will build
        pipeline = build_pipeline(cfg.augment, spec, info)
        if any(view.chunk_shared for view in pipeline.views):  # CARE: whole chunks of ≥ 2
            check_chunking(cfg.train.batch_size, pipeline.chunks, pipeline.chunk_size)
    except AugmentConfigError as error:
        raise ConfigError(f"config augment ({cfg.augment.name}): {error}") from None
    check_batch = getattr(cfg.method, "check_batch", None)
    if callable(check_batch):  # a method's own batch-size constraints (e.g. MoCo's queue)
        try:
            check_batch(cfg.train.batch_size)
        except ValueError as error:
            raise ConfigError(f"config method ({cfg.method.name}): {error}") from None
