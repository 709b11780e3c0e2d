"""2D datasets from local folders: CIFAR-10/100, STL-10 and ImageFolder (ImageNet-100).

Each item is one uint8 image [1, 3, H, W] with its label (``distinct_views`` False): the
GPU augmentation pipeline makes the views, nothing is augmented in DataLoader workers.

Formats are the standard distributions, read by small readers rather than torchvision's
classes: torchvision's CIFAR and STL-10 readers verify the official archives' MD5 sums,
so they reject a re-packed or partial copy (such as the tiny copies the tests write in
the same format). These readers check the *structure* instead (every file present,
arrays of the right shapes and types, label counts matching), which catches a truncated
or misplaced download with a message naming the file. Nothing is downloaded at run time:
a missing root says which files to put where.

- CIFAR-10: ``ROOT/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}``
  (python pickles; ``data`` uint8 [N, 3072] channel-major, ``labels``). They are read by a
  restricted unpickler that resolves only numpy's array reconstruction, so a poisoned
  batch is refused instead of run.
- CIFAR-100: ``ROOT/cifar-100-python/{train, test, meta}`` (``fine_labels``).
- STL-10: ``ROOT/stl10_binary/{train,test}_{X,y}.bin``, ``unlabeled_X.bin`` (uint8
  [N, 3, 96, 96] column-major images; labels 1..10). Splits: ``train`` (the SSL split,
  ``train_split`` = train+unlabeled by default, as CARE; seq-JEPA uses ``unlabeled``),
  ``labeled`` (the 5k labelled train images, for probes), ``unlabeled``, ``test``/``val``;
  unlabelled images have label −1.
- ImageFolder: ``ROOT/<split dir>/<class>/<image>``; an optional class-list file (one
  WordNet id per line, e.g. solo-learn's ``imagenet100_classes.txt``) restricts the
  classes; labels are the rank of the class among the kept ones sorted. Images are
  decoded, resized (shorter side) and centre-cropped to ``resolution`` so that items
  collate; the augmentation pipeline crops from that. With ``full_image_crops: true``
  (the ImageNet recipes; methods.md §7.4) pretraining instead cuts each view's random
  resized crop from the **full decoded image** in the DataLoader worker — the one
  deliberate exception to "no augmentation in workers", since the images differ in size:
  the trainer hands the dataset the crops of its augmentation recipe
  (``sslequi.augment.worker_crops``); the worker decodes, samples each box (main views and
  E-SSL's rotated view) from the per-item seeded generator (exact resume), cuts and
  resizes it with the recipe's interpolation, and returns the uint8 views with the boxes
  in source pixels (``Sample.crop_boxes``); every other op runs batched on the device.
  ``decode`` re-reads the full image, so a recorded view can be replayed. Evaluation
  (and any split without crops set) keeps the centre crop.

Normalisation constants follow datasets.md §5.1.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torchvision.io import ImageReadMode, decode_image
from torchvision.transforms.v2 import functional as tvf

from sslequi.data.base import DatasetConfig, DatasetInfo, ImageDataset
from sslequi.data.check import DataError, quiet_codec
from sslequi.registry import register_dataset
from sslequi.types import Sample

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# decoded uint8 image [3, H, W] → (views [V, 3, s, s], rotated view or None, boxes [V (+1), 7])
FullImageCropFn = Callable[[Tensor], tuple[Tensor, Tensor | None, Tensor]]
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".JPEG", ".JPG", ".PNG"}


@dataclass
class FolderDatasetConfig(DatasetConfig):
    """Fields shared by the 2D datasets; ``mean``/``std`` default per dataset (§5.1)."""

    mean: tuple[float, float, float] = field(default_factory=lambda: IMAGENET_MEAN)
    std: tuple[float, float, float] = field(default_factory=lambda: IMAGENET_STD)

    def __post_init__(self) -> None:
        self.mean = tuple(float(v) for v in self.mean)  # type: ignore[assignment]
        self.std = tuple(float(v) for v in self.std)  # type: ignore[assignment]
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ValueError(f"{self.name}: mean/std need 3 values, std > 0")
        if self.resolution < 8:
            raise ValueError(f"{self.name}.resolution must be ≥ 8, got {self.resolution}")


@dataclass
class CIFAR10Config(FolderDatasetConfig):
    name: str = "cifar10"
    resolution: int = 32
    # E-SSL's constants (rdangovs/essl cifar10/main.py); the exact pixel std is ≈ 0.25
    mean: tuple[float, float, float] = field(default_factory=lambda: (0.4914, 0.4822, 0.4465))
    std: tuple[float, float, float] = field(default_factory=lambda: (0.2023, 0.1994, 0.2010))


@dataclass
class CIFAR100Config(FolderDatasetConfig):
    name: str = "cifar100"
    resolution: int = 32
    # common values (datasets.md §5.1 marks them unverified against CARE / seq-JEPA)
    mean: tuple[float, float, float] = field(default_factory=lambda: (0.5071, 0.4865, 0.4409))
    std: tuple[float, float, float] = field(default_factory=lambda: (0.2673, 0.2564, 0.2762))


@dataclass
class STL10Config(FolderDatasetConfig):
    name: str = "stl10"
    resolution: int = 96
    train_split: str = "train+unlabeled"  # what split 'train' means: CARE's default
    # seq-JEPA PLS constants
    mean: tuple[float, float, float] = field(default_factory=lambda: (0.4467, 0.4398, 0.4066))
    std: tuple[float, float, float] = field(default_factory=lambda: (0.2241, 0.2215, 0.2239))


@dataclass
class ImageFolderConfig(FolderDatasetConfig):
    """Images under ``root/<split dir>/<class>/``; ``class_list`` keeps only listed classes."""

    name: str = "imagefolder"
    resolution: int = 256
    class_list: str = ""  # file with one class folder name per line; empty = every folder
    train_dir: str = "train"
    val_dir: str = "val"
    num_classes: int = 0  # 0 = as found; otherwise checked
    # Pretraining cuts each view's random resized crop from the full decoded image in the
    # workers (module docstring); false: from the centre ``resolution`` square.
    full_image_crops: bool = False


@dataclass
class ImageNet100Config(ImageFolderConfig):
    """ImageNet-100 (CMC class list, datasets.md §5.1): an ImageFolder with a class list."""

    name: str = "imagenet100"
    num_classes: int = 100


class ArrayImages(ImageDataset):
    """Images held as a uint8 array [N, H, W, 3] (or memmap) with integer labels."""

    def __init__(
        self, config: FolderDatasetConfig, num_views: int, images: np.ndarray, labels: np.ndarray,
        num_classes: int, native_size: int,
    ) -> None:  # fmt: skip
        super().__init__(num_views)
        self.config = config
        self.images = images
        self.labels = labels.astype(np.int64)
        self.info = DatasetInfo(
            num_classes=num_classes,
            mean=config.mean,
            std=config.std,
            image_size=config.resolution,
            latent_dim=None,
            distinct_views=False,
        )
        self._resize = config.resolution != native_size

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, index: int) -> Sample:
        image = torch.from_numpy(np.ascontiguousarray(self.images[index])).permute(2, 0, 1)
        if self._resize:
            size = self.config.resolution
            image = tvf.resize(image, [size, size], antialias=True)
        return Sample(
            images=image.unsqueeze(0).contiguous(),
            latents=None,
            label=int(self.labels[index]),
            index=index,
        )


# --- CIFAR -------------------------------------------------------------------------------


def _locate(root: Path, folder: str, names: list[str], what: str, source: str) -> Path:
    """``root/folder`` or ``root`` itself, whichever holds ``names``; else a clear error."""
    for candidate in (root / folder, root):
        if all((candidate / n).is_file() for n in names):
            return candidate
    base = root / folder
    missing = [n for n in names if not (base / n).is_file()]
    raise DataError(
        f"{what} not found: expected {base}/{{{', '.join(names)}}} (missing: {', '.join(missing)}). "
        f"Put the files there: {source}, extracted into {root}. Nothing is downloaded at run time."
    )


# Everything a CIFAR python batch holds: a dict of byte strings, lists and int labels, and
# one uint8 ndarray (numpy's reconstructor, under its numpy 1 and numpy 2 module names;
# ``_codecs.encode`` is how protocol-2 pickles written by Python 3 store bytes).
CIFAR_PICKLE_GLOBALS = frozenset(
    {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }
)


class _CIFARUnpickler(pickle.Unpickler):
    """Resolves only ``CIFAR_PICKLE_GLOBALS``: a poisoned batch cannot name a callable."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in CIFAR_PICKLE_GLOBALS:
            raise pickle.UnpicklingError(
                f"refused {module}.{name}: a CIFAR batch holds only arrays, lists, bytes and "
                "numbers, so this file is not one (or was tampered with)"
            )
        return super().find_class(module, name)


