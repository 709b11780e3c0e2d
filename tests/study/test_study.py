"""The study behind the README demo: render → pretrain two methods → probes → one table."""

from __future__ import annotations

from pathlib import Path

import pytest

from sslequi.data.render.generate import RenderConfig, generate
from sslequi.evaluation.results import load_results
from sslequi.study import Budget, ensure_rendered, headline_table, run_study


def test_partial_render_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "partial"
    root.mkdir()
    (root / "train_images.npy").write_bytes(b"")
    with pytest.raises(FileExistsError, match="interrupted render"):
        ensure_rendered(root, "tiny")


def test_study_end_to_end_table(tmp_path: Path) -> None:
    root = tmp_path / "render"
    generate(RenderConfig.from_preset("tiny", root, objects_per_class=8, progress=False))
    ensure_rendered(root, "tiny")  # complete: nothing is rendered again
    budget = Budget(steps=2, batch_size=4, seed=0, probe_epochs=2)
    runs = run_study(
        {"vicreg": "vicreg_3diebench_cpu", "sie": "sie_3diebench_cpu"},
        root,
        tmp_path / "out",
        budget,
        with_predictor=("sie",),
        extra=("logger.mode=disabled", "dataset.resolution=32", "method.projector=32-32"),
    )
    assert [r.name for r in runs] == ["vicreg", "sie"]
    sie_probes = {row.probe for row in load_results(runs[1].run_dir)}
    assert {"linear", "rotation", "color", "mrr"} <= sie_probes
    assert "mrr" not in {row.probe for row in load_results(runs[0].run_dir)}
    table = headline_table({r.name: r.run_dir for r in runs}).splitlines()
    assert table[0].startswith("| method | top-1 | rot R² global")
    vicreg_row, sie_row = table[2].split(" | "), table[3].split(" | ")
    assert vicreg_row[-1].strip(" |") == "–"  # no predictor: no H@1
    assert sie_row[-1].strip(" |") != "–"
    assert "rot R² global 0." in table[-1]  # the constant-predictor floor is printed
    assert (tmp_path / "out" / "comparison.md").is_file()
