"""results.json of a run directory, and ``compare``: THE comparison table of the harness.

Every number is a ``ResultRow`` stored with its full ``Protocol`` (evaluation.md §13).
Rows merge by (probe, metric, split, protocol): a second evaluation appends its rows with
a new evaluation index and never overwrites; a re-evaluation under an identical protocol
that changes a value is reported, and ``compare`` shows the latest evaluation of each key.
The demo, the methods comparison and the launcher's ``collect`` all call ``compare``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import warnings
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timezone
from pathlib import Path

from sslequi.evaluation.protocol import Protocol

RESULTS_FILE = "results.json"
RESULTS_FORMAT = 1

# Protocol columns shown in the comparison (the full protocol stays in results.json).
PROTOCOL_COLUMNS = (
    "head",
    "optimizer",
    "lr",
    "weight_decay",
    "epochs",
    "selection",
    "bn_mode",
    "feature_mode",
    "target",
    "n_train",
    "seed",
    "image_size",
    "checkpoint_step",
    "extra",
)


@dataclass
class ResultRow:
    """One number with everything needed to interpret it."""

    run: str
    method: str
    probe: str
    metric: str  # r2_global, r2_per_component, top1, mrr, hit@1, pre, …
    split: str  # train | holdout | val | <ood split>
    value: float
    floor: float | None  # constant-predictor floor (R²) or chance level, same split
    n: int  # samples the number was computed on
    protocol: Protocol
    evaluation: int = 0  # index of the evaluation that wrote the row (1, 2, …)
    created: str = ""

    def key(self) -> tuple[object, ...]:
        return (self.probe, self.metric, self.split, self.protocol.key())

    def to_json(self) -> dict[str, object]:
        out = asdict(self)
        out["protocol"] = self.protocol.as_dict()
        return out

    @classmethod
    def from_json(cls, data: dict[str, object]) -> ResultRow:
        protocol_data = dict(data["protocol"])  # type: ignore[call-overload]
        known = {f.name for f in fields(Protocol)}
        protocol = Protocol(**{k: v for k, v in protocol_data.items() if k in known})
        values = {k: v for k, v in data.items() if k != "protocol"}
        return cls(protocol=protocol, **values)  # type: ignore[arg-type]


def load_results(run_dir: Path | str) -> list[ResultRow]:
    """All rows of a run's results.json ([] when it has none yet)."""
    path = Path(run_dir) / RESULTS_FILE
    if not path.exists():
        return []
    payload = json.loads(path.read_text())
    if payload.get("format") != RESULTS_FORMAT:
        raise ValueError(f"{path}: unknown results format {payload.get('format')!r}")
    return [ResultRow.from_json(row) for row in payload["rows"]]


def append_results(run_dir: Path | str, rows: list[ResultRow]) -> list[ResultRow]:
    """Merge ``rows`` into results.json as a new evaluation; returns the stored rows."""
    run_dir = Path(run_dir)
    existing = load_results(run_dir)
    evaluation = max((row.evaluation for row in existing), default=0) + 1
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    previous = {row.key(): row for row in latest(existing)}
    for row in rows:
        row.evaluation, row.created = evaluation, now
        before = previous.get(row.key())
        if before is not None and abs(before.value - row.value) > 1e-9:
            warnings.warn(
                f"{run_dir}: {row.probe}/{row.metric}/{row.split} under an identical protocol "
                f"changed from {before.value:.6g} (evaluation {before.evaluation}) to "
                f"{row.value:.6g} (evaluation {evaluation}); both rows are kept",
                stacklevel=2,
            )
    stored = existing + rows
    payload = {"format": RESULTS_FORMAT, "rows": [row.to_json() for row in stored]}
    path = run_dir / RESULTS_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=1))
    os.replace(tmp, path)
    return stored


def latest(rows: list[ResultRow]) -> list[ResultRow]:
    """The most recent row of each (probe, metric, split, protocol), in first-seen order."""
    chosen: dict[tuple[object, ...], ResultRow] = {}
    for row in rows:
        current = chosen.get(row.key())
        if current is None or row.evaluation >= current.evaluation:
            chosen[row.key()] = row
    return list(chosen.values())


def push_wandb_summary(run_dir: Path | str, rows: list[ResultRow]) -> bool:
    """Write the rows into the wandb summary of the run's wandb id (offline by default).

    Returns False (and does nothing) when run.json names no wandb run.
    """
    run_json = Path(run_dir) / "run.json"
    if not run_json.exists():
        return False
    info = json.loads(run_json.read_text())
    wandb_info = info.get("wandb") if isinstance(info.get("wandb"), dict) else {}
    run_id = info.get("wandb_id") or wandb_info.get("id")
    if not run_id:
        return False
    import wandb

    project = info.get("wandb_project") or wandb_info.get("project") or _logger_project(run_dir)
    run = wandb.init(
        id=str(run_id),
        project=str(project),
        resume="allow",
        mode=os.environ.get("WANDB_MODE", "offline"),  # type: ignore[arg-type]
        dir=str(run_dir),
    )
    for row in rows:
        run.summary[f"eval/{row.probe}/{row.protocol.part}/{row.metric}/{row.split}"] = row.value
    run.finish()
    return True


