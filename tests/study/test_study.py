"""The study behind the README demo: render → pretrain two methods → probes → one table."""

from __future__ import annotations

from pathlib import Path

import pytest

from sslequi.evaluation.results import load_results
from sslequi.study import (
    STUDY_PROBES,
    Budget,
    discover_recipes,
    ensure_rendered,
    group_runs,
    headline_table,
    plan_study,
    probe_overrides,
    protocol_line,
    run_study,
    study_eval_config,
)


def test_partial_render_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "partial"
    root.mkdir()
    (root / "train_images.npy").write_bytes(b"")
    with pytest.raises(FileExistsError, match="interrupted render"):
        ensure_rendered(root, "tiny")


def test_recipes_are_discovered_and_seeds_planned(tmp_path: Path) -> None:
    recipes = discover_recipes()
    assert {"sie", "vicreg", "simclr", "equimod", "esimclr", "sie_nopvar"} <= set(recipes)
    assert all(recipe == f"{name}_3diebench_cpu" for name, recipe in recipes.items())
    chosen = {name: recipes[name] for name in ("sie", "vicreg", "sie_nopvar")}
    entries = plan_study(chosen, tmp_path, seeds=(0, 1, 2))
    names = [e.run_dir.name for e in entries]
    assert names == [
        "sie_s0",
        "sie_s1",
        "sie_s2",
        "vicreg_s0",
        "vicreg_s1",
        "vicreg_s2",
        "sie_nopvar",
    ]
    by_name = {e.run_dir.name: e for e in entries}
    assert by_name["sie_nopvar"].single_seed and not by_name["sie_s1"].single_seed
    assert by_name["sie_s2"].seed == 2 and by_name["sie_s0"].with_predictor
    assert not by_name["vicreg_s0"].with_predictor and by_name["sie_nopvar"].with_predictor
    one = plan_study({"sie": recipes["sie"]}, tmp_path, seeds=(3,))
    assert [(e.run_dir.name, e.seed, e.single_seed) for e in one] == [("sie", 3, False)]
    named = plan_study(chosen, tmp_path, seeds=(0,), with_predictor=("vicreg",))
    assert [e.with_predictor for e in named] == [False, True, False]  # as named, not detected


def test_probe_budget_becomes_eval_overrides() -> None:
    quick = Budget(steps=2, batch_size=4, seed=0, probe_epochs=3, probe_min_steps=5)
    assert probe_overrides(quick, ("linear", "rotation", "mrr", "knn")) == {
        "probe": {
            "linear": {"epochs": 3},
            "rotation": {"epochs": 3},  # mrr and knn train no head
            "small_set": {"min_steps": 5, "linear_min_steps": 5},
        }
    }
    assert probe_overrides(Budget(steps=2, batch_size=4, seed=0), STUDY_PROBES) == {}
    cfg = study_eval_config(STUDY_PROBES, 0, **probe_overrides(quick, STUDY_PROBES))
    assert cfg.probe.rot90.epochs == 3 and cfg.probe.color.epochs == 3
    assert cfg.probe.small_set.min_steps == 5 and cfg.probe.small_set.linear_min_steps == 5
    assert "probe heads shortened: epochs 3, min steps 5" in protocol_line(quick, "tiny")
    with pytest.raises(ValueError, match="probe epochs must be ≥ 1"):
        Budget(steps=2, batch_size=4, seed=0, probe_epochs=0)
    with pytest.raises(ValueError, match="probe min steps must be ≥ 0"):
        Budget(steps=2, batch_size=4, seed=0, probe_min_steps=-1)


