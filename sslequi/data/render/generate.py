"""Write a procedurally rendered benchmark in the exact 3DIEBench layout (datasets.md §6.1).

```
ROOT/<synset>/<object_id>/image_<v>.jpg   RGB JPEG (quality 95)
ROOT/<synset>/<object_id>/latent_<v>.npy  float64 (7,) or (10,) for -T
ROOT/{train,val}_images.npy               '<U43' '/<synset>/<object_id>/'
ROOT/{train,val}_labels.npy               int64, rank of the synset among those rendered
ROOT/all_latents_{train,val}.npy          float64 [objects · views, L] (split order × view)
ROOT/render_info.json                     how the set was made (preset, seed, classes, ...)
```

Differences from the real files, by design: images are true RGB (the real JPEGs are
probably R/B-swapped, datasets.md §1.2; ``channel_order="bgr"`` mimics that), and the
presets use fewer than 50 views. The OOD variant renders only the val objects (the same
objects as the standard variant with the same seed), with views numbered from 2 as in
seq-JEPA's generator; its train split files are empty.

Determinism: every object's geometry, palette and latents come from numpy generators
seeded by (seed, synset, object index), and each object is traced single-threaded, so
the same seed and preset give bit-identical files on the CPU whatever ``workers`` is.
"""

from __future__ import annotations

import colorsys
import hashlib
import json
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field, replace
from multiprocessing import get_all_start_methods, get_context
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torchvision.io import encode_jpeg
from tqdm import tqdm

from sslequi.data.check import quiet_codec
from sslequi.data.render.scene import LATENT_DIM, Variant, ViewBatch, sample_latents
from sslequi.data.render.sdf import CompiledShape
from sslequi.data.render.shapes import CLASSES, ObjectClass, build_object, class_by_name
from sslequi.data.render.tracer import TraceSettings, render_views

SMALL_CLASSES = (
    "airplane", "car", "chair", "guitar", "lamp", "laptop",
    "mug", "pistol", "rifle", "sofa", "table", "vessel",
)  # fmt: skip
TINY_CLASSES = ("airplane", "chair", "mug", "table")
OOD_FIRST_VIEW = 2  # seq-JEPA's OOD generator numbers its views 2..5


@dataclass(frozen=True)
class Preset:
    classes: tuple[str, ...]
    objects_per_class: int
    views_per_object: int
    resolution: int


PRESETS: dict[str, Preset] = {
    "tiny": Preset(TINY_CLASSES, 3, 4, 32),
    "small": Preset(SMALL_CLASSES, 40, 12, 64),
    "full": Preset(tuple(c.name for c in CLASSES), 200, 50, 256),
}


@dataclass(frozen=True)
class RenderConfig:
    """What to render and where; ``from_preset`` fills the sizes."""

    out: Path
    classes: tuple[str, ...] = TINY_CLASSES
    objects_per_class: int = 3
    views_per_object: int = 4
    resolution: int = 32
    variant: Variant = "standard"
    seed: int = 0
    val_fraction: float = 0.2
    workers: int = 1
    device: str = "cpu"
    channel_order: Literal["rgb", "bgr"] = "rgb"
    jpeg_quality: int = 95
    trace: TraceSettings = field(default_factory=TraceSettings)
    progress: bool = True
    start_method: Literal["auto", "fork", "spawn", "forkserver"] = "auto"

    @classmethod
    def from_preset(cls, name: str, out: Path | str, **overrides: object) -> RenderConfig:
        if name not in PRESETS:
            raise KeyError(f"unknown preset {name!r}; available: {sorted(PRESETS)}")
        preset = PRESETS[name]
        base = cls(
            out=Path(out),
            classes=preset.classes,
            objects_per_class=preset.objects_per_class,
            views_per_object=preset.views_per_object,
            resolution=preset.resolution,
        )
        return replace(base, **{k: v for k, v in overrides.items() if v is not None})  # type: ignore[arg-type]

    def validate(self) -> None:
        for name in self.classes:
            class_by_name(name)
        if len(set(self.classes)) != len(self.classes):
            raise ValueError(f"classes listed twice: {self.classes}")
        if self.variant not in LATENT_DIM:
            raise ValueError(f"variant must be one of {sorted(LATENT_DIM)}, got {self.variant!r}")
        if self.objects_per_class < 1 or self.views_per_object < 1:
            raise ValueError("objects_per_class and views_per_object must be ≥ 1")
        if self.resolution < 8:
            raise ValueError(f"resolution must be ≥ 8, got {self.resolution}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction}")