def _unpickle(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            content = _CIFARUnpickler(handle, encoding="latin1").load()
    except (OSError, pickle.UnpicklingError, EOFError, ValueError, TypeError) as error:
        raise DataError(f"{path}: unreadable CIFAR batch ({error})") from None
    if not isinstance(content, dict):
        raise DataError(f"{path}: expected a pickled dict, got {type(content).__name__}")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in content.items()}


def _cifar_arrays(files: list[Path], label_key: str) -> tuple[np.ndarray, np.ndarray]:
    images, labels = [], []
    for path in files:
        batch = _unpickle(path)
        if "data" not in batch or label_key not in batch:
            raise DataError(f"{path}: missing 'data' or {label_key!r} (keys: {sorted(batch)})")
        data = np.asarray(batch["data"])
        batch_labels = np.asarray(batch[label_key])
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
            raise DataError(
                f"{path}: 'data' must be uint8 [N, 3072], got {data.dtype} {data.shape}"
            )
        if batch_labels.shape != (data.shape[0],):
            raise DataError(f"{path}: {data.shape[0]} images but {batch_labels.shape} labels")
        images.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        labels.append(batch_labels)
    return np.concatenate(images), np.concatenate(labels)


def _split_name(split: str, name: str, allowed: tuple[str, ...]) -> str:
    if split not in allowed:
        raise ValueError(f"{name}: unknown split {split!r}; expected one of {allowed}")
    return split


