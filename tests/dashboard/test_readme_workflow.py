"""The README's "Sweep → evaluate → dashboard" commands, run as written, at tiny scale.

The README's code block runs in bash in an empty folder: render the tiny set, a
``submitit_local`` sweep of two recipes × two seeds (5 steps) whose jobs evaluate their
runs, ``sslequi-sweep status``, ``sslequi-sweep evaluate`` (one more probe), and
``sslequi-dashboard``. Then: one sweep folder and manifest with four distinct runs, every
run completed and evaluated by both paths, wandb runs grouped by the sweep, tagged by
method and holding the evaluation numbers (a stand-in ``wandb`` module on the jobs'
``PYTHONPATH`` records the calls), and the page passes the browser checks of
``test_page.check_page`` and its own self-test.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import browser
import test_page

from sslequi.evaluation.results import load_results
from sslequi.launcher.sweep_eval import read_eval_status
from sslequi.launcher.sweeps import SweepManifest

REPO = Path(__file__).resolve().parents[2]
SECTION = "## Sweep → evaluate → dashboard"

FAKE_WANDB = '''"""Stand-in for wandb: each finished run appends its init arguments and summary keys."""
import json
import os


class _Run:
    def __init__(self, kwargs):
        self.kwargs = kwargs
        self.summary = {}

    def log(self, record, step=None):
        pass

    def finish(self, exit_code=0):
        entry = {k: self.kwargs.get(k) for k in ("id", "group", "tags", "resume")}
        entry["summary"] = sorted(self.summary)
        with open(os.environ["FAKE_WANDB_LOG"], "a") as stream:
            stream.write(json.dumps(entry) + "\\n")


def init(**kwargs):
    return _Run(kwargs)
'''


def readme_commands() -> str:
    """The first ``bash`` block of the README's sweep → evaluate → dashboard section."""
    text = (REPO / "README.md").read_text()
    section = text[text.index(SECTION) :]
    start = section.index("```bash\n") + len("```bash\n")
    return section[start : section.index("```", start)]


def test_readme_sweep_evaluate_dashboard(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    fake = tmp_path / "fake_wandb"
    fake.mkdir()
    (fake / "wandb.py").write_text(FAKE_WANDB)
    wandb_log = tmp_path / "wandb.jsonl"
    env = {k: v for k, v in os.environ.items() if k not in ("SSLEQUI_SWEEP_ID", "WANDB_MODE")}
    env.update(
        PYTHONPATH=os.pathsep.join([str(fake), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        FAKE_WANDB_LOG=str(wandb_log),
        OMP_NUM_THREADS="1",
    )
    commands = readme_commands()
    assert "sslequi-pretrain -m" in commands and "sslequi-dashboard" in commands
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", commands],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]

    # One sweep folder, one manifest, four distinct runs named by recipe and seed.
    (sweep,) = (work / "runs" / "sweeps").iterdir()
    assert sorted(p.name for p in (work / "runs").iterdir()) == ["sweeps"]
    manifest = SweepManifest.read(sweep)
    names = sorted(run.run_slug for run in manifest.runs)
    assert names == [
        f"experiment-{recipe}_3diebench_cpu_seed-{seed}"
        for recipe in ("sie", "vicreg")
        for seed in (0, 1)
    ]
    assert manifest.evaluate == [
        "probes=[linear,rotation,color]",
        "parts=[full]",
        "probe.small_set.min_steps=0",
        "probe.small_set.linear_min_steps=0",
    ]

    # Evaluated by the jobs (linear, rotation, color) and by sslequi-sweep evaluate (knn).
    for run in manifest.runs:
        run_dir = Path(run.run_dir)
        assert json.loads((run_dir / "run.json").read_text())["status"] == "completed"
        rows = load_results(run_dir)
        assert {row.probe for row in rows} == {"linear", "rotation", "color", "knn"}
        assert {row.protocol.part for row in rows if row.probe != "knn"} == {"full"}
        assert sorted({row.evaluation for row in rows}) == [1, 2]
        trained = [row for row in rows if row.probe != "knn"]  # the jobs' shortened heads
        assert {row.protocol.min_steps for row in trained} == {0}
        status = read_eval_status(run_dir)
        assert status is not None and status.state == "completed"

    # Printed: the status table, the evaluation's headline and paths, the page's path.
    assert output.count("completed  exited") >= 4
    assert f"{sweep}/results/comparison.md" in output
    page = sweep / "dashboard" / "index.html"
    assert f"wrote {page}" in output

    # wandb: grouped by the sweep, tagged by method; evaluation numbers in the run's summary.
    calls = [json.loads(line) for line in wandb_log.read_text().splitlines()]
    training = [c for c in calls if c["group"] is not None]
    assert len(training) == 4 and {c["group"] for c in training} == {"tiny"}
    assert sorted(tuple(c["tags"]) for c in training) == [
        ("sie",),
        ("sie",),
        ("vicreg",),
        ("vicreg",),
    ]
    for call in training:
        summaries = [c["summary"] for c in calls if c["id"] == call["id"] and c["group"] is None]
        keys = {key for summary in summaries for key in summary}
        assert "eval/linear/full/top1/val" in keys and "eval/knn/full/top1/val" in keys

    # The page, in a real browser.
    root = test_page.check_page(browser.dump_dom(page.as_uri() + "#selftest"), runs=4, groups=2)
    selftest = root.by_id("selftest")
    assert selftest is not None and selftest.attrs.get("data-outcome") == "pass", selftest.text
