"""``sslequi-data show-augs`` writes a PNG grid for a recipe."""

from __future__ import annotations

from pathlib import Path

from sslequi.augment.config import load_augment_config
from sslequi.augment.pipeline import build_pipeline
from sslequi.cli.data import main
from sslequi.cli.data_show_augs import describe, sample_card, spec_for_recipe
from sslequi.data.base import DatasetInfo


def test_show_augs_writes_a_png(tmp_path: Path) -> None:
    out = tmp_path / "grid.png"
    assert (
        main(
            [
                "show-augs",
                "--augment",
                "essl_cifar",
                "--size",
                "24",
                "--samples",
                "2",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_descriptions_name_the_applied_ops() -> None:
    config = load_augment_config("byol")
    info = DatasetInfo(0, (0.5,) * 3, (0.25,) * 3, 24, None, False)
    pipeline = build_pipeline(config, spec_for_recipe(config), info)
    params, _ = pipeline.sample(sample_card(24, 4, 0))
    text = describe(params[0], 0)
    assert text.startswith("crop t") and "blur σ" in text  # view 1 always blurs
