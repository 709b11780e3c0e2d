"""``compare`` for people: a compact headline printed with the paths of what it wrote, the
full table (every protocol field) in files beside the runs, never in the working
directory; the PNG's series named by run and by the protocol field that tells two
evaluations of one run apart."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import fakes
import pytest

from sslequi.evaluation.protocol import Protocol
from sslequi.evaluation.results import (
    _series_labels,
    append_results,
    compare,
    latest,
    load_results,
)

REPO = Path(__file__).resolve().parents[2]


def test_headline_printed_full_table_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = fakes.make_sweep(tmp_path / "demo")
    table = compare(runs)
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "| run | method | top-1 | rot R² global | rot R² per-comp. |"
    assert printed[2] == "| sie_s0 | sie | 0.300 | 0.400 | 0.200 |"
    assert printed[6].startswith("floor (constant predictor) / chance: top-1 0.250")
    out = tmp_path / "demo" / "comparison"
    assert printed[-2] == (
        f"full table ({len(table.cells)} numbers, every protocol field): "
        f"{out / 'comparison.md'}, {out / 'comparison.csv'}, {out / 'comparison.png'}"
    )
    assert printed[-1] == "numbers with their protocols: each run's results.json"
    assert len(printed) == 9  # header, rule, 4 runs, floors, paths
    compare(runs[:1])
    assert capsys.readouterr().out.splitlines()[-1] == (
        f"numbers with their protocols: {runs[0] / 'results.json'}"
    )
    header = (out / "comparison.csv").read_text().splitlines()[0].split(",")
    assert {f.name for f in fields(Protocol)} - {"probe", "part"} <= set(header)
    assert (out / "comparison.png").stat().st_size > 10_000


def test_several_protocols_are_marked_and_labelled(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = fakes.make_run(tmp_path / "demo", "sie_s0", "sie", 0)
    again = fakes.rows_for("sie", 0)
    for row in again:
        row.protocol = Protocol(**{**row.protocol.as_dict(), "feature_mode": "live"})  # type: ignore[arg-type]
    append_results(run, again)
    compare([run], out=tmp_path / "cmp")
    printed = capsys.readouterr().out
    assert "| sie_s0 | sie | 0.300* |" in printed
    assert "* several protocols for this number" in printed
    rows = [
        r for r in latest(load_results(run)) if r.probe == "linear" and r.protocol.part == "full"
    ]
    labels = set(_series_labels(rows).values())
    assert labels == {"x · feature_mode=cached", "x · feature_mode=live"}


def test_the_script_writes_beside_the_runs_not_into_the_working_directory(tmp_path: Path) -> None:
    runs = fakes.make_sweep(tmp_path / "demo")
    work = tmp_path / "work"
    work.mkdir()
    result = subprocess.run(
        [sys.executable, str(REPO / "eval" / "compare.py"), *map(str, runs)],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    assert list(work.iterdir()) == []
    assert str(tmp_path / "demo" / "comparison" / "comparison.md") in result.stdout
    # Runs in the working directory itself: the files go to a temporary folder.
    result = subprocess.run(
        [sys.executable, str(REPO / "eval" / "compare.py"), "sie_s0", "vicreg_s0"],
        cwd=tmp_path / "demo",
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    assert "sslequi-comparison-" in result.stdout.splitlines()[-2]
    assert sorted(p.name for p in (tmp_path / "demo").iterdir()) == sorted(
        ["comparison", *(r.name for r in runs)]
    )
