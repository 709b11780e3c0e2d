"""The dashboard's data: runs, seed groups, leaderboard cells, curves and provenance.

Groups: runs whose resolved configs (``config.yaml``) differ only in ``seed`` (and in keys
that never change what a run computes: ``sslequi.config.RUN_INVARIANT_KEYS``, and the
experiment's name) form one group. Cells: the numbers of a group for one (probe, part,
metric, split) *and one protocol* are averaged over its runs (mean ± sample std); two
protocols are never averaged together. A protocol is every field of the row's
``Protocol`` except the fit's outcome (``results.protocol_identity``), so fields added to
``Protocol`` later separate numbers automatically, and fields added to ``ResultRow`` are
carried into the page's row table.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sslequi.evaluation.results import (
    HEADLINE,
    RESULTS_FILE,
    ResultRow,
    latest,
    load_results,
    protocol_identity,
)

PAYLOAD_FORMAT = 1
MAX_CURVE_POINTS = 200
# Row fields the page gets as columns of its own (the rest of ResultRow follows them).
ROW_FIELDS = ("probe", "part", "metric", "split", "value", "floor", "n", "evaluation")
# Config keys that do not define a group besides RUN_INVARIANT_KEYS.
UNGROUPED_KEYS = ("seed", "experiment")


class DashboardInputError(ValueError):
    """An input that is neither a run, a sweep, nor a folder holding runs."""


@dataclass
class RunRecord:
    """Everything the page shows about one run directory."""

    id: str
    path: Path
    label: str
    state: str
    scheduler: str
    step: int
    total_steps: int
    evaluation: str
    info: dict[str, Any]
    config: dict[str, Any]
    rows: list[ResultRow] = field(default_factory=list)
    curves: dict[str, list[float | None]] = field(default_factory=dict)
    group: str = ""


# ----------------------------------------------------------------------------- inputs


def discover(inputs: Sequence[str | Path]) -> list[tuple[Path, Any]]:
    """(run directory, sweep status or None) for every run under ``inputs``, in order.

    An input is a run directory, a sweep (``sweep.json`` or its folder: the scheduler's
    view comes with each run) or any folder holding run directories.
    """
    from sslequi.launcher.sweeps import (
        MANIFEST_NAME,
        ManifestError,
        SweepManifest,
        find_run_dirs,
        is_run_dir,
        sweep_status,
    )

    found: dict[Path, Any] = {}
    for item in inputs:
        path = Path(item)
        if not path.exists():
            raise DashboardInputError(f"{path} does not exist")
        if path.is_file() or (path / MANIFEST_NAME).exists():
            try:
                manifest = SweepManifest.read(path)
            except ManifestError as error:
                raise DashboardInputError(str(error)) from None
            for status in sweep_status(manifest):
                found.setdefault(Path(status.run.run_dir).resolve(), status)
        elif is_run_dir(path):
            found.setdefault(path.resolve(), None)
        else:
            run_dirs = find_run_dirs(path)
            if not run_dirs:
                raise DashboardInputError(f"{path} holds no run directory (run.json)")
            for run_dir in run_dirs:
                found.setdefault(run_dir.resolve(), None)
    return list(found.items())


def _labels(paths: Sequence[Path]) -> list[str]:
    if len(paths) == 1:
        return [paths[0].name]
    common = Path(os.path.commonpath([str(p) for p in paths]))
    return [str(p.relative_to(common)) or p.name for p in paths]


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for key, value in data.items():
            out.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(data, list):
        return {prefix: json.dumps(data)}
    return {prefix: data}


def _read_config(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "config.yaml"
    if not path.exists():
        return {}
    from omegaconf import OmegaConf

    container = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    return _flatten(container) if isinstance(container, dict) else {}


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def read_curves(run_dir: Path, max_points: int = MAX_CURVE_POINTS) -> dict[str, list[float | None]]:
    """``step`` and every numeric key of ``metrics.jsonl``, at most ``max_points`` points
    (evenly strided, the last one kept), values to 5 significant digits."""
    from sslequi.train.rundir import read_metrics

    try:
        records = read_metrics(run_dir)
    except (OSError, json.JSONDecodeError):
        return {}
    records = [r for r in records if _number(r.get("step")) is not None]
    if not records:
        return {}
    stride = max(1, math.ceil(len(records) / max_points))
    chosen = records[::stride]
    if chosen[-1] is not records[-1]:
        chosen.append(records[-1])
    keys = list(dict.fromkeys(k for r in chosen for k, v in r.items() if _number(v) is not None))
    curves: dict[str, list[float | None]] = {}
    for key in keys:
        values = [_number(r.get(key)) for r in chosen]
        curves[key] = [None if v is None else float(f"{v:.5g}") for v in values]
    return curves


def read_run(run_dir: Path, status: Any, run_id: str, label: str) -> RunRecord:
    """One run directory as the page shows it (``status``: its sweep status, if any)."""
    from sslequi.launcher.sweep_eval import eval_state
    from sslequi.launcher.sweeps import last_logged_step

    info = _read_json(run_dir / "run.json")
    evaluation = eval_state(run_dir)
    try:
        rows = latest(load_results(run_dir)) if (run_dir / RESULTS_FILE).exists() else []
    except (OSError, ValueError, KeyError, TypeError) as error:  # one bad file, not the page
        rows, evaluation = [], f"unreadable {RESULTS_FILE}: {error}"
    step = max(int(info.get("step") or 0), last_logged_step(run_dir))
    return RunRecord(
        id=run_id,
        path=run_dir,
        label=label,
        state=status.state if status is not None else str(info.get("status") or "unknown"),
        scheduler=status.scheduler_state if status is not None else "-",
        step=step,
        total_steps=int(info.get("total_steps") or 0),
        evaluation=evaluation,
        info=info,
        config=_read_config(run_dir),
        rows=rows,
        curves=read_curves(run_dir),
    )


# ----------------------------------------------------------------------------- groups


def group_key(config: dict[str, Any]) -> str:
    """What defines a run's group: its flattened config without seed and run-invariant keys."""
    from sslequi.config import RUN_INVARIANT_KEYS

    ignored = (*RUN_INVARIANT_KEYS, *UNGROUPED_KEYS)
    kept = {
        key: value
        for key, value in config.items()
        if not any(key == k or key.startswith(k + ".") for k in ignored)
    }
    return json.dumps(kept, sort_keys=True, default=str)


