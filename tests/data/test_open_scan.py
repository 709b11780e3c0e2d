"""Issue 16, items 10 and 11: every object of a split is checked when a dataset opens.

Policy (docs/reliability.md, "Inputs and trust"): opening a 3DIEBench-format dataset scans
every object of the split (folders, view pairs, every latent's dtype, shape and finiteness,
every JPEG's markers and headers) before any compute; a clean scan is cached by the
split's listing. What only a full decode sees fails when the item is loaded, as one clean
``DataError`` naming the file, with the run marked failed and the CLI exiting 2.

The root here has 16 train objects, so object 1 is one the old 8-object sample skipped.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from torch.utils.data import DataLoader, Dataset

from sslequi.cli.data import main as data_main
from sslequi.data import check
from sslequi.data.check import DataError
from sslequi.data.threedie import ThreeDIEBench, ThreeDIEConfig
from tests.data.conftest import render_tiny


@pytest.fixture(scope="session")
def wide_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 classes × 5 objects × 2 views at 16 px: 16 train objects, 4 val."""
    out = tmp_path_factory.mktemp("wide") / "root"
    return render_tiny(out, objects_per_class=5, views_per_object=2, resolution=16)


@pytest.fixture
def root(wide_root: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "root"
    shutil.copytree(wide_root, copy)
    return copy


def _object(root: Path, position: int = 1) -> Path:
    return root / str(np.load(root / "train_images.npy")[position]).strip("/")


def _missing_latent(root: Path) -> Path:
    path = _object(root) / "latent_1.npy"
    path.unlink()
    return path


def _latent_shape(root: Path) -> Path:
    path = _object(root) / "latent_0.npy"
    np.save(path, np.zeros(6))
    return path


def _nan_latent(root: Path) -> Path:
    path = _object(root) / "latent_1.npy"
    value = np.load(path)
    value[3] = np.nan
    np.save(path, value)
    return path


def _inf_latent(root: Path) -> Path:
    path = _object(root) / "latent_0.npy"
    value = np.load(path)
    value[0] = np.inf
    np.save(path, value)
    return path


def _truncated_jpeg(root: Path) -> Path:
    path = _object(root) / "image_0.jpg"
    path.write_bytes(path.read_bytes()[:-40])
    return path


def _corrupt_header(root: Path) -> Path:
    """Markers intact, but the frame header says the image is 0 pixels wide."""
    path = _object(root) / "image_1.jpg"
    data = bytearray(path.read_bytes())
    sof = data.index(b"\xff\xc0")
    data[sof + 7 : sof + 9] = b"\x00\x00"
    path.write_bytes(bytes(data))
    return path


def _missing_object(root: Path) -> Path:
    """A split entry naming an object whose folder is elsewhere (not under the root)."""
    folder = _object(root)
    shutil.move(folder, root.parent / "moved_away")
    return folder


CASES: dict[str, tuple[Callable[[Path], Path], str]] = {
    "missing_latent": (_missing_latent, "missing_latent"),
    "latent_shape": (_latent_shape, "bad_latent"),
    "nan_latent": (_nan_latent, "non-finite"),
    "inf_latent": (_inf_latent, "non-finite"),
    "truncated_jpeg": (_truncated_jpeg, "truncated JPEG"),
    "corrupt_header": (_corrupt_header, "corrupt JPEG header"),
    "missing_object": (_missing_object, "missing_folder"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_bad_file_anywhere_in_the_split_fails_at_open(root: Path, case: str) -> None:
    corrupt, what = CASES[case]
    path = corrupt(root)
    with pytest.raises(DataError) as error:
        ThreeDIEBench(ThreeDIEConfig(root=str(root), resolution=16), "train", 2)
    assert what in str(error.value) and str(path) in str(error.value)


def test_too_few_views_anywhere_fails_at_open(root: Path) -> None:
    folder = _object(root)
    (folder / "image_1.jpg").unlink()
    (folder / "latent_1.npy").unlink()
    with pytest.raises(DataError, match=f"2 distinct views.*{folder}.* has 1"):
        ThreeDIEBench(ThreeDIEConfig(root=str(root), resolution=16), "train", 2)


@pytest.mark.parametrize("case", ["nan_latent", "inf_latent"])
def test_check_names_non_finite_latents(
    root: Path, case: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = CASES[case][0](root)
    report = check.check_root(root)
    assert [(p.kind, p.path) for p in report.problems] == [("bad_latent", str(path))]
    assert "non-finite" in report.problems[0].message
    assert data_main(["check", str(root), "--quick"]) == 1
    assert "non-finite" in capsys.readouterr().out


def test_a_clean_scan_is_cached_by_the_listing(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = ThreeDIEConfig(root=str(root), resolution=16)
    first = ThreeDIEBench(config, "train", 2)
    assert first.scan is not None and not first.scan.cached
    assert (first.scan.objects, first.scan.views, first.scan.min_views) == (16, 32, 2)

    # Reopening an unchanged root (a new process: the in-memory memo is empty) reads no
    # file: the cached result stands on the listing alone.
    monkeypatch.setattr(check, "_SCAN_MEMO", {})

    def no_reads(*args: object) -> None:
        raise AssertionError("a cached scan read a file")

    with monkeypatch.context() as patched:
        patched.setattr(check, "read_latent", no_reads)
        patched.setattr(check, "jpeg_file_problem", no_reads)
        again = ThreeDIEBench(config, "train", 2)
    assert again.scan is not None and again.scan.cached
    assert again.scan.views == first.scan.views

    # Any rewritten file changes the listing: the next open scans again and sees it.
    path = _nan_latent(root)
    with pytest.raises(DataError, match=f"{path}.*non-finite"):
        ThreeDIEBench(config, "train", 2)


def test_bad_image_data_fails_mid_run_as_one_clean_error(
    root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Bytes inside the entropy-coded data are beyond a structural scan: the run fails when
    the image is decoded, in a DataLoader worker, with the file named, run.json 'failed',
    and the CLI's task exiting 2 with one line: no worker traceback."""
    from sslequi.cli.pretrain import compose_config, task

    path = _object(root) / "image_0.jpg"
    data = bytearray(path.read_bytes())
    scan = data.index(b"\xff\xda")
    start = scan + 2 + int.from_bytes(data[scan + 2 : scan + 4], "big")
    data[start:-2] = b"\xff\xc4" * ((len(data) - 2 - start) // 2) + b"\x00" * (
        (len(data) - 2 - start) % 2
    )
    path.write_bytes(bytes(data))
    assert check.jpeg_file_problem(path) is None  # structurally sound

    run_dir = tmp_path / "run"
    cfg = compose_config(
        [
            "dataset=3diebench",
            f"dataset.root={root}",
            "dataset.resolution=16",
            "backbone=resnet18_tiny",
            "method.projector=16-16",
            "train.batch_size=8",
            "train.steps=4",
            "train.num_workers=1",
            "train.progress=false",
            "train.checkpoint_every_min=0",
            "logger.mode=disabled",
            f"run_dir={run_dir}",
        ]
    )
    with pytest.raises(SystemExit) as exit_info:
        task(cfg)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"{path}: unreadable JPEG" in err
    assert "Traceback" not in err and "worker" not in err
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "failed" and str(path) in info["reason"]
    assert "worker" not in info["reason"]


class _Failing(Dataset[int]):
    def __len__(self) -> int:
        return 2

    def __getitem__(self, index: int) -> int:
        raise DataError(f"/data/x/image_{index}.jpg: unreadable JPEG (bad)")


def test_a_worker_data_error_keeps_its_message() -> None:
    loader = DataLoader(_Failing(), batch_size=1, num_workers=1)
    with pytest.raises(DataError) as error:
        next(iter(loader))
    assert str(error.value) == "/data/x/image_0.jpg: unreadable JPEG (bad)"


def test_jpeg_headers_are_parsed(root: Path) -> None:
    good = (_object(root, 0) / "image_0.jpg").read_bytes()
    assert check.jpeg_problem(good) is None
    sof = good.index(b"\xff\xc0")
    assert "corrupt JPEG header" in check.jpeg_problem(good[:sof] + b"\x12" + good[sof + 1 :])
    no_frame = good[:sof] + b"\xff\xfe" + good[sof + 2 :]  # the frame header becomes a comment
    assert check.jpeg_problem(no_frame) == (
        "corrupt JPEG header (image data before any frame header)"
    )
