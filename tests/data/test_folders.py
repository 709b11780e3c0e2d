"""2D readers on tiny copies written here in the real on-disk formats."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision.io import encode_jpeg, write_png

from sslequi.build import build_dataset as build_via_harness
from sslequi.data.base import DatasetConfig, ImageDataset
from sslequi.data.check import DataError, quiet_codec
from sslequi.data.folders import (
    CIFAR10Config,
    CIFAR100Config,
    ImageFolderConfig,
    ImageNet100Config,
    STL10Config,
)
from sslequi.registry import DATASETS
from sslequi.types import collate_samples


def build_dataset(config: DatasetConfig, split: str, num_views: int) -> ImageDataset:
    """The registered class directly, so its own ``DataError`` reaches the test."""
    return DATASETS.get(config.name)(config, split, num_views)


def _cifar_batch(
    path: Path, n: int, label_key: bytes, classes: int, seed: int
) -> tuple[np.ndarray, list[int]]:
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    labels = [int(v) for v in rng.integers(0, classes, n)]
    with path.open("wb") as handle:  # byte-string keys, like the official py2 pickles
        pickle.dump({b"batch_label": b"x", b"data": data, label_key: labels}, handle)
    return data, labels


def _write_cifar10(root: Path) -> dict[str, tuple[np.ndarray, list[int]]]:
    base = root / "cifar-10-batches-py"
    base.mkdir(parents=True)
    written = {}
    for i in range(1, 6):
        written[f"data_batch_{i}"] = _cifar_batch(base / f"data_batch_{i}", 3, b"labels", 10, i)
    written["test_batch"] = _cifar_batch(base / "test_batch", 4, b"labels", 10, 9)
    with (base / "batches.meta").open("wb") as handle:
        pickle.dump({b"label_names": [b"c"] * 10}, handle)
    return written


def test_cifar10_reads_the_python_format(tmp_path: Path) -> None:
    written = _write_cifar10(tmp_path)
    train = build_via_harness(CIFAR10Config(root=str(tmp_path)), "train", 2)
    assert len(train) == 15 and train.info.num_classes == 10 and not train.info.distinct_views
    assert train.info.mean == (0.4914, 0.4822, 0.4465) and train.info.latent_dim is None
    sample = train[4]  # batch 2, row 1
    data, labels = written["data_batch_2"]
    assert sample.images.shape == (1, 3, 32, 32) and sample.images.dtype == torch.uint8
    assert torch.equal(sample.images[0], torch.from_numpy(data[1].reshape(3, 32, 32)))
    assert sample.label == labels[1] and sample.latents is None
    test = build_dataset(CIFAR10Config(root=str(tmp_path / "cifar-10-batches-py")), "test", 2)
    assert len(test) == 4
    batch = collate_samples([train[i] for i in range(3)])
    assert batch.images.shape == (3, 1, 3, 32, 32) and batch.latents is None


def test_cifar_structure_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"cifar-10-python\.tar\.gz.*Nothing is downloaded"):
        build_dataset(CIFAR10Config(root=str(tmp_path)), "train", 2)
    _write_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").write_bytes(b"garbage")
    with pytest.raises(DataError, match="data_batch_3"):
        build_dataset(CIFAR10Config(root=str(tmp_path)), "train", 2)
    with (tmp_path / "cifar-10-batches-py" / "data_batch_3").open("wb") as handle:
        pickle.dump({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, handle)
    with pytest.raises(DataError, match=r"uint8 \[N, 3072\]"):
        build_dataset(CIFAR10Config(root=str(tmp_path)), "train", 2)


class _Payload:
    """Unpickling this calls ``shutil.copyfile(src, dst)``: a poisoned batch's payload."""

    def __init__(self, src: Path, dst: Path) -> None:
        self.src, self.dst = src, dst

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return shutil.copyfile, (str(self.src), str(self.dst))


def test_a_poisoned_cifar_batch_is_refused_not_run(tmp_path: Path) -> None:
    """Issue 16, item 14: only what the CIFAR format needs is resolved while unpickling."""
    _write_cifar10(tmp_path)
    secret, stolen = tmp_path / "secret.txt", tmp_path / "stolen.txt"
    secret.write_text("credentials")
    batch = tmp_path / "cifar-10-batches-py" / "data_batch_2"
    with batch.open("wb") as handle:
        data = np.zeros((2, 3072), np.uint8)
        pickle.dump({b"data": data, b"labels": [0, 1], b"x": _Payload(secret, stolen)}, handle)
    with pytest.raises(DataError, match=r"data_batch_2.*refused shutil\.copyfile"):
        build_dataset(CIFAR10Config(root=str(tmp_path)), "train", 2)
    assert not stolen.exists()


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_cifar_batches_of_every_pickle_protocol_still_load(tmp_path: Path, protocol: int) -> None:
    """The official files are protocol-2 pickles from Python 2 and numpy 1
    (``numpy.core.multiarray._reconstruct``); re-packed copies may use any protocol."""
    written = _write_cifar10(tmp_path)
    batch = tmp_path / "cifar-10-batches-py" / "data_batch_1"
    data, labels = written["data_batch_1"]
    blob = pickle.dumps({b"data": data, b"labels": labels}, protocol=protocol)
    if protocol == 2:  # name the reconstructor as numpy 1 did
        blob = blob.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
        assert b"numpy.core.multiarray\n_reconstruct" in blob
    batch.write_bytes(blob)
    train = build_dataset(CIFAR10Config(root=str(tmp_path)), "train", 2)
    assert torch.equal(train[0].images[0], torch.from_numpy(data[0].reshape(3, 32, 32)))
    assert [train[i].label for i in range(3)] == labels