def _varying(configs: Iterable[dict[str, Any]]) -> list[str]:
    configs = list(configs)
    keys = sorted({k for c in configs for k in c})
    return [k for k in keys if len({json.dumps(c.get(k), default=str) for c in configs}) > 1]


def assign_groups(runs: list[RunRecord]) -> list[dict[str, Any]]:
    """Group runs (module docstring); label each group by its recipe (or method), plus the
    config keys that tell apart groups that share one."""
    by_key: dict[str, list[RunRecord]] = {}
    for run in runs:
        key = group_key(run.config) if run.config else f"no-config:{run.path}"
        by_key.setdefault(key, []).append(run)
    members = list(by_key.values())
    identities = [{} if k.startswith("no-config:") else json.loads(k) for k in by_key]
    bases = []
    for group, identity in zip(members, identities, strict=True):
        experiments = {r.config.get("experiment") for r in group}
        experiment = next(iter(experiments)) if len(experiments) == 1 else None
        if experiment not in (None, "default"):
            bases.append(str(experiment))
        else:
            bases.append(str(identity.get("method.name") or group[0].label))
    labels = []
    for base, identity in zip(bases, identities, strict=True):
        sharing = [i for i, other in enumerate(bases) if other == base]
        label = base
        if len(sharing) > 1:
            keys = _varying(identities[i] for i in sharing)[:3]
            label = " ".join([base, *(f"{k}={identity.get(k)}" for k in keys)])
        labels.append(label)
    groups = []
    for index, (group, identity, label) in enumerate(zip(members, identities, labels, strict=True)):
        if labels.count(label) > 1:
            label = f"{label} #{index}"
        group_id = f"g{index}"
        for run in group:
            run.group = group_id
        groups.append(
            {
                "id": group_id,
                "label": label,
                "runs": [run.id for run in group],
                "seeds": sorted({str(r.config.get("seed")) for r in group if "seed" in r.config}),
                "method": identity.get("method.name") or "-",
            }
        )
    return groups


# ----------------------------------------------------------------------------- cells


# A probe protocol ("family"): a protocol without the number's own coordinates.
NOT_FAMILY = ("probe", "part", "metric_definition")
SALIENT = ("protocol", "head", "epochs", "feature_mode", "bn_mode", "selection")


