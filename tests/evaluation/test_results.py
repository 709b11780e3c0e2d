"""results.json merging and the ``compare`` table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sslequi.evaluation.protocol import Protocol
from sslequi.evaluation.results import (
    RESULTS_FILE,
    ResultRow,
    append_results,
    compare,
    latest,
    load_results,
    push_wandb_summary,
)


def _row(value: float, probe: str = "rotation", lr: float = 1e-3, method: str = "sie") -> ResultRow:
    protocol = Protocol(
        probe=probe,
        part="equivariant",
        metric_definition="r2_global",
        head="mlp(1024-1024)",
        lr=lr,
        epochs=300,
    )
    return ResultRow(
        run="x",
        method=method,
        probe=probe,
        metric="r2_global",
        split="val",
        value=value,
        floor=0.229,
        n=100,
        protocol=protocol,
    )


def test_second_evaluation_adds_rows_and_never_overwrites(tmp_path: Path) -> None:
    append_results(tmp_path, [_row(0.5)])
    with pytest.warns(UserWarning, match="both rows are kept"):
        append_results(tmp_path, [_row(0.6), _row(0.7, lr=1e-4)])
    rows = load_results(tmp_path)
    assert [(r.value, r.evaluation) for r in rows] == [(0.5, 1), (0.6, 2), (0.7, 2)]
    assert rows[0].protocol == _row(0.5).protocol  # protocol round-trips through JSON
    newest = latest(rows)
    assert sorted(r.value for r in newest) == [0.6, 0.7]  # distinct protocols stay separate


def test_compare_writes_markdown_and_csv_with_protocol_columns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_a, run_b = tmp_path / "exp" / "a", tmp_path / "exp" / "b"
    run_a.mkdir(parents=True)
    run_b.mkdir(parents=True)
    append_results(run_a, [_row(0.5, method="sie"), _row(0.9, probe="linear")])
    append_results(run_b, [_row(0.3, method="vicreg")])
    table = compare([run_a, run_b], out=tmp_path / "cmp")
    printed = capsys.readouterr().out
    assert "| run | method | probe | part | metric | split | value | floor |" not in printed
    assert str(tmp_path / "cmp.md") in printed  # the headline is printed, the table written
    assert "lr" in table.header and "bn_mode" in table.header and "epochs" in table.header
    csv_text = (tmp_path / "cmp.csv").read_text()
    md_text = (tmp_path / "cmp.md").read_text()
    assert "| run | method | probe | part | metric | split | value | floor |" in md_text
    assert csv_text.count("\n") == 4 and "vicreg" in csv_text and "0.2290" in md_text
    assert {line[0] for line in table.cells} == {"a", "b"}
    assert (tmp_path / "cmp.png").stat().st_size > 0


def test_compare_fails_clearly_without_results(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=f"has no {RESULTS_FILE}"):
        compare([tmp_path])
    evaluated = tmp_path / "done"
    evaluated.mkdir()
    append_results(evaluated, [_row(0.4)])
    table = compare([tmp_path, evaluated], skip_missing=True, echo=False)
    assert [r.value for r in table.rows] == [0.4]


def test_wandb_summary_skipped_without_run_id(tmp_path: Path) -> None:
    (tmp_path / "run.json").write_text(json.dumps({"status": "completed", "wandb_id": None}))
    assert push_wandb_summary(tmp_path, [_row(0.1)]) is False