def test_cifar100_fine_labels_and_resize(tmp_path: Path) -> None:
    base = tmp_path / "cifar-100-python"
    base.mkdir()
    _, labels = _cifar_batch(base / "train", 5, b"fine_labels", 100, 0)
    _cifar_batch(base / "test", 2, b"fine_labels", 100, 1)
    (base / "meta").write_bytes(pickle.dumps({b"fine_label_names": []}))
    train = build_dataset(CIFAR100Config(root=str(tmp_path), resolution=16), "train", 2)
    assert train.info.num_classes == 100 and [train[i].label for i in range(5)] == labels
    assert train[0].images.shape == (1, 3, 16, 16)


def _write_stl(root: Path) -> dict[str, np.ndarray]:
    base = root / "stl10_binary"
    base.mkdir(parents=True)
    rng = np.random.default_rng(0)
    images = {}
    for part, n in (("train", 4), ("test", 3), ("unlabeled", 5)):
        hwc = rng.integers(0, 256, (n, 96, 96, 3), dtype=np.uint8)
        images[part] = hwc
        hwc.transpose(0, 3, 2, 1).tofile(base / f"{part}_X.bin")  # column-major on disk
        if part != "unlabeled":
            (rng.integers(1, 11, n).astype(np.uint8)).tofile(base / f"{part}_y.bin")
    return images


def test_stl10_splits_and_layout(tmp_path: Path) -> None:
    images = _write_stl(tmp_path)
    labels = np.fromfile(tmp_path / "stl10_binary" / "train_y.bin", dtype=np.uint8)
    config = STL10Config(root=str(tmp_path))
    pretrain = build_dataset(config, "train", 2)
    assert len(pretrain) == 9
    assert pretrain[6].label == -1
    assert torch.equal(
        pretrain[5].images[0], torch.from_numpy(images["unlabeled"][1]).permute(2, 0, 1)
    )
    labeled = build_dataset(config, "labeled", 2)
    assert len(labeled) == 4 and labeled[2].label == int(labels[2]) - 1
    assert torch.equal(labeled[2].images[0], torch.from_numpy(images["train"][2]).permute(2, 0, 1))
    assert len(build_dataset(config, "test", 2)) == 3
    assert (
        len(build_dataset(STL10Config(root=str(tmp_path), train_split="unlabeled"), "train", 2))
        == 5
    )
    (tmp_path / "stl10_binary" / "test_y.bin").write_bytes(b"\x01")
    with pytest.raises(DataError, match="test_y.bin: 1 labels for 3 images"):
        build_dataset(config, "test", 2)


def _write_folder(root: Path, classes: list[str], per_class: int) -> None:
    rng = torch.Generator().manual_seed(0)
    for split in ("train", "val"):
        for i, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True)
            for j in range(per_class):
                image = torch.randint(0, 256, (3, 20 + i, 30), dtype=torch.uint8, generator=rng)
                with quiet_codec():
                    if j % 2:
                        write_png(image, str(folder / f"img_{j}.png"))
                    else:
                        (folder / f"img_{j}.JPEG").write_bytes(encode_jpeg(image).numpy().tobytes())


def test_image_folder_and_class_list(tmp_path: Path) -> None:
    classes = ["n01", "n02", "n03", "n04"]
    _write_folder(tmp_path, classes, 3)
    data = build_dataset(ImageFolderConfig(root=str(tmp_path), resolution=16), "train", 2)
    assert len(data) == 12 and data.info.num_classes == 4
    sample = data[4]
    assert sample.images.shape == (1, 3, 16, 16) and sample.label == 1
    class_list = tmp_path / "imagenet100_classes.txt"
    class_list.write_text("n03\nn01\n")
    config = ImageNet100Config(
        root=str(tmp_path), resolution=16, class_list=str(class_list), num_classes=2
    )
    subset = build_dataset(config, "val", 2)
    assert len(subset) == 6 and [subset[i].label for i in (0, 3)] == [0, 1]
    with pytest.raises(DataError, match="class_list"):
        build_dataset(ImageNet100Config(root=str(tmp_path)), "train", 2)
    every = tmp_path / "all.txt"
    every.write_text("\n".join(classes))
    with pytest.raises(DataError, match="expected 100 classes"):
        build_dataset(ImageNet100Config(root=str(tmp_path), class_list=str(every)), "train", 2)
    class_list.write_text("n09\n")
    with pytest.raises(DataError, match="no folder"):
        build_dataset(ImageFolderConfig(root=str(tmp_path), class_list=str(class_list)), "train", 2)
    with pytest.raises(DataError, match="not found"):
        build_dataset(ImageFolderConfig(root=str(tmp_path / "nowhere")), "train", 2)
    (tmp_path / "train" / "n02" / "img_0.JPEG").write_bytes(b"broken")
    with pytest.raises(DataError, match="img_0.JPEG"):
        data[3]
