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
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path

from sslequi.evaluation.protocol import Protocol

RESULTS_FILE = "results.json"
RESULTS_FORMAT = 1


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
    run_status: str | None = None  # the run's run.json status when evaluated (None: unknown)
    # Stage probes (eval layers=[...]): True on the best stage's row of its (probe, metric,
    # split), False on the other stages' rows; None outside a stage comparison.
    best_layer: bool | None = None

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
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")  # unique
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


# Fields that record how a probe fit turned out on one run, not how it was set up: they
# differ between seeds of one protocol, so protocol_identity leaves them out.
OUTCOME_FIELDS = ("checkpoint", "steps")
OUTCOME_EXTRA_KEYS = ("epochs_run", "best_epoch")

# The compact table printed by compare: (probe, metric, label) on the val split, in the first
# of HEADLINE_PARTS a run has (predictor metrics: their one part). The rest is in the files.
HEADLINE: tuple[tuple[str, str, str], ...] = (
    ("linear", "top1", "top-1"),
    ("knn", "top1", "kNN top-1"),
    ("rotation", "r2_global", "rot R² global"),
    ("rotation", "r2_per_component", "rot R² per-comp."),
    ("color", "r2_global", "colour R² global"),
    ("mrr", "mrr", "MRR"),
    ("mrr", "hit@1", "H@1"),
)
HEADLINE_PARTS = ("full", "equivariant", "invariant")


def protocol_identity(protocol: Protocol | dict[str, object]) -> tuple[tuple[str, object], ...]:
    """Every protocol field except the fit's outcome (``OUTCOME_FIELDS``, and the outcome
    entries of ``extra``): numbers with equal identities were measured the same way."""
    data = dict(protocol.as_dict() if isinstance(protocol, Protocol) else protocol)
    for name in OUTCOME_FIELDS:
        data.pop(name, None)
    extra = data.get("extra")
    if isinstance(extra, str):
        data["extra"] = ";".join(
            item for item in extra.split(";") if item.split("=", 1)[0] not in OUTCOME_EXTRA_KEYS
        )
    return tuple(sorted(data.items()))


@dataclass
class ComparisonTable:
    """The rows compared, the full table as Markdown and CSV text, the printed headline,
    and the files written (empty when nothing was written)."""

    rows: list[ResultRow]
    header: list[str]
    cells: list[list[str]]
    markdown: str
    csv: str
    headline: str = ""
    files: list[Path] = field(default_factory=list)


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


def default_comparison_dir(run_dirs: list[Path]) -> Path:
    """Where ``compare`` writes without ``out``: ``comparison/`` in the runs' common folder
    (the run directory itself for one run); a temporary folder when that common folder is
    the current directory or the filesystem root, so nothing lands in a working tree."""
    import tempfile

    resolved = [p.resolve() for p in run_dirs]
    common = resolved[0] if len(resolved) == 1 else Path(os.path.commonpath(resolved))
    if common == Path.cwd().resolve() or common.parent == common:
        return Path(tempfile.mkdtemp(prefix="sslequi-comparison-"))
    return common / "comparison"


def _headline_row(rows: list[ResultRow], probe: str, metric: str) -> tuple[ResultRow | None, int]:
    """The latest val row of (probe, metric) in the first available headline part, and how
    many protocols that cell has."""
    for part in HEADLINE_PARTS:
        matches = [
            r
            for r in rows
            if r.probe == probe
            and r.metric == metric
            and r.split == "val"
            and r.protocol.part == part
        ]
        if matches:
            newest = max(matches, key=lambda r: r.evaluation)
            return newest, len({protocol_identity(r.protocol) for r in matches})
    return None, 0


