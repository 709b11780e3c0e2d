"""Capsule recipes (EquiCaps, CapsIE) against methods.md §10–11; their ``_cpu`` variants
compose, resolve, build, train a few steps at tiny scale, and evaluate through the probe
contract (capsule activations and poses as representations; MRR on CapsIE's poses)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from sslequi.config import import_components, resolve_config
from sslequi.data.render.generate import RenderConfig, generate
from sslequi.evaluation.results import load_results
from sslequi.study import Budget, headline_table, pretrain_recipe, study_eval_config
from tests.methods.test_recipes import CPU_SCALE_3D, SIE_HARNESS, _check, _compose, _value

# methods.md §11.4 (README command; register item 8: batch 256), §11.2 (K = 32), §11.3
EQUICAPS = {
    **{k: v for k, v in SIE_HARNESS.items() if k != "train.batch_size"},
    "train.batch_size": 256,
    "method.name": "equicaps",
    "method.num_capsules": 32,
    "method.sim_coeff": 0.1,
    "method.equi_coeff": 5.0,
    "method.std_coeff": 10.0,
    "method.memax_coeff": 1.0,
    "method.cov_coeff": 1.0,
    "method.activation_checkpoint": True,  # §11.2: on by default
}
RECIPES: dict[str, dict[str, Any]] = {
    "equicaps_3diebench": {**EQUICAPS, "method.pose": "3x3"},
    # §11.2 EquiCaps_4x4; datasets.md §2 frames
    "equicaps_3diebench_t": {
        **EQUICAPS,
        "dataset.name": "3diebench_t",
        "method.pose": "4x4",
        "method.frame": "object",
    },
    "equicaps_3diebench_t_base": {
        **EQUICAPS,
        "dataset.name": "3diebench_t",
        "method.pose": "4x4",
        "method.frame": "base",
    },
    # §10.2 train.sh: SIE's harness and coefficients, 16 capsules with 4x4 poses
    "capsie_3diebench": {
        **SIE_HARNESS,
        "method.name": "capsie",
        "method.num_capsules": 16,
        "method.pose": "4x4",
        "method.sim_coeff": 10.0,
        "method.equi_factor": 0.45,
        "method.std_coeff": 10.0,
        "method.cov_coeff": 1.0,
        "method.anchor_temperature": 0.1,
        "method.target_temperature_start": 0.025,
        "method.target_temperature_end": 0.1,
        "method.temperature_horizon": 1.25,
        "method.predictor.hypernetwork": "linear",
        "method.predictor.init": "torch_default",
    },
}
TESTED_RECIPES: set[str] = set(RECIPES) | {f"{name}_cpu" for name in RECIPES}
# The CPU variants keep the method and take the CPU scale (configs/experiment/_cpu_3d.yaml).
CPU_KEYS = (
    "dataset.resolution",
    "dataset.root",
    "train.",
    "backbone.",
    "optim.lr",
    "method.predictor.init",
)
TRANSLATED = ("equicaps_3diebench_t", "equicaps_3diebench_t_base")


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_recipe_matches_reference(recipe: str) -> None:
    cfg = _compose(recipe)
    _check(cfg, RECIPES[recipe], recipe)
    assert _value(cfg, "method.resolution") == 256  # kernel 8 × 8 (§11.2)


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_cpu_variant_keeps_the_method_and_builds(recipe: str) -> None:
    cfg = _compose(f"{recipe}_cpu")
    kept = {k: v for k, v in RECIPES[recipe].items() if not k.startswith(CPU_KEYS)}
    _check(cfg, {**kept, **CPU_SCALE_3D}, f"{recipe}_cpu")
    expected_root = "render3d_small_t" if recipe in TRANSLATED else "render3d_small"
    assert str(_value(cfg, "dataset.root")).endswith(expected_root)
    if recipe == "capsie_3diebench":
        assert _value(cfg, "method.predictor.init") == "norm_preserving"
    import_components()
    resolved = resolve_config(cfg)
    assert resolved.method.resolution == 64
    from sslequi.build import build_method

    with torch.device("meta"):
        method = build_method(resolved)
    assert method.feature_dim == 128
    assert method.capsules.map_size == 2  # type: ignore[union-attr]


TINY = ("logger.mode=disabled", "dataset.resolution=32", "train.progress=false")


@pytest.fixture(scope="module")
def renders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    roots = {}
    for variant in ("standard", "T"):
        root = Path(tmp_path_factory.mktemp(f"render_{variant}"))
        generate(
            RenderConfig.from_preset(
                "tiny", root, variant=variant, objects_per_class=4, progress=False
            )
        )
        roots[variant] = root
    return roots


@pytest.mark.parametrize("recipe", TRANSLATED)
def test_translated_cpu_variants_train(
    recipe: str, renders: dict[str, Path], tmp_path: Path
) -> None:
    """2 steps on a tiny --variant T render at 32 px: the capsule kernel is the 1 × 1 map."""
    run_dir = tmp_path / recipe
    budget = Budget(steps=2, batch_size=4, seed=0)
    pretrain_recipe(f"{recipe}_cpu", renders["T"], run_dir, budget, TINY)
    assert (run_dir / "checkpoints" / "last.pt").is_file()
    assert "terms/equi" in (run_dir / "metrics.jsonl").read_text()
    # The translation probes (3DIEBench-T) run on the capsule representations.
    from sslequi.evaluation.runner import evaluate_run

    probes = ["translation_object", "translation_base"]
    quick = {"epochs": 2, "hidden": [16]}
    cfg = study_eval_config(
        probes,
        0,
        run_dir,
        protocol="paper",
        parts=["full", "poses"],
        probe=dict.fromkeys(probes, quick),
    )
    evaluate_run(cfg, progress_print=lambda text: None)
    found = {(row.probe, row.protocol.part) for row in load_results(run_dir)}
    assert {(p, part) for p in probes for part in ("full", "poses")} <= found


def test_capsule_runs_train_and_evaluate(renders: dict[str, Path], tmp_path: Path) -> None:
    """Both ``_cpu`` recipes train 2 steps and go through the evaluation: linear, rotation
    and colour probes on every default representation (pooled backbone, activations,
    poses), MRR on CapsIE's poses (2-epoch heads: the protocol's cost is not under test)."""
    from sslequi.evaluation.runner import evaluate_run

    quick = {"epochs": 2, "hidden": [16]}
    probe = {"linear": {"epochs": 2}, "rotation": quick, "color": quick}
    run_dirs = {}
    for name, probes in (("equicaps", []), ("capsie", ["mrr"])):
        run_dir = tmp_path / name
        budget = Budget(steps=2, batch_size=4, seed=0)
        pretrain_recipe(f"{name}_3diebench_cpu", renders["standard"], run_dir, budget, TINY)
        chosen = ["linear", "rotation", "color", *probes]
        cfg = study_eval_config(chosen, 0, run_dir, protocol="paper", probe=probe)
        evaluate_run(cfg, progress_print=lambda text: None)
        rows = load_results(run_dir)
        parts = {(row.probe, row.protocol.part) for row in rows}
        for name_ in ("linear", "rotation", "color"):
            assert {(name_, "full"), (name_, "activations"), (name_, "poses")} <= parts
        run_dirs[name] = run_dir
    mrr = [row for row in load_results(run_dirs["capsie"]) if row.probe == "mrr"]
    assert mrr and all(row.protocol.part == "equivariant" for row in mrr)
    assert all("representation=poses" in row.protocol.extra for row in mrr)
    table = headline_table(run_dirs).splitlines()
    capsie_line = next(line for line in table if line.startswith("| capsie"))
    assert capsie_line.split(" | ")[-1].strip(" |") != "–"  # H@1 from the predictor