@dataclass(frozen=True)
class ObjectJob:
    """One object to render: its identity, split and view numbering."""

    synset: str
    class_name: str
    object_index: int
    object_id: str
    split: Literal["train", "val"]
    label: int

    @property
    def path(self) -> str:
        return f"/{self.synset}/{self.object_id}/"


def object_id(seed: int, synset: str, index: int) -> str:
    """A ShapeNet-like id: 32 lowercase hex characters, stable across variants."""
    return hashlib.md5(f"sslequi-render3d/{seed}/{synset}/{index}".encode()).hexdigest()


def plan_objects(config: RenderConfig) -> list[ObjectJob]:
    """Every object of the set, in synset order then index; ≈ val_fraction per class in val."""
    synsets = sorted(class_by_name(n).synset for n in config.classes)
    jobs = []
    for label, synset in enumerate(synsets):
        cls = next(c for c in CLASSES if c.synset == synset)
        n = config.objects_per_class
        n_val = 0 if n < 2 or config.val_fraction == 0 else max(1, round(n * config.val_fraction))
        for i in range(n):
            split: Literal["train", "val"] = "val" if i >= n - n_val else "train"
            jobs.append(
                ObjectJob(synset, cls.name, i, object_id(config.seed, synset, i), split, label)
            )
    if config.variant == "OOD":
        jobs = [j for j in jobs if j.split == "val"]
    return jobs


def _palette(rng: np.random.Generator) -> np.ndarray:
    """Three albedos per object: main, secondary, dark trim."""
    hue = rng.uniform(0, 1)
    main = colorsys.hsv_to_rgb(hue, rng.uniform(0.1, 0.6), rng.uniform(0.6, 0.92))
    second = colorsys.hsv_to_rgb(
        (hue + rng.uniform(0.2, 0.8)) % 1, rng.uniform(0.1, 0.5), rng.uniform(0.4, 0.8)
    )
    grey = rng.uniform(0.12, 0.28)
    return np.array([main, second, (grey, grey, grey)], dtype=np.float64)


def object_geometry(cls: ObjectClass, seed: int, index: int) -> tuple[CompiledShape, torch.Tensor]:
    """The object's shape and palette (seeded by seed, synset and index only)."""
    rng = np.random.default_rng([seed, int(cls.synset), index, 0])
    prims = build_object(cls, rng)
    palette = torch.tensor(_palette(rng), dtype=torch.float32)
    return CompiledShape(prims), palette


def view_latents(config: RenderConfig, job: ObjectJob) -> np.ndarray:
    variant_key = {"standard": 0, "T": 1, "OOD": 2}[config.variant]
    rng = np.random.default_rng([config.seed, int(job.synset), job.object_index, 1, variant_key])
    return sample_latents(rng, config.views_per_object, config.variant)


def view_numbers(config: RenderConfig) -> range:
    first = OOD_FIRST_VIEW if config.variant == "OOD" else 0
    return range(first, first + config.views_per_object)