def headline_table(rows: list[ResultRow]) -> str:
    """The compact val-split table: one line per run, the ``HEADLINE`` metrics that any run
    has, floors / chance below (Markdown)."""
    runs = list(dict.fromkeys(r.run for r in rows))
    columns = []
    cells: dict[tuple[str, str], str] = {}
    floors: dict[str, set[str]] = {}
    several = False
    for probe, metric, label in HEADLINE:
        present = False
        for run in runs:
            row, protocols = _headline_row([r for r in rows if r.run == run], probe, metric)
            if row is None:
                continue
            present = True
            mark = "*" if protocols > 1 else ""
            several = several or protocols > 1
            cells[(run, label)] = f"{row.value:.3f}{mark}"
            if row.floor is not None:
                floors.setdefault(label, set()).add(f"{row.floor:.3f}")
        if present:
            columns.append(label)
    if not columns:
        return f"no val-split headline metric among {len(rows)} numbers"
    methods = {r.run: r.method for r in rows}
    header = ["run", "method", *columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for run in runs:
        values = [cells.get((run, label), "–") for label in columns]
        lines.append("| " + " | ".join([run, methods[run], *values]) + " |")
    if floors:
        lines.append(
            "floor (constant predictor) / chance: "
            + ", ".join(f"{k} {'/'.join(sorted(v))}" for k, v in floors.items())
        )
    if several:
        lines.append("* several protocols for this number: the latest evaluation is shown")
    return "\n".join(lines)


def compare(
    run_dirs: list[Path | str],
    out: Path | str | None = None,
    echo: bool = True,
    skip_missing: bool = False,
) -> ComparisonTable:
    """One table over several runs: the full table to files, a compact headline printed.

    ``out`` is a directory (→ ``comparison.md`` / ``.csv`` / ``.png`` inside) or a file
    stem (→ ``<out>.md`` / ``<out>.csv`` / ``<out>.png``); without it, ``comparison/`` in
    the runs' common folder (``default_comparison_dir``). The full table has every protocol
    field as a column; the PNG has the headline val numbers as bars, one series per run
    and protocol, with their floors. ``echo`` prints the headline table and the paths. A
    run without results.json is an error, or skipped with a note when ``skip_missing``
    (e.g. a sweep's collect while some runs are still being evaluated).
    """
    dirs = [Path(d) for d in run_dirs]
    if not dirs:
        raise ValueError("compare needs at least one run directory")
    labels = _run_labels(dirs)
    rows: list[ResultRow] = []
    skipped = []
    for run_dir, label in zip(dirs, labels, strict=True):
        if not (run_dir / RESULTS_FILE).exists():
            if skip_missing:
                skipped.append(label)
                continue
            raise FileNotFoundError(
                f"{run_dir} has no {RESULTS_FILE}; evaluate it first "
                f"(sslequi-eval run={run_dir} probes=[...])"
            )
        for row in latest(load_results(run_dir)):
            row.run = label
            rows.append(row)
    rows.sort(key=lambda r: (r.probe, r.protocol.part, r.metric, r.split, r.run))
    base = ["run", "method", "probe", "part", "metric", "split", "value", "floor", "n"]
    protocol_names = [f.name for f in fields(Protocol) if f.name not in ("probe", "part")]
    row_names = [  # fields added to ResultRow later flow through too
        name
        for name in (rows[0].to_json() if rows else {})
        if name not in ("protocol", "run", "method", "probe", "metric", "split", "value")
        and name not in ("floor", "n")
    ]
    header = base + protocol_names + row_names
    cells = []
    for row in rows:
        protocol = row.protocol.as_dict()
        data = row.to_json()
        cells.append(
            [row.run, row.method, row.probe, row.protocol.part, row.metric, row.split]
            + [_fmt(row.value), _fmt(row.floor), str(row.n)]
            + [_fmt(protocol.get(name)) for name in protocol_names]
            + [_fmt(data.get(name)) for name in row_names]
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
    table.headline = headline_table(rows)
    out_path = default_comparison_dir(dirs) if out is None else Path(out)
    if out is None or out_path.is_dir() or not out_path.suffix and str(out).endswith(os.sep):
        out_path.mkdir(parents=True, exist_ok=True)
        md_path, csv_path = out_path / "comparison.md", out_path / "comparison.csv"
    else:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        md_path, csv_path = out_path.with_suffix(".md"), out_path.with_suffix(".csv")
    md_path.write_text(markdown + "\n")
    csv_path.write_text(table.csv)
    table.files = [md_path, csv_path]
    png = plot_comparison(rows, md_path.with_suffix(".png"))
    if png is not None:
        table.files.append(png)
    if echo:
        for label in skipped:
            print(f"compare: skipped {label} (no {RESULTS_FILE} yet)")
        print(table.headline)
        print(
            f"full table ({len(cells)} numbers, every protocol field): "
            + ", ".join(str(path) for path in table.files)
        )
        where = str(dirs[0] / RESULTS_FILE) if len(dirs) == 1 else f"each run's {RESULTS_FILE}"
        print(f"numbers with their protocols: {where}")
    return table


def _series_labels(rows: list[ResultRow]) -> dict[int, str]:
    """``run`` or ``run · field=value …`` per row: the protocol fields named are those that
    differ between numbers of one run for one metric (so two evaluations of a run never
    look alike), the same fields in every panel of that run."""
    cells: dict[tuple[object, ...], list[ResultRow]] = {}
    for row in rows:
        cells.setdefault((row.run, row.probe, row.protocol.part, row.metric, row.split), []).append(
            row
        )
    varying: dict[str, set[str]] = {}
    for (run, *_), group in cells.items():
        identities = [dict(protocol_identity(r.protocol)) for r in group]
        for name in identities[0]:
            if len({repr(identity.get(name)) for identity in identities}) > 1:
                varying.setdefault(run, set()).add(name)
    labels = {}
    for row in rows:
        identity = dict(protocol_identity(row.protocol))
        names = sorted(varying.get(row.run, set()))
        detail = " ".join(f"{name}={_fmt(identity.get(name))}" for name in names)
        labels[id(row)] = f"{row.run} · {detail}" if detail else row.run
    return labels


def plot_comparison(rows: list[ResultRow], path: Path, split: str = "val") -> Path | None:
    """Bar chart of the headline ``split`` numbers: one panel per headline metric, one bar
    per series (a run under one protocol; colour = run, hatch = protocol), a legend naming
    each series, the floor (constant predictor / chance) as a dashed line. None if nothing
    to plot."""
    chosen: list[ResultRow] = []
    for probe, metric, _ in HEADLINE:
        for part in HEADLINE_PARTS:
            found = [
                r
                for r in rows
                if (r.probe, r.metric, r.split, r.protocol.part) == (probe, metric, split, part)
            ]
            if found:
                chosen += found
                break
    if not chosen:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    labels = _series_labels(chosen)
    series = list(dict.fromkeys(labels[id(r)] for r in chosen))
    runs = list(dict.fromkeys(r.run for r in chosen))
    colours = plt.get_cmap("tab10" if len(runs) <= 10 else "tab20")
    hatches = ["", "//", "..", "xx", "\\\\", "oo", "--", "++"]
    style: dict[str, tuple[object, str]] = {}
    for name in series:
        run = name.split(" · ", 1)[0]
        variant = sum(1 for other in style if other.split(" · ", 1)[0] == run)
        style[name] = (colours(runs.index(run) % colours.N), hatches[variant % len(hatches)])
    panels: dict[tuple[str, str], list[ResultRow]] = {}
    titles = {(probe, metric): label for probe, metric, label in HEADLINE}
    for row in chosen:
        panels.setdefault((row.probe, row.metric), []).append(row)
    columns = min(4, len(panels))
    lines = (len(panels) + columns - 1) // columns
    figure, axes = plt.subplots(lines, columns, figsize=(3.4 * columns, 2.8 * lines), squeeze=False)
    for axis, ((probe, metric), group) in zip(axes.flat, panels.items(), strict=False):
        group.sort(key=lambda r: series.index(labels[id(r)]))
        for position, row in enumerate(group):
            colour, hatch = style[labels[id(row)]]
            axis.bar(position, row.value, color=colour, hatch=hatch, edgecolor="black", lw=0.4)
        floors = [r.floor for r in group if r.floor is not None]
        if floors:
            axis.axhline(sum(floors) / len(floors), color="black", linestyle="--", linewidth=1)
        axis.set_xticks([])
        axis.set_title(f"{titles[(probe, metric)]} ({group[0].protocol.part}, {split})", fontsize=8)
        axis.tick_params(axis="y", labelsize=7)
    for axis in list(axes.flat)[len(panels) :]:
        axis.axis("off")
    handles = [
        Patch(facecolor=style[name][0], hatch=style[name][1], edgecolor="black", label=name)
        for name in series
    ]
    handles.append(
        matplotlib.lines.Line2D([], [], color="black", linestyle="--", label="floor / chance")
    )
    figure.tight_layout()
    figure.legend(
        handles=handles,
        loc="upper center",
        bbox_to_anchor=(0.5, 0.0),
        fontsize=7,
        ncol=min(3, len(handles)),
        frameon=False,
    )
    figure.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(figure)
    return path
