"""Every bad-input case gives its named error, in ``check`` and when a dataset opens."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from sslequi.cli.data import main as data_main
from sslequi.data.check import DataError, check_root
from sslequi.data.threedie import ThreeDIEBench, ThreeDIEConfig


@pytest.fixture
def root(tiny_root: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "root"
    shutil.copytree(tiny_root, copy)
    return copy


def _first_object(root: Path) -> Path:
    return root / str(np.load(root / "train_images.npy")[0]).strip("/")


def _delete_image(root: Path) -> Path:
    path = _first_object(root) / "image_1.jpg"
    path.unlink()
    return path


def _delete_latent(root: Path) -> Path:
    path = _first_object(root) / "latent_2.npy"
    path.unlink()
    return path


def _wrong_latent_shape(root: Path) -> Path:
    path = _first_object(root) / "latent_0.npy"
    np.save(path, np.zeros(6))
    return path


def _wrong_latent_dtype(root: Path) -> Path:
    path = _first_object(root) / "latent_3.npy"
    np.save(path, np.zeros(7, dtype=np.float32))
    return path


def _truncated_jpeg(root: Path) -> Path:
    path = _first_object(root) / "image_0.jpg"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _not_a_jpeg(root: Path) -> Path:
    path = _first_object(root) / "image_2.jpg"
    path.write_bytes(b"this is not an image at all")
    return path


def _missing_folder(root: Path) -> Path:
    folder = _first_object(root)
    shutil.rmtree(folder)
    return folder


def _wrong_labels(root: Path) -> Path:
    path = root / "train_labels.npy"
    labels = np.load(path)
    np.save(path, labels[::-1].copy())
    return path


CASES: dict[str, tuple[Callable[[Path], Path], str]] = {
    "missing_image": (_delete_image, "missing_image"),
    "missing_latent": (_delete_latent, "missing_latent"),
    "latent_shape": (_wrong_latent_shape, "bad_latent"),
    "latent_dtype": (_wrong_latent_dtype, "bad_latent"),
    "truncated_jpeg": (_truncated_jpeg, "bad_jpeg"),
    "not_a_jpeg": (_not_a_jpeg, "bad_jpeg"),
    "missing_folder": (_missing_folder, "missing_folder"),
    "wrong_labels": (_wrong_labels, "label_mismatch"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_problem_is_named(root: Path, case: str, capsys: pytest.CaptureFixture[str]) -> None:
    corrupt, kind = CASES[case]
    path = corrupt(root)
    report = check_root(root)
    assert report.problems and {p.kind for p in report.problems} == {kind}, report.format()
    assert all(str(path) in p.path for p in report.problems)
    with pytest.raises(DataError) as error:
        ThreeDIEBench(ThreeDIEConfig(root=str(root)), "train", 2)
    assert kind in str(error.value) and str(path) in str(error.value)
    assert data_main(["check", str(root)]) == 1
    assert kind in capsys.readouterr().out


def test_missing_split_files_say_where_they_come_from(root: Path, tmp_path: Path) -> None:
    for name in ("train_images.npy", "train_labels.npy"):
        (root / name).unlink()
    report = check_root(root)
    assert {p.kind for p in report.problems} == {"missing_split_file"}
    assert "SIE" in report.problems[0].message
    with pytest.raises(DataError, match=r"train_images\.npy.*SIE repository's data/ folder"):
        ThreeDIEBench(ThreeDIEConfig(root=str(root)), "train", 2)
    # splits_dir points elsewhere: a folder holding the four files works
    splits = tmp_path / "sie_data"
    splits.mkdir()
    for name in ("val_images.npy", "val_labels.npy"):
        shutil.move(root / name, splits / name)
    shutil.copy(splits / "val_images.npy", splits / "train_images.npy")
    shutil.copy(splits / "val_labels.npy", splits / "train_labels.npy")
    dataset = ThreeDIEBench(ThreeDIEConfig(root=str(root), splits_dir=str(splits)), "train", 2)
    assert len(dataset) == 4


def test_bad_file_met_while_loading_names_it(root: Path) -> None:
    dataset = ThreeDIEBench(ThreeDIEConfig(root=str(root)), "train", 2)
    path = _truncated_jpeg(root)
    with pytest.raises(DataError, match=str(path)):
        dataset.views_of(0)


def test_missing_root_and_empty_root() -> None:
    with pytest.raises(DataError, match="does not exist"):
        ThreeDIEBench(ThreeDIEConfig(root="/nonexistent/3DIEBench"), "train", 2)
    with pytest.raises(DataError, match="render3d"):
        ThreeDIEBench(ThreeDIEConfig(root=""), "train", 2)


def test_check_cli_ok(tiny_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert data_main(["check", str(tiny_root)]) == 0
    out = capsys.readouterr().out
    assert "OK: no problems found" in out and "airplane" in out


def test_preview_and_stats_on_a_root_without_render_info(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A real-format root (no render_info.json): the sweep orders one object's views by angle."""
    (root / "render_info.json").unlink()
    out = root.parent / "sheet.png"
    assert (
        data_main(["preview", str(root), "--out", str(out), "--columns", "4", "--size", "24"]) == 0
    )
    assert out.read_bytes()[:4] == b"\x89PNG"
    assert data_main(["check", str(root), "--quick", "--stats"]) == 0
    assert "train mean" in capsys.readouterr().out