def _family_labels(families: list[dict[str, Any]], probes: list[str]) -> list[str]:
    """``probe (salient settings) [fields that differ between families of this probe]``."""
    labels = []
    for index, family in enumerate(families):
        same = [f for f, probe in zip(families, probes, strict=True) if probe == probes[index]]
        varying = [k for k in family if len({json.dumps(f.get(k), default=str) for f in same}) > 1]
        salient = ", ".join(f"{k}={family[k]}" for k in SALIENT if k in family and k not in varying)
        detail = ", ".join(f"{k}={family[k]}" for k in varying[:5])
        labels.append(
            probes[index]
            + (f" ({salient})" if salient else "")
            + (f" [{detail}]" if detail else "")
        )
    return labels


@dataclass
class Cells:
    """Leaderboard cells and the protocols they were measured under."""

    cells: list[dict[str, Any]]
    protocols: list[dict[str, Any]]  # distinct protocol identities (results.protocol_identity)
    families: list[dict[str, Any]]  # the same without probe, part and metric definition
    family_labels: list[str]
    protocol_family: list[int]  # protocol index → family index
    row_protocol: dict[int, int]  # id(row) → protocol index


def build_cells(runs: list[RunRecord]) -> Cells:
    """One cell per (group, probe, part, metric, split, protocol): mean ± std over its runs
    (each run's latest evaluation under that protocol). Protocols are never mixed."""
    protocols: list[dict[str, Any]] = []
    families: list[dict[str, Any]] = []
    protocol_family: list[int] = []
    index_of: dict[tuple[Any, ...], int] = {}
    family_of: dict[str, int] = {}
    row_protocol: dict[int, int] = {}
    collected: dict[tuple[Any, ...], dict[str, ResultRow]] = {}
    for run in runs:
        for row in run.rows:
            identity = protocol_identity(row.protocol)
            if identity not in index_of:
                index_of[identity] = len(protocols)
                protocols.append(dict(identity))
                family = {k: v for k, v in identity if k not in NOT_FAMILY}
                family_key = json.dumps([row.probe, family], sort_keys=True, default=str)
                if family_key not in family_of:
                    family_of[family_key] = len(families)
                    families.append({"probe": row.probe, **family})
                protocol_family.append(family_of[family_key])
            protocol = index_of[identity]
            row_protocol[id(row)] = protocol
            key = (run.group, row.probe, row.protocol.part, row.metric, row.split, protocol)
            chosen = collected.setdefault(key, {})
            if run.id not in chosen or row.evaluation >= chosen[run.id].evaluation:
                chosen[run.id] = row
    family_labels = _family_labels(
        [{k: v for k, v in f.items() if k != "probe"} for f in families],
        [str(f["probe"]) for f in families],
    )
    cells = []
    for (group, probe, part, metric, split, protocol), by_run in collected.items():
        values = [row.value for row in by_run.values()]
        floors = [row.floor for row in by_run.values() if row.floor is not None]
        cells.append(
            {
                "group": group,
                "probe": probe,
                "part": part,
                "metric": metric,
                "split": split,
                "protocol": protocol,
                "family": protocol_family[protocol],
                "dataset": str(protocols[protocol].get("dataset", "-")),
                "mean": statistics.fmean(values),
                "std": statistics.stdev(values) if len(values) > 1 else None,
                "n": len(values),
                "floor": statistics.fmean(floors) if floors else None,
                "runs": list(by_run),
                "values": values,
            }
        )
    return Cells(cells, protocols, families, family_labels, protocol_family, row_protocol)


# ----------------------------------------------------------------------------- payload


def _round(value: Any) -> Any:
    if isinstance(value, float):
        return float(f"{value:.6g}") if math.isfinite(value) else None
    return value


def _docs_link() -> str | None:
    path = Path(__file__).resolve().parents[2] / "docs" / "evaluation.md"
    return path.as_uri() if path.exists() else None