@register_dataset("cifar10", config=CIFAR10Config)
class CIFAR10(ArrayImages):
    """CIFAR-10, python version (50k train / 10k test; ``val`` is an alias of ``test``)."""

    folder, label_key, num_classes = "cifar-10-batches-py", "labels", 10
    source = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
    train_files = [f"data_batch_{i}" for i in range(1, 6)]
    test_files = ["test_batch"]
    meta_file = "batches.meta"

    def __init__(self, config: CIFAR10Config, split: str, num_views: int) -> None:
        split = _split_name(split, config.name, ("train", "val", "test"))
        root = Path(config.root).expanduser()
        names = self.train_files + self.test_files + [self.meta_file]
        base = _locate(root, self.folder, names, config.name, self.source)
        files = self.train_files if split == "train" else self.test_files
        images, labels = _cifar_arrays([base / f for f in files], self.label_key)
        if labels.min() < 0 or labels.max() >= self.num_classes:
            raise DataError(f"{base}: labels outside [0, {self.num_classes})")
        super().__init__(config, num_views, images, labels, self.num_classes, 32)


@register_dataset("cifar100", config=CIFAR100Config)
class CIFAR100(CIFAR10):
    """CIFAR-100, python version, fine labels."""

    folder, label_key, num_classes = "cifar-100-python", "fine_labels", 100
    source = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
    train_files = ["train"]
    test_files = ["test"]
    meta_file = "meta"


# --- STL-10 -------------------------------------------------------------------------------

