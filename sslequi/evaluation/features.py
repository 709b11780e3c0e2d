"""Frozen-backbone feature extraction of every view of every object, cached on disk.

With the backbone in eval mode and no augmentation, features are a deterministic function
of the image, so all views can be embedded once and every probe trained on the cache
(evaluation.md §12). The cache holds *all* views of each object (``ObjectDataset.views_of``)
so probes can draw fresh pairs every epoch. A cache file is keyed by a hash of the
checkpoint weights, dataset, split, resolution and views; a file whose stored key differs
from the requested one is refused. Train-mode BatchNorm changes the features with every
batch, so it never goes through the cache (``features.live`` handles it).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from sslequi.data.base import ImageDataset, ObjectDataset
from sslequi.methods.base import Method
from sslequi.types import STAGE_SOURCES, Parts, Representation, Sample

ViewSet = Literal["all", "rot90"]
CACHE_FORMAT = 1


class FeatureCacheMismatch(ValueError):
    """A cache file that was written for another checkpoint, dataset, split or resolution."""


def method_fingerprint(method: torch.nn.Module) -> str:
    """sha256 over every state-dict entry (name, dtype, shape, bytes): identifies the weights."""
    digest = hashlib.sha256()
    for name, tensor in sorted(method.state_dict().items()):
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}|{flat.dtype}|{tuple(tensor.shape)}".encode())
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


def dataset_identity(dataset: ImageDataset) -> str:
    """A stable description of a dataset instance: class, config fields, info."""
    config = getattr(dataset, "config", None)
    config_text = json.dumps(asdict(config), sort_keys=True, default=str) if config else "-"
    return f"{type(dataset).__module__}.{type(dataset).__qualname__}|{config_text}"


@dataclass(frozen=True)
class FeatureKey:
    """What a cache file was computed from; its digest names the file."""

    checkpoint: str
    dataset: str
    split: str
    resolution: int
    views: ViewSet
    dtype: str  # storage dtype: float32 | float16
    bn_mode: str = "eval"
    representation: str = "backbone"  # backbone (pooled encode output) | a computed one

    def digest(self) -> str:
        text = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:20]


@dataclass
class ViewFeatures:
    """Features of every view of every object of one split.

    ``features`` [N, V, D] in the storage dtype; ``latents`` [N, V, L] float32 or None;
    ``labels`` [N]. For ``views="rot90"``, view k is view 0 rotated by k·90° CCW.
    """

    features: Tensor
    latents: Tensor | None
    labels: Tensor
    key: FeatureKey

    @property
    def num_objects(self) -> int:
        return int(self.features.shape[0])

    @property
    def num_views(self) -> int:
        return int(self.features.shape[1])

    def select(self, part: str, parts: Parts) -> Tensor:
        """[N, V, d] float32 features of one representation part (full/invariant/equivariant)."""
        return self.features[..., part_slice(part, parts, self.features.shape[-1])].float()


def part_slice(part: str, parts: Parts, dim: int) -> slice:
    """The slice of a ``dim``-wide representation that ``part`` names; fails if undeclared."""
    if part == "full":
        return slice(0, dim)
    if part not in ("invariant", "equivariant"):
        raise ValueError(f"unknown representation part {part!r}; use full/invariant/equivariant")
    chosen = getattr(parts, part)
    if chosen is None:
        raise ValueError(
            f"the method declares no {part} part (Method.parts() = {parts}); use part=full"
        )
    width = len(range(dim)[chosen])
    if width == 0:
        raise ValueError(f"the {part} part {chosen} is empty for a {dim}-wide representation")
    return chosen


def declared_parts(parts: Parts) -> list[str]:
    """``full`` plus every part the method declares."""
    return ["full"] + [name for name in ("invariant", "equivariant") if getattr(parts, name)]


class _AllViews(Dataset[Sample]):
    """Every view of object i (3D datasets), or the single un-augmented image (2D)."""

    def __init__(self, dataset: ImageDataset, views: ViewSet) -> None:
        self.dataset = dataset
        self.views = views

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Sample:
        if isinstance(self.dataset, ObjectDataset):
            sample = self.dataset.views_of(index)
        else:
            sample = self.dataset[index]
            sample = Sample(sample.images[:1], sample.latents, sample.label, sample.index)
        if self.views == "rot90":
            image = sample.images[0]
            images = torch.stack([torch.rot90(image, k, dims=(-2, -1)) for k in range(4)])
            latents = None if sample.latents is None else sample.latents[:1].expand(4, -1)
            sample = Sample(images, latents, sample.label, sample.index)
        return sample


def _collate(samples: list[Sample]) -> tuple[Tensor, Tensor | None, Tensor]:
    num_views = {s.images.shape[0] for s in samples}
    if len(num_views) != 1:
        raise ValueError(f"objects have different numbers of views {sorted(num_views)}")
    latents = None
    if samples[0].latents is not None:
        latents = torch.stack([s.latents for s in samples]).float()  # type: ignore[misc]
    labels = torch.tensor([s.label for s in samples], dtype=torch.long)
    return torch.stack([s.images for s in samples]), latents, labels


def normalise(images: Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> Tensor:
    """uint8 [.., C, H, W] → float, (x/255 − mean)/std (the datasets' normalisation)."""
    mean_t = torch.tensor(mean, device=images.device).view(-1, 1, 1)
    std_t = torch.tensor(std, device=images.device).view(-1, 1, 1)
    return (images.float() / 255.0 - mean_t) / std_t


def iterate_objects(
    dataset: ImageDataset,
    views: ViewSet = "all",
    batch_size: int = 64,
    num_workers: int = 0,
) -> Iterator[tuple[Tensor, Tensor | None, Tensor]]:
    """Yield (images [B, V, C, H, W] uint8, latents [B, V, L] | None, labels [B]) in order."""
    loader = DataLoader(
        _AllViews(dataset, views),
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=_collate,
    )
    yield from loader


@torch.no_grad()
def extract_features(
    method: Method,
    dataset: ImageDataset,
    key: FeatureKey,
    device: torch.device,
    batch_size: int = 64,
    num_workers: int = 0,
    progress: bool = True,
    representation: Representation | None = None,
) -> ViewFeatures:
    """Embed every view of every object with the frozen backbone in eval mode: the pooled
    output, or a computed ``representation`` of it (or of the pre-pool map)."""
    if key.bn_mode != "eval":
        raise ValueError(
            "cached features need eval-mode BatchNorm; train-mode BN runs the live path"
        )
    was_training = method.training
    method.eval()
    storage = torch.float16 if key.dtype == "float16" else torch.float32
    chunks: list[Tensor] = []
    latent_chunks: list[Tensor] = []
    label_chunks: list[Tensor] = []
    info = dataset.info
    bar = tqdm(
        total=len(dataset),
        desc=f"features {key.split}/{key.views}",
        unit="obj",
        disable=not progress,
    )
    try:
        for images, latents, labels in iterate_objects(dataset, key.views, batch_size, num_workers):
            b, v = images.shape[:2]
            flat = normalise(images.to(device).flatten(0, 1), info.mean, info.std)
            encoded = _embed(method, flat, representation)
            if encoded.dim() != 2 or encoded.shape[0] != b * v:
                raise ValueError(
                    f"method.encode returned {tuple(encoded.shape)}; expected [{b * v}, D]"
                )
            chunks.append(encoded.reshape(b, v, -1).to("cpu", storage))
            if latents is not None:
                latent_chunks.append(latents)
            label_chunks.append(labels)
            bar.update(b)
    finally:
        bar.close()
        method.train(was_training)
    if not chunks:
        raise ValueError(f"split {key.split!r} of {type(dataset).__name__} is empty")
    return ViewFeatures(
        features=torch.cat(chunks),
        latents=torch.cat(latent_chunks) if latent_chunks else None,
        labels=torch.cat(label_chunks),
        key=key,
    )


def _embed(method: Method, images: Tensor, representation: Representation | None) -> Tensor:
    if representation is None or representation.compute is None:
        return method.encode(images)
    if representation.source == "feature_map":
        return representation.compute(method.feature_map(images))
    if representation.source in STAGE_SOURCES:
        return representation.compute(method.stage_map(images, representation.source))
    return representation.compute(method.encode(images))


class FeatureCache:
    """A directory of ``<digest>.pt`` feature files; refuses files whose key differs."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def path(self, key: FeatureKey) -> Path:
        return self.directory / f"{key.split}-{key.views}-{key.digest()}.pt"

    def load(self, key: FeatureKey) -> ViewFeatures | None:
        path = self.path(key)
        return load_features(path, key) if path.exists() else None

    def save(self, features: ViewFeatures) -> Path:
        if features.key.bn_mode != "eval":
            raise ValueError("the feature cache refuses train-mode BatchNorm features")
        path = self.path(features.key)
        path.parent.mkdir(parents=True, exist_ok=True)
        # A name of its own per writer: two evaluations filling one cache never share it.
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
        torch.save(
            {
                "format": CACHE_FORMAT,
                "key": asdict(features.key),
                "features": features.features,
                "latents": features.latents,
                "labels": features.labels,
            },
            tmp,
        )
        tmp.replace(path)
        return path


def load_features(path: Path, expected: FeatureKey) -> ViewFeatures:
    """Load a cache file and check that it was written for ``expected``."""
    try:  # a truncated or corrupt file (or a malicious one: weights_only) is refused clearly
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise FeatureCacheMismatch(
            f"feature cache {path} is unreadable ({reason}). Delete the file (it is rebuilt) "
            "or point eval.cache.dir elsewhere."
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != CACHE_FORMAT:
        raise FeatureCacheMismatch(f"{path} is not a sslequi feature cache (format {CACHE_FORMAT})")
    stored = payload["key"]
    wanted = asdict(expected)
    if stored != wanted:
        differing = {
            name: (stored.get(name), value)
            for name, value in wanted.items()
            if stored.get(name) != value
        }
        raise FeatureCacheMismatch(
            f"feature cache {path} does not match its key; stored vs requested: {differing}. "
            "Delete the file or point eval.cache.dir elsewhere."
        )
    return ViewFeatures(
        features=payload["features"],
        latents=payload["latents"],
        labels=payload["labels"],
        key=expected,
    )


def get_features(
    method: Method,
    dataset: ImageDataset,
    key: FeatureKey,
    cache: FeatureCache | None,
    device: torch.device,
    batch_size: int = 64,
    num_workers: int = 0,
    progress: bool = True,
    representation: Representation | None = None,
) -> ViewFeatures:
    """The cached features for ``key`` if present, else extract (and store) them."""
    if cache is not None:
        hit = cache.load(key)
        if hit is not None:
            return hit
    features = extract_features(
        method, dataset, key, device, batch_size, num_workers, progress, representation
    )
    if cache is not None:
        cache.save(features)
    return features
