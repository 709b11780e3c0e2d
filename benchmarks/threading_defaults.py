"""Training speed of each way to start a run, beside a CPU-bound process (issue 15).

The same recipe is pretrained, one after the other, by

- ``console``: the installed ``sslequi-pretrain`` console script,
- ``demo``: ``python launch/demo.py --jobs 1`` (one job gets all the cores, as the console
  script's run does; it is stopped once its pretraining completed),
- ``submitit_local``: ``sslequi-pretrain -m … launcher=submitit_local`` (a submitit job),
- ``console ACTIVE``: the console script with ``OMP_WAIT_POLICY=ACTIVE`` set by the user
  (the control: what the default avoids, and proof that a user's value is kept),

each as a subprocess whose environment has no ``OMP_WAIT_POLICY`` (except the control),
while a load process keeps one core busy. Speed is the median ``time/step_s`` of the logged
windows (every ``train.log_every`` = 10 steps, as the demo) after the first
(``metrics.jsonl``), so start-up, rendering and probing are left
out. With ``--repeats N`` the starts alternate N times and the median is reported (the
control runs once). Printed: seconds per step and each ratio to ``console``, with the load
average before and after; the first three should be
within 10 % of each other. On a machine where other jobs already load the cores, the
figures measure that load too: report them with the conditions.

    python benchmarks/threading_defaults.py --root data/render3d_small --steps 40 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LOAD = "import time\nend = time.time() + 3600\nwhile time.time() < end:\n    pass\n"


def _environment(wait_policy: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    env.update(WANDB_MODE="disabled", WANDB_SILENT="true", SSLEQUI_SWEEP_ID="")
    if wait_policy is not None:
        env["OMP_WAIT_POLICY"] = wait_policy
    return env


def _seconds_per_step(run_dir: Path) -> tuple[float, int]:
    records = [
        json.loads(line)
        for line in (run_dir / "metrics.jsonl").read_text().splitlines()
        if line.strip()
    ]
    times = [r["time/step_s"] for r in records if "time/step_s" in r][1:]  # skip warm-up
    if not times:
        raise RuntimeError(f"{run_dir}: too few logged windows; raise --steps")
    return statistics.median(times), len(times)


def _pretraining_done(folder: Path) -> bool:
    for path in folder.rglob("run.json"):
        if json.loads(path.read_text()).get("status") == "completed":
            return True
    return False


def _run(command: list[str], env: dict[str, str], log: Path, stop_after: Path | None) -> float:
    """Run ``command``; with ``stop_after``, end it once a run under that folder completed
    its pretraining (the demo goes on to probe, which is not timed here)."""
    start = time.perf_counter()
    with log.open("w") as stream:
        process = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=stream, stderr=subprocess.STDOUT
        )
        while process.poll() is None:
            if stop_after is not None and _pretraining_done(stop_after):
                process.terminate()
                process.wait()
                return time.perf_counter() - start
            time.sleep(1.0)
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({process.returncode}); see {log}")
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=REPO / "data" / "render3d_small")
    parser.add_argument("--recipe", default="vicreg_3diebench_cpu")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--out", type=Path, default=None, help="default: a temporary folder")
    parser.add_argument("--no-load", action="store_true", help="no CPU-bound load process")
    parser.add_argument("--repeats", type=int, default=1, help="interleaved repetitions")
    parser.add_argument("--no-control", action="store_true", help="skip the ACTIVE control")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    if not (root / "train_images.npy").exists():
        print(f"no rendered set at {root}: sslequi-data render3d --preset small --out {root}")
        return 2
    out = Path(tempfile.mkdtemp(prefix="sslequi-threads-")) if args.out is None else args.out
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    common = [
        f"experiment={args.recipe}",
        f"dataset.root={root}",
        f"train.steps={args.steps}",
        f"train.batch_size={args.batch_size}",
        "train.device=cpu",
    ]
    console = shutil.which("sslequi-pretrain")
    if console is None:
        print("sslequi-pretrain is not installed (pip install -e .)")
        return 2

    def cases(folder: Path, control: bool) -> list[tuple[str, str | None, list[str]]]:
        chosen: list[tuple[str, str | None, list[str]]] = [
            ("console", None, [console, *common, f"run_dir={folder}/console"]),
            (
                "demo",
                None,
                [
                    sys.executable,
                    "launch/demo.py",
                    f"--root={root}",
                    f"--out={folder}/demo",
                    "--methods",
                    args.recipe.split("_")[0],
                    f"--steps={args.steps}",
                    f"--batch-size={args.batch_size}",
                    "--jobs=1",
                ],
            ),
            (
                "submitit_local",
                None,
                [
                    console,
                    "-m",
                    *common,
                    f"output_root={folder}/submitit_local",
                    "launcher=submitit_local",
                    "launcher.sweep_name=threads",
                ],
            ),
        ]
        if control:
            chosen.append(
                ("console ACTIVE", "ACTIVE", [console, *common, f"run_dir={folder}/console_ACTIVE"])
            )
        return chosen

    load_before = os.getloadavg()
    load = None if args.no_load else subprocess.Popen([sys.executable, "-c", LOAD])
    measured: dict[str, list[float]] = {}
    try:
        for repeat in range(args.repeats):  # interleaved, so slow drifts hit every start
            folder = out / f"repeat{repeat}"
            folder.mkdir(exist_ok=True)
            for name, policy, command in cases(folder, control=repeat == 0 and not args.no_control):
                slug = name.replace(" ", "_")
                stop = folder / "demo" if name == "demo" else None
                wall = _run(command, _environment(policy), folder / f"{slug}.log", stop)
                run_dir = next(p.parent for p in (folder / slug).rglob("metrics.jsonl"))
                per_step, windows = _seconds_per_step(run_dir)
                measured.setdefault(name, []).append(per_step)
                print(
                    f"repeat {repeat} {name}: {per_step:.3f} s/step ({windows} windows), "
                    f"{wall:.0f} s wall",
                    flush=True,
                )
    finally:
        if load is not None:
            load.kill()
            load.wait()
    load_after = os.getloadavg()
    medians = {name: statistics.median(values) for name, values in measured.items()}
    base = medians["console"]
    print(
        f"\n{args.recipe}, batch {args.batch_size}, {args.steps} steps, {args.repeats} repeat(s), "
        f"{os.cpu_count()} CPUs, load process: {'no' if args.no_load else 'one busy core'}; "
        f"load average before {load_before[0]:.1f}, after {load_after[0]:.1f}"
    )
    print("| start | s/step (median) | range | ratio to console |\n|---|---|---|---|")
    for name, values in measured.items():
        print(
            f"| {name} | {medians[name]:.3f} | {min(values):.3f}–{max(values):.3f} | "
            f"{medians[name] / base:.2f} |"
        )
    defaults = [medians[name] for name in ("console", "demo", "submitit_local")]
    spread = max(defaults) / min(defaults)
    print(f"\ndefault starts within {100 * (spread - 1):.0f} % of each other (target ≤ 10 %)")
    print(f"logs and run directories: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