def build_payload(inputs: Sequence[str | Path], title: str | None = None) -> dict[str, Any]:
    """Everything the page shows, as one JSON-ready dict (see the module docstring)."""
    discovered = discover(inputs)
    if not discovered:
        raise DashboardInputError(f"no run directory in {list(map(str, inputs))}")
    paths = [path for path, _ in discovered]
    runs = [
        read_run(path, status, f"r{index}", label)
        for index, ((path, status), label) in enumerate(
            zip(discovered, _labels(paths), strict=True)
        )
    ]
    groups = assign_groups(runs)
    measured = build_cells(runs)
    varying = _varying(r.config for r in runs if r.config)
    extra_fields: list[str] = []
    for run in runs:
        for row in run.rows:
            for name in row.to_json():
                if name not in (*ROW_FIELDS, "protocol", "run", "method", "created"):
                    if name not in extra_fields:
                        extra_fields.append(name)
    row_fields = ["run", *ROW_FIELDS, "protocol", "checkpoint", "outcome", *extra_fields]
    row_values = []
    for run in runs:
        for row in run.rows:
            data = row.to_json()
            outcome = ";".join(
                item
                for item in str(row.protocol.extra).split(";")
                if item.split("=", 1)[0] in ("epochs_run", "best_epoch")
            )
            steps = getattr(row.protocol, "steps", None)
            if steps:
                outcome = f"{outcome};steps={steps}".strip(";")
            data["part"] = row.protocol.part
            row_values.append(
                [run.id]
                + [_round(data.get(name)) for name in ROW_FIELDS]
                + [measured.row_protocol[id(row)], row.protocol.checkpoint, outcome]
                + [_round(data.get(name)) for name in extra_fields]
            )
    curve_keys = list(dict.fromkeys(k for r in runs for k in r.curves if k != "step"))
    payload: dict[str, Any] = {
        "format": PAYLOAD_FORMAT,
        "title": title or "sslequi dashboard",
        "sources": [str(Path(item).resolve()) for item in inputs],
        "docs": {"evaluation": _docs_link()},
        "headline": [list(item) for item in HEADLINE],
        "runs": [
            {
                "id": run.id,
                "label": run.label,
                "dir": str(run.path),
                "group": run.group,
                "state": run.state,
                "scheduler": run.scheduler,
                "reason": str(run.info.get("reason") or ""),
                "step": run.step,
                "total_steps": run.total_steps,
                "eval": run.evaluation,
                "method": run.config.get("method.name") or "-",
                "seed": run.config.get("seed"),
                "experiment": run.config.get("experiment") or run.info.get("experiment") or "-",
                "sweep_id": run.info.get("sweep_id") or "-",
                "wandb_id": run.info.get("wandb_id") or "-",
                "attempts": run.info.get("attempts") or 0,
                "code_version": run.info.get("code_version") or "-",
                "diff": {key: run.config.get(key) for key in varying},
            }
            for run in runs
        ],
        "groups": groups,
        "protocols": measured.protocols,
        "protocol_family": measured.protocol_family,
        "families": measured.families,
        "family_labels": measured.family_labels,
        "cells": [{k: _round(v) for k, v in cell.items()} for cell in measured.cells],
        "rows": {"fields": row_fields, "values": row_values},
        "curves": {"keys": curve_keys, "runs": {run.id: run.curves for run in runs}},
    }
    payload["version"] = hashlib.sha1(
        json.dumps(payload, sort_keys=True, default=str).encode()
    ).hexdigest()[:16]
    payload["generated"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return payload


def headline_text(payload: dict[str, Any]) -> str:
    """The compact table ``sslequi-dashboard`` prints: one line per group, the headline
    val metrics (full part) as mean ± std over its seeds (n)."""
    cells = [c for c in payload["cells"] if c["split"] == "val"]
    columns = []
    for probe, metric, label in payload["headline"]:
        matching = [c for c in cells if c["probe"] == probe and c["metric"] == metric]
        if matching:
            columns.append((probe, metric, label))
    header = ["group", "runs", *[label for _, _, label in columns]]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    several = False
    for group in payload["groups"]:
        values = []
        for probe, metric, _ in columns:
            found = [
                c
                for c in cells
                if c["group"] == group["id"] and c["probe"] == probe and c["metric"] == metric
            ]
            for part in ("full", "equivariant", "invariant"):
                in_part = [c for c in found if c["part"] == part]
                if in_part:
                    found = in_part
                    break
            if not found:
                values.append("–")
                continue
            several = several or len(found) > 1
            cell = found[0]
            spread = "" if cell["std"] is None else f" ± {cell['std']:.3f}"
            values.append(f"{cell['mean']:.3f}{spread}" + ("*" if len(found) > 1 else ""))
        lines.append("| " + " | ".join([group["label"], str(len(group["runs"])), *values]) + " |")
    if several:
        lines.append("* several protocols: the first is shown; the page separates them")
    return "\n".join(lines)