STL_SIZE = 96
STL_SOURCE = "https://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz"


def _stl_images(path: Path) -> np.ndarray:
    """Memory-map an STL-10 image file as [N, 96, 96, 3] (stored column-major per channel)."""
    pixels = 3 * STL_SIZE * STL_SIZE
    size = path.stat().st_size
    if size == 0 or size % pixels:
        raise DataError(f"{path}: size {size} bytes is not a multiple of one 3×96×96 image")
    raw = np.memmap(path, dtype=np.uint8, mode="r", shape=(size // pixels, 3, STL_SIZE, STL_SIZE))
    return raw.transpose(0, 3, 2, 1)  # [N, C, W, H] on disk → [N, H, W, C]


def _stl_labels(path: Path, count: int, images_path: Path) -> np.ndarray:
    labels = np.fromfile(path, dtype=np.uint8).astype(np.int64) - 1
    if labels.shape[0] != count:
        raise DataError(f"{path}: {labels.shape[0]} labels for {count} images in {images_path}")
    if labels.min() < 0 or labels.max() > 9:
        raise DataError(f"{path}: labels must be 1..10")
    return labels


@register_dataset("stl10", config=STL10Config)
class STL10(ArrayImages):
    """STL-10 binary version (module docstring for the split names)."""

    def __init__(self, config: STL10Config, split: str, num_views: int) -> None:
        allowed = (
            "train",
            "labeled",
            "train_labeled",
            "unlabeled",
            "train+unlabeled",
            "test",
            "val",
        )
        split = _split_name(split, config.name, allowed)
        if split == "train":
            split = _split_name(config.train_split, f"{config.name}.train_split", allowed[1:5])
        parts = {
            "labeled": ["train"], "train_labeled": ["train"], "unlabeled": ["unlabeled"],
            "train+unlabeled": ["train", "unlabeled"], "test": ["test"], "val": ["test"],
        }[split]  # fmt: skip
        root = Path(config.root).expanduser()
        names = sorted(
            {f"{p}_X.bin" for p in parts} | {f"{p}_y.bin" for p in parts if p != "unlabeled"}
        )
        base = _locate(root, "stl10_binary", names, config.name, STL_SOURCE)
        images, labels = [], []
        for part in parts:
            x = _stl_images(base / f"{part}_X.bin")
            images.append(x)
            if part == "unlabeled":
                labels.append(np.full(x.shape[0], -1, dtype=np.int64))
            else:
                labels.append(
                    _stl_labels(base / f"{part}_y.bin", x.shape[0], base / f"{part}_X.bin")
                )
        stacked = images[0] if len(images) == 1 else _Concat(images)
        super().__init__(config, num_views, stacked, np.concatenate(labels), 10, STL_SIZE)  # type: ignore[arg-type]


class _Concat:
    """Index several memory-mapped arrays as one, without loading them."""

    def __init__(self, parts: list[np.ndarray]) -> None:
        self.parts = parts
        self.starts = np.cumsum([0] + [p.shape[0] for p in parts])

    def __getitem__(self, index: int) -> np.ndarray:
        part = int(np.searchsorted(self.starts, index, side="right")) - 1
        return self.parts[part][index - self.starts[part]]


# --- ImageFolder ---------------------------------------------------------------------------


def read_class_list(path: Path) -> list[str]:
    if not path.is_file():
        raise DataError(
            f"class list {path} not found (one class folder name per line; for ImageNet-100 the "
            "CMC list, e.g. solo-learn's solo/data/dataset_subset/imagenet100_classes.txt)"
        )
    names = [line.split()[0] for line in path.read_text().splitlines() if line.strip()]
    if len(set(names)) != len(names):
        raise DataError(f"class list {path} repeats a class")
    return names


@register_dataset("imagefolder", config=ImageFolderConfig)
class ImageFolder(ImageDataset):
    """``root/<train_dir|val_dir>/<class>/<image>`` (module docstring)."""

    def __init__(self, config: ImageFolderConfig, split: str, num_views: int) -> None:
        super().__init__(num_views)
        split = _split_name(split, config.name, ("train", "val", "test"))
        self.config = config
        root = Path(config.root).expanduser()
        directory = root / (config.train_dir if split == "train" else config.val_dir)
        if not directory.is_dir():
            raise DataError(
                f"{config.name}: {directory} not found: expected {root}/{{{config.train_dir},"
                f"{config.val_dir}}}/<class>/<images> (an ImageNet-style tree). Nothing is "
                "downloaded at run time."
            )
        found = sorted(p.name for p in directory.iterdir() if p.is_dir())
        if config.class_list:
            wanted = read_class_list(Path(config.class_list).expanduser())
            missing = sorted(set(wanted) - set(found))
            if missing:
                raise DataError(
                    f"{config.name}: {len(missing)} listed class(es) have no folder in {directory}: {missing[:5]}"
                )
            classes = sorted(wanted)
        else:
            classes = found
        if not classes:
            raise DataError(f"{config.name}: no class folders in {directory}")
        if config.num_classes and len(classes) != config.num_classes:
            raise DataError(
                f"{config.name}: expected {config.num_classes} classes, found {len(classes)} in {directory}"
            )
        self.classes = classes
        self.samples: list[tuple[Path, int]] = []
        for label, name in enumerate(classes):
            files = sorted(p for p in (directory / name).iterdir() if p.suffix in IMAGE_SUFFIXES)
            if not files:
                raise DataError(f"{config.name}: class folder {directory / name} holds no images")
            self.samples += [(p, label) for p in files]
        self.info = DatasetInfo(
            num_classes=len(classes), mean=config.mean, std=config.std, image_size=config.resolution,
            latent_dim=None, distinct_views=False,
        )  # fmt: skip
        # Set by the trainer (``full_image_crops``): decoded uint8 image → (views, rotated
        # view or None, boxes [V (+1), 7]); see ``sslequi.augment.worker_crops``.
        self.full_image_crops: FullImageCropFn | None = None

    def set_full_image_crops(self, crops: FullImageCropFn | None) -> None:
        """Cut the views from the full decoded image in ``__getitem__`` (module docstring)."""
        self.full_image_crops = crops

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> Sample:
        path, label = self.samples[index]
        if self.full_image_crops is not None:
            views, rotated, boxes = self.full_image_crops(self._decode(path))
            return Sample(views, None, label, index, rotated=rotated, crop_boxes=boxes)
        return Sample(images=self._load(path).unsqueeze(0), latents=None, label=label, index=index)

    def decode(self, index: int) -> Tensor:
        """The full decoded image of item ``index`` (uint8 [3, H, W]; replay of crops)."""
        return self._decode(self.samples[index][0])

    def _decode(self, path: Path) -> Tensor:
        try:
            data = torch.frombuffer(bytearray(path.read_bytes()), dtype=torch.uint8)
            with quiet_codec():
                return decode_image(data, mode=ImageReadMode.RGB)
        except (OSError, RuntimeError) as error:
            raise DataError(f"{path}: unreadable image ({str(error).splitlines()[0]})") from None

    def _load(self, path: Path) -> Tensor:
        image = self._decode(path)
        size = self.config.resolution
        image = tvf.resize(image, size, antialias=True)  # shorter side → size
        return tvf.center_crop(image, [size, size]).contiguous()


@register_dataset("imagenet100", config=ImageNet100Config)
class ImageNet100(ImageFolder):
    """ImageNet-100: ImageNet's folder layout restricted to the CMC class list."""

    def __init__(self, config: ImageNet100Config, split: str, num_views: int) -> None:
        if not config.class_list:
            raise DataError(
                "imagenet100: set dataset.class_list to the 100-class list (CMC; shipped as "
                "solo-learn's solo/data/dataset_subset/imagenet100_classes.txt), or point root at "
                "a pre-made 100-class tree with dataset.name=imagefolder"
            )
        super().__init__(config, split, num_views)