def _logger_project(run_dir: Path | str) -> str:
    """``logger.project`` of the run's config.yaml (default ``sslequi``)."""
    config = Path(run_dir) / "config.yaml"
    if config.exists():
        from omegaconf import OmegaConf

        project = OmegaConf.select(OmegaConf.load(config), "logger.project", default=None)
        if project:
            return str(project)
    return "sslequi"


@dataclass
class ComparisonTable:
    """The rows compared, and the table as Markdown and CSV text."""

    rows: list[ResultRow]
    header: list[str]
    cells: list[list[str]]
    markdown: str
    csv: str


def _run_labels(run_dirs: list[Path]) -> list[str]:
    resolved = [p.resolve() for p in run_dirs]
    if len(resolved) == 1:
        return [resolved[0].name]
    common = Path(os.path.commonpath([str(p) for p in resolved]))
    return [str(p.relative_to(common)) or p.name for p in resolved]


def _fmt(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 1e4 else f"{value:.4g}"
    return str(value)


def compare(
    run_dirs: list[Path | str],
    out: Path | str | None = None,
    echo: bool = True,
    skip_missing: bool = False,
) -> ComparisonTable:
    """One table over several runs: Markdown (printed) + CSV (written to ``out`` if given).

    ``out`` is a directory (→ ``comparison.md`` / ``.csv`` / ``.png`` inside) or a file
    stem (→ ``<out>.md`` / ``<out>.csv`` / ``<out>.png``, the val numbers as bars with
    their floors). A run without results.json is an error, or skipped with a note when
    ``skip_missing`` (e.g. a sweep's collect while some runs are still being evaluated).
    """
    dirs = [Path(d) for d in run_dirs]
    if not dirs:
        raise ValueError("compare needs at least one run directory")
    labels = _run_labels(dirs)
    rows: list[ResultRow] = []
    for run_dir, label in zip(dirs, labels, strict=True):
        if not (run_dir / RESULTS_FILE).exists():
            if skip_missing:
                print(f"compare: skipping {run_dir} (no {RESULTS_FILE} yet)")
                continue
            raise FileNotFoundError(
                f"{run_dir} has no {RESULTS_FILE}; evaluate it first "
                f"(sslequi-eval run={run_dir} probes=[...])"
            )
        for row in latest(load_results(run_dir)):
            row.run = label
            rows.append(row)
    rows.sort(key=lambda r: (r.probe, r.protocol.part, r.metric, r.split, r.run))
    header = ["run", "method", "probe", "part", "metric", "split", "value", "floor", "n"]
    header += list(PROTOCOL_COLUMNS)
    cells = []
    for row in rows:
        protocol = row.protocol.as_dict()
        cells.append(
            [row.run, row.method, row.probe, row.protocol.part, row.metric, row.split]
            + [_fmt(row.value), _fmt(row.floor), str(row.n)]
            + [_fmt(protocol[name]) for name in PROTOCOL_COLUMNS]
        )
    markdown = "\n".join(
        ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        + ["| " + " | ".join(c.replace("|", "/") for c in line) + " |" for line in cells]
    )
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(cells)
    table = ComparisonTable(rows, header, cells, markdown, buffer.getvalue())
    if out is not None:
        out_path = Path(out)
        if out_path.is_dir() or not out_path.suffix and str(out).endswith(os.sep):
            out_path.mkdir(parents=True, exist_ok=True)
            md_path, csv_path = out_path / "comparison.md", out_path / "comparison.csv"
        else:
            out_path.parent.mkdir(parents=True, exist_ok=True)
            md_path, csv_path = out_path.with_suffix(".md"), out_path.with_suffix(".csv")
        md_path.write_text(markdown + "\n")
        csv_path.write_text(table.csv)
        plot_comparison(rows, md_path.with_suffix(".png"))
    if echo:
        print(markdown)
    return table


def plot_comparison(rows: list[ResultRow], path: Path, split: str = "val") -> Path | None:
    """Bar chart of the ``split`` numbers: one panel per (probe, part, metric), one bar per
    run, the floor (constant predictor / chance) as a dashed line. None if nothing to plot."""
    chosen = [r for r in rows if r.split == split]
    if not chosen:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels: dict[tuple[str, str, str], list[ResultRow]] = {}
    for row in chosen:
        panels.setdefault((row.probe, row.protocol.part, row.metric), []).append(row)
    columns = min(4, len(panels))
    lines = (len(panels) + columns - 1) // columns
    figure, axes = plt.subplots(lines, columns, figsize=(3.2 * columns, 2.6 * lines), squeeze=False)
    for axis, ((probe, part, metric), group) in zip(axes.flat, panels.items(), strict=False):
        labels = [f"{r.run}\n{r.protocol.feature_mode}" for r in group]
        axis.bar(range(len(group)), [r.value for r in group], color="tab:blue")
        floors = [r.floor for r in group if r.floor is not None]
        if floors:
            axis.axhline(floors[0], color="tab:red", linestyle="--", linewidth=1)
        axis.set_xticks(range(len(group)), labels, fontsize=6)
        axis.set_title(f"{probe}/{part}\n{metric}", fontsize=7)
        axis.tick_params(axis="y", labelsize=6)
    for axis in list(axes.flat)[len(panels) :]:
        axis.axis("off")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