def render_object(config: RenderConfig, job: ObjectJob) -> np.ndarray:
    """Render and write one object's views; returns its latents [V, L]."""
    cls = class_by_name(job.class_name)
    shape, palette = object_geometry(cls, config.seed, job.object_index)
    device = torch.device(config.device)
    if device.type != "cpu":
        shape = CompiledShape(shape.prims, device)
        palette = palette.to(device)
    latents = view_latents(config, job)
    images = render_views(
        shape, palette, ViewBatch.from_latents(latents, device), config.resolution, config.trace
    ).cpu()
    if config.channel_order == "bgr":
        images = images.flip(1)
    folder = config.out / job.synset / job.object_id
    folder.mkdir(parents=True, exist_ok=True)
    for image, latent, v in zip(images, latents, view_numbers(config), strict=True):
        with quiet_codec():
            data = encode_jpeg(image, quality=config.jpeg_quality)
        (folder / f"image_{v}.jpg").write_bytes(data.numpy().tobytes())
        np.save(folder / f"latent_{v}.npy", latent)
    return latents


def _render_in_worker(config: RenderConfig, job: ObjectJob) -> tuple[str, np.ndarray]:
    return job.path, render_object(config, job)


def _init_worker() -> None:
    torch.set_num_threads(1)


def _start_method(config: RenderConfig) -> str:
    """'fork' for CPU rendering where available: workers inherit the imported modules and
    start at once (a spawned worker re-imports torch, seconds each). They trace with one
    thread and never enter an OpenMP region, which is what makes forking a process that
    has used OpenMP safe. CUDA cannot be forked: 'spawn' there and elsewhere."""
    if config.start_method != "auto":
        return config.start_method
    if config.device == "cpu" and "fork" in get_all_start_methods():
        return "fork"
    return "spawn"


@dataclass(frozen=True)
class RenderSummary:
    out: Path
    num_objects: int
    num_images: int


def generate(config: RenderConfig) -> RenderSummary:
    """Render the whole set (in parallel with ``config.workers`` processes) and write splits."""
    config.validate()
    config.out.mkdir(parents=True, exist_ok=True)
    jobs = plan_objects(config)
    latents: dict[str, np.ndarray] = {}
    bar = tqdm(total=len(jobs) * config.views_per_object, unit="img", desc="render3d",
               disable=not config.progress)  # fmt: skip
    if config.workers <= 1:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # single-threaded tracing keeps the output bit-identical
        try:
            for job in jobs:
                latents[job.path] = render_object(config, job)
                bar.update(config.views_per_object)
        finally:
            torch.set_num_threads(threads)
    else:
        context = get_context(_start_method(config))
        with ProcessPoolExecutor(
            config.workers, mp_context=context, initializer=_init_worker
        ) as pool:
            futures = [pool.submit(_render_in_worker, config, job) for job in jobs]
            for future in as_completed(futures):
                path, value = future.result()
                latents[path] = value
                bar.update(config.views_per_object)
    bar.close()
    _write_splits(config, jobs, latents)
    return RenderSummary(config.out, len(jobs), len(jobs) * config.views_per_object)


def _write_splits(
    config: RenderConfig, jobs: list[ObjectJob], latents: dict[str, np.ndarray]
) -> None:
    dim = LATENT_DIM[config.variant]
    for split in ("train", "val"):
        chosen = [j for j in jobs if j.split == split]
        np.save(
            config.out / f"{split}_images.npy", np.array([j.path for j in chosen], dtype="<U43")
        )
        np.save(
            config.out / f"{split}_labels.npy", np.array([j.label for j in chosen], dtype=np.int64)
        )
        rows = [latents[j.path] for j in chosen]
        stacked = np.concatenate(rows) if rows else np.zeros((0, dim), dtype=np.float64)
        np.save(config.out / f"all_latents_{split}.npy", stacked)
    info = {
        "generator": "sslequi-data render3d",
        "variant": config.variant,
        "seed": config.seed,
        "resolution": config.resolution,
        "classes": {
            class_by_name(n).synset: n
            for n in sorted(config.classes, key=lambda n: class_by_name(n).synset)
        },
        "objects_per_class": config.objects_per_class,
        "views": list(view_numbers(config)),
        "latent_dim": dim,
        "channel_order": config.channel_order,
        "trace": asdict(config.trace),
        "device": config.device,
    }
    (config.out / "render_info.json").write_text(json.dumps(info, indent=2) + "\n")


def default_workers() -> int:
    return max(1, min(8, os.cpu_count() or 1))