def test_multi_seed_study_in_two_jobs_gives_mean_and_std(tmp_path: Path, tiny_render: Path) -> None:
    budget = Budget(steps=2, batch_size=4, seed=0, probe_epochs=2, probe_min_steps=0)
    out = tmp_path / "out"
    runs = run_study(
        {"vicreg": "vicreg_3diebench_cpu", "simclr": "simclr_3diebench_cpu"},
        tiny_render,
        out,
        budget,
        extra=("logger.mode=disabled", "dataset.resolution=32", "method.projector=32-32"),
        seeds=(0, 1),
        multi_seed=("vicreg",),
        jobs=2,
        probes=("linear",),
    )
    assert sorted(r.run_dir.name for r in runs) == ["simclr", "vicreg_s0", "vicreg_s1"]
    assert all(r.pretrain_cpu_s > 0 and r.eval_cpu_s > 0 for r in runs)
    groups = group_runs(out)
    assert [p.name for p in groups["vicreg"]] == ["vicreg_s0", "vicreg_s1"]
    lines = headline_table(groups).splitlines()
    vicreg = next(line for line in lines if line.startswith("| vicreg "))
    simclr = next(line for line in lines if line.startswith("| simclr †"))
    top1 = [float(x) for x in vicreg.split(" | ")[2].split(" ± ")]
    values = [
        next(
            r.value
            for r in load_results(p)
            if r.probe == "linear"
            and r.metric == "top1"
            and r.split == "val"
            and r.protocol.part == "full"
        )
        for p in groups["vicreg"]
    ]
    assert abs(top1[0] - sum(values) / 2) < 1e-3
    assert " | 1 | " in simclr and "fewer seeds" in lines[-1]


def _script(path: str) -> object:
    import importlib.util

    spec = importlib.util.spec_from_file_location(Path(path).stem, Path(__file__).parents[2] / path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TINY = ["logger.mode=disabled", "dataset.resolution=32", "method.projector=32-32"]


def test_demo_and_compare_3d_commands_run_at_tiny_scale(
    tmp_path: Path, tiny_render: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The README's demo and study commands, with tiny data, budgets and probe heads."""
    demo = _script("launch/demo.py")
    args = ["--root", str(tiny_render), "--steps", "2", "--batch-size", "4", "--jobs", "1"]
    args += ["--probe-epochs", "2", "--probe-min-steps", "0"]  # every number: 2-epoch heads
    demo_out = tmp_path / "demo"
    assert demo.main([*args, "--threads", "1", "--out", str(demo_out), "--extra", *TINY]) == 0  # type: ignore[attr-defined]
    printed = capsys.readouterr().out
    assert "rendering" not in printed  # the complete render is not rendered again
    assert "CPU-min" in printed and "probe heads shortened: epochs 2, min steps 0" in printed
    table = printed[printed.index("| method | seeds | top-1 | rot R² global") :].splitlines()
    vicreg_row, sie_row = table[2].split(" | "), table[3].split(" | ")
    assert vicreg_row[:2] == ["| vicreg", "1"] and sie_row[:2] == ["| sie", "1"]
    assert vicreg_row[-1].strip(" |") == "–"  # no predictor: no H@1
    assert sie_row[-1].strip(" |") != "–"
    assert "rot R² global 0." in printed  # the constant-predictor floor is printed
    assert (demo_out / "comparison.md").is_file()
    vicreg_rows, sie_rows = load_results(demo_out / "vicreg"), load_results(demo_out / "sie")
    assert {"linear", "rotation", "color", "rot90", "mrr"} <= {row.probe for row in sie_rows}
    assert "mrr" not in {row.probe for row in vicreg_rows}
    assert {"full", "invariant", "equivariant"} <= {row.protocol.part for row in sie_rows}
    trained = [r for r in vicreg_rows + sie_rows if r.probe != "mrr"]
    assert {(r.protocol.epochs, r.protocol.min_steps) for r in trained} == {(2, 0)}

    compare_3d = _script("benchmarks/compare_3d.py")
    out = tmp_path / "study"
    code = compare_3d.main(  # type: ignore[attr-defined]
        [
            *args,
            "--out",
            str(out),
            "--methods",
            "vicreg",
            "sie",
            "--seeds",
            "0",
            "1",
            "--reference",
            str(tmp_path / "none"),
            "--extra",
            *TINY,
        ]
    )
    assert code == 0
    summary = (out / "summary.md").read_text()
    assert "render" in summary  # names the dataset it ran on
    assert "SIE − VICReg rotation r2_global" in summary and "hypernetwork" in summary
    assert "probe heads shortened: epochs 2, min steps 0" in summary
    assert sorted(p.name for p in out.iterdir() if (p / "results.json").is_file()) == [
        "sie_s0",
        "sie_s1",
        "vicreg_s0",
        "vicreg_s1",
    ]
