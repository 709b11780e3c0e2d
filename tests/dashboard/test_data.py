"""The dashboard's data: seed groups, cells that never mix protocols, every protocol field
carried, the printed headline, bad inputs, and the page's size for 100 runs."""

from __future__ import annotations

import json
import statistics
from dataclasses import fields
from pathlib import Path

import fakes
import pytest

from sslequi.dashboard import cli as dashboard_cli
from sslequi.dashboard.data import DashboardInputError, build_payload, headline_text
from sslequi.dashboard.page import render_page
from sslequi.evaluation.protocol import Protocol
from sslequi.evaluation.results import OUTCOME_FIELDS, ResultRow, append_results


def _cells(payload: dict, group: str, probe: str, part: str, metric: str) -> list[dict]:
    return [
        c
        for c in payload["cells"]
        if (c["group"], c["probe"], c["part"], c["metric"], c["split"])
        == (group, probe, part, metric, "val")
    ]


def test_seeds_form_one_group_and_protocols_are_never_averaged(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    fakes.make_sweep(root)
    # sie seed 1 evaluated again under another protocol (300 epochs): its own cell.
    again = fakes.rows_for("sie", 1)
    for row in again:
        row.protocol = Protocol(**{**row.protocol.as_dict(), "epochs": 300})  # type: ignore[arg-type]
        row.value += 0.5
    append_results(root / "sie_s1", again)
    # Another projector: a group of its own, labelled by the key that differs.
    other = fakes.make_run(root, "sie_wide_s0", "sie", 0)
    config = (other / "config.yaml").read_text().replace("512-512-512", "1024-1024-1024")
    (other / "config.yaml").write_text(config)

    payload = build_payload([root])
    groups = {g["label"]: g for g in payload["groups"]}
    assert sorted(len(g["runs"]) for g in groups.values()) == [1, 2, 2]
    runs = {r["id"]: r["label"] for r in payload["runs"]}
    by_label = {label: sorted(runs[i] for i in g["runs"]) for label, g in groups.items()}
    assert by_label["vicreg_3diebench_cpu"] == ["vicreg_s0", "vicreg_s1"]
    assert by_label["sie_3diebench_cpu method.projector=512-512-512"] == ["sie_s0", "sie_s1"]
    assert by_label["sie_3diebench_cpu method.projector=1024-1024-1024"] == ["sie_wide_s0"]

    sie = groups["sie_3diebench_cpu method.projector=512-512-512"]["id"]
    cells = _cells(payload, sie, "linear", "full", "top1")
    assert sorted(c["n"] for c in cells) == [1, 2]
    pair = next(c for c in cells if c["n"] == 2)
    seeds = [fakes.value("sie", "top1", 0), fakes.value("sie", "top1", 1)]
    assert pair["mean"] == pytest.approx(statistics.fmean(seeds), rel=1e-5)
    assert pair["std"] == pytest.approx(statistics.stdev(seeds), rel=1e-5)
    assert pair["floor"] == pytest.approx(0.25)
    assert payload["protocols"][pair["protocol"]]["epochs"] == 100
    single = next(c for c in cells if c["n"] == 1)
    assert single["mean"] == pytest.approx(seeds[1] + 0.5)
    assert payload["protocols"][single["protocol"]]["epochs"] == 300
    assert single["std"] is None
    # The two probe protocols are told apart in their labels.
    labels = {payload["family_labels"][c["family"]] for c in cells}
    assert len(labels) == 2 and any("epochs=300" in label for label in labels)


def test_every_protocol_and_row_field_reaches_the_page(tmp_path: Path) -> None:
    fakes.make_run(tmp_path / "runs", "one", "sie", 0)
    payload = build_payload([tmp_path / "runs"])
    protocol_fields = {f.name for f in fields(Protocol)} - set(OUTCOME_FIELDS)
    assert all(protocol_fields <= set(p) for p in payload["protocols"])
    row_fields = {f.name for f in fields(ResultRow)} - {"protocol", "run", "method", "created"}
    assert row_fields <= set(payload["rows"]["fields"])
    assert {"checkpoint", "outcome"} <= set(payload["rows"]["fields"])


def test_headline_is_one_line_per_group(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fakes.make_sweep(tmp_path / "runs")
    out = tmp_path / "page"
    assert dashboard_cli.main([str(tmp_path / "runs"), "--out", str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "| group | runs | top-1 | rot R² global | rot R² per-comp. |"
    assert printed[2].startswith("| sie_3diebench_cpu | 2 | 0.310 ± 0.014 | 0.410 ± 0.014 |")
    assert printed[-1].endswith(f"wrote {out / 'index.html'} (4.9 MB)") or str(out) in printed[-1]
    assert len(printed) == 5
    payload = build_payload([tmp_path / "runs"])
    assert headline_text(payload).splitlines()[2] == printed[2]


def test_bad_inputs_fail_clearly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(DashboardInputError, match="does not exist"):
        build_payload([tmp_path / "nowhere"])
    fakes.make_sweep(tmp_path / "runs")
    (tmp_path / "runs" / "sie_s1" / "results.json").write_text('{"format": 99, "rows": []}')
    payload = build_payload([tmp_path / "runs"])  # one unreadable file does not stop the page
    states = {run["label"]: run["eval"] for run in payload["runs"]}
    assert states["sie_s1"].startswith("unreadable results.json") and states["sie_s0"] == "6 rows"
    (tmp_path / "empty").mkdir()
    assert dashboard_cli.main([str(tmp_path / "empty")]) == 2
    assert "holds no run directory" in capsys.readouterr().err


def test_default_output_is_beside_the_runs_never_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fakes.make_sweep(tmp_path / "runs")
    assert dashboard_cli.default_out([tmp_path / "runs"]) == tmp_path / "runs" / "dashboard"
    monkeypatch.chdir(tmp_path / "runs")
    assert dashboard_cli.main(["."]) == 0
    assert not (tmp_path / "runs" / "dashboard").exists()


def _heavy_rows(method: str, seed: int) -> list[ResultRow]:
    rows = []
    for probe, metrics in (
        ("linear", ("top1", "top5")),
        ("knn", ("top1", "top5")),
        (
            "rotation",
            ("r2_global", "r2_per_component", "r2_global_canonical", "sign_invariant_error"),
        ),
        ("color", ("r2_global", "r2_per_component")),
    ):
        for part in ("full", "invariant", "equivariant"):
            for metric in metrics:
                for split in ("train", "val"):
                    protocol = Protocol(
                        probe=probe,
                        part=part,
                        metric_definition=metric,
                        head="mlp(1024-1024)",
                        epochs=300,
                        checkpoint=f"{method}{seed}",
                        dataset=fakes.DATASET,
                        extra=f"epochs_run=300;best_epoch={seed};eval_draws=1",
                    )
                    rows.append(
                        ResultRow("x", method, probe, metric, split, 0.1 * seed, 0.2, 96, protocol)
                    )
    return rows


def test_a_page_for_100_runs_stays_under_10_mb(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    for index in range(100):
        method, seed = f"m{index // 3}", index % 3
        run_dir = fakes.make_run(
            root, f"{method}_s{seed}", method, seed, steps=2000, evaluated=False
        )
        append_results(run_dir, _heavy_rows(method, seed))
    payload = build_payload([root])
    assert len(payload["runs"]) == 100 and len(payload["groups"]) == 34
    assert all(len(curve["step"]) <= 201 for curve in payload["curves"]["runs"].values())
    page = render_page(payload)
    size = len(page.encode())
    assert size < 10e6, f"{size / 1e6:.1f} MB"
    # The payload round-trips through the page's JSON script block.
    start = page.index('id="dashboard-data">') + len('id="dashboard-data">')
    embedded = json.loads(page[start : page.index("</script>", start)])
    assert embedded["version"] == payload["version"]


def test_a_runs_folder_of_in_process_sweeps_is_read_whole(tmp_path: Path) -> None:
    """``sslequi-dashboard runs/`` finds runs/<experiment>/<sweep id>/<run> (docs/launcher.md)."""
    for method in fakes.METHODS:
        sweep = tmp_path / "runs" / f"{method}_3diebench_cpu" / "seed-20261201-000000-abcdef"
        for seed in (0, 1):
            fakes.make_run(sweep, f"seed-{seed}", method, seed)
    payload = build_payload([tmp_path / "runs"])
    assert len(payload["runs"]) == 4 and len(payload["groups"]) == 2
