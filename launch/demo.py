"""The end-to-end demo: pretrain on the built-in synthetic 3D set for a few CPU seconds and
print a small table (a thin script over ``sslequi``; README "Quick start").

    python launch/demo.py                 # VICReg, 20 steps
    python launch/demo.py --steps 100 --methods vicreg simclr byol
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from sslequi.cli.pretrain import compose_config
from sslequi.train.run import pretrain
from sslequi.train.rundir import read_metrics

# Small heads so a CPU run takes seconds; everything else is the methods' defaults.
HEADS = {
    "vicreg": ["method.projector=256-256"],
    "simclr": ["method.projector=256-256"],
    "byol": [
        "method.projector_hidden=256",
        "method.projector_dim=64",
        "method.predictor_hidden=256",
    ],
    "simsiam": [
        "method.projector_hidden=256",
        "method.projector_dim=64",
        "method.predictor_hidden=64",
    ],
}


def run_demo(methods: list[str], steps: int, output_root: Path) -> list[dict[str, object]]:
    rows = []
    for method in methods:
        overrides = [
            f"method={method}",
            *HEADS.get(method, []),
            "backbone=resnet18_tiny",
            "dataset=synthetic",
            "dataset.resolution=32",
            f"train.steps={steps}",
            "train.batch_size=32",
            "train.log_every=5",
            "train.online_probe_every=5",
            "train.resume=never",
            f"run_dir={output_root / 'demo' / method}",
        ]
        cfg = compose_config(overrides)
        start = time.monotonic()
        run_dir = pretrain(cfg)
        seconds = time.monotonic() - start
        records = read_metrics(run_dir)
        probe = [r["probe/acc"] for r in records if "probe/acc" in r]
        rows.append(
            {
                "method": method,
                "steps": records[-1]["step"],
                "first loss": records[0]["loss"],
                "last loss": records[-1]["loss"],
                "online probe acc": probe[-1] if probe else float("nan"),
                "seconds": seconds,
                "run dir": str(run_dir),
            }
        )
    return rows


def print_table(rows: list[dict[str, object]]) -> None:
    headers = list(rows[0])
    cells = [[f"{v:.4g}" if isinstance(v, float) else str(v) for v in row.values()] for row in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in cells:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=["vicreg"])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--output-root", type=Path, default=Path("runs"))
    args = parser.parse_args()
    os.environ.setdefault("WANDB_SILENT", "true")  # the offline wandb run is still written
    rows = run_demo(args.methods, args.steps, args.output_root)
    print()
    print_table(rows)


if __name__ == "__main__":
    main()
