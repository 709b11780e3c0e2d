"""What data a run trained on, independent of where it is mounted.

``data_fingerprint(dataset, config)`` is a small JSON-able dict: the dataset name, the
number of items, the resolution, the classes and latent size, and a ``content`` digest:

- 3DIEBench-format roots: a SHA-256 of the split files (``{train,val}_{images,labels}.npy``)
  and the view counts of 16 evenly spaced objects;
- array datasets (CIFAR, STL-10): a SHA-256 of the labels and of 64 evenly spaced images;
- image folders: a SHA-256 of the relative file list and labels;
- generated datasets (``synthetic``) and any other: a SHA-256 of the dataset config without
  its ``root`` (the config alone defines the data).

A dataset may define ``fingerprint() -> dict`` to provide its own ``content``. Resume
compares fingerprints, never paths: the same data at another root resumes (the new root is
recorded beside the original), different data is refused (``check_same_data``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from sslequi.config import ConfigError
from sslequi.data.base import ImageDataset

VIEW_SAMPLE = 16
IMAGE_SAMPLE = 64
SPLIT_NAMES = ("train", "val")


def _evenly_spaced(n: int, count: int) -> list[int]:
    if n <= count:
        return list(range(n))
    return sorted({round(i * (n - 1) / (count - 1)) for i in range(count)})


def _config_digest(config: Any) -> str:
    data = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(config)
    data.pop("root", None)
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def _content(dataset: ImageDataset, config: Any) -> dict[str, Any]:
    own = getattr(dataset, "fingerprint", None)
    if callable(own):
        return dict(own())
    splits_dir = getattr(dataset, "splits_dir", None)
    if isinstance(splits_dir, Path) and hasattr(dataset, "view_numbers"):
        digest = hashlib.sha256()
        for split in SPLIT_NAMES:
            for kind in ("images", "labels"):
                path = splits_dir / f"{split}_{kind}.npy"
                if path.is_file():
                    digest.update(path.name.encode() + b"\0" + path.read_bytes())
        sample = _evenly_spaced(len(dataset), VIEW_SAMPLE)
        views = [len(dataset.view_numbers(i)) for i in sample]  # type: ignore[attr-defined]
        return {"kind": "split_files", "sha256": digest.hexdigest(), "views_in_sample": views}
    images, labels = getattr(dataset, "images", None), getattr(dataset, "labels", None)
    if images is not None and isinstance(labels, np.ndarray):
        digest = hashlib.sha256(np.ascontiguousarray(labels).tobytes())
        for i in _evenly_spaced(len(labels), IMAGE_SAMPLE):
            digest.update(np.ascontiguousarray(images[i]).tobytes())
        return {"kind": "arrays", "sha256": digest.hexdigest()}
    samples = getattr(dataset, "samples", None)
    if isinstance(samples, list) and samples and isinstance(samples[0][0], Path):
        base = Path(getattr(config, "root", "") or "/").expanduser()
        digest = hashlib.sha256()
        for path, label in samples:
            try:
                name = str(path.relative_to(base))
            except ValueError:
                name = path.name
            digest.update(f"{name}\t{label}\n".encode())
        return {"kind": "file_list", "sha256": digest.hexdigest()}
    return {"kind": "config", "sha256": _config_digest(config)}


def data_fingerprint(dataset: ImageDataset, config: Any) -> dict[str, Any]:
    """The fingerprint of ``dataset`` (module docstring); cheap: no image is decoded."""
    info = dataset.info
    return {
        "dataset": getattr(config, "name", type(dataset).__name__),
        "items": len(dataset),
        "resolution": info.image_size,
        "num_classes": info.num_classes,
        "latent_dim": info.latent_dim,
        "content": _content(dataset, config),
    }


def fingerprint_differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """``key: old → new`` for each differing field."""
    return [
        f"{key}: {old.get(key, '<absent>')!r} → {new.get(key, '<absent>')!r}"
        for key in sorted(set(old) | set(new))
        if old.get(key) != new.get(key)
    ]


def check_same_data(
    stored: Mapping[str, Any] | None,
    stored_root: str,
    fingerprint: Mapping[str, Any],
    root: str,
    checkpoint: Path,
) -> None:
    """Refuse to continue ``checkpoint`` on data other than the data it was trained on.

    ``stored`` is the checkpoint's fingerprint (None for checkpoints written before
    fingerprints existed: then only the same root is accepted).
    """
    if stored is None:
        if stored_root != root:
            raise ConfigError(
                f"train.resume: the checkpoint {checkpoint} records no data fingerprint (it "
                f"predates them), so data at dataset.root={root!r} cannot be checked against "
                f"the data it was trained on at {stored_root!r}. Use the original root, "
                "train.resume=never to start over, or another run_slug/experiment."
            )
        return
    differences = fingerprint_differences(stored, fingerprint)
    if differences:
        listed = "\n  - ".join(differences)
        raise ConfigError(
            f"train.resume: the checkpoint {checkpoint} was trained on other data than "
            f"dataset.root={root!r} holds.\n"
            f"  trained on (root {stored_root!r}): {json.dumps(dict(stored), sort_keys=True)}\n"
            f"  found now  (root {root!r}): {json.dumps(dict(fingerprint), sort_keys=True)}\n"
            f"  differing:\n  - {listed}\n"
            "Point dataset.root at the original data, use train.resume=never to start over, "
            "or another run_slug/experiment for a new run."
        )
