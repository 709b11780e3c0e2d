"""The dashboard page in a real browser (Debian's Chromium, headless).

Checked on the DOM after the page's scripts ran: one leaderboard row per seed group, a drawn
mark (plotly's SVG point or line path, tagged with its run) for every run in both plots,
the page's own self-test (sort and filter its leaderboard, ``#selftest``) passing, and
zero errors recorded by the page's ``window.onerror`` / ``console.error`` hook, which is
itself shown to record errors. ``--serve`` is shown to update an open page when a run's
``results.json`` appears.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import browser
import fakes

from sslequi.dashboard import cli as dashboard_cli
from sslequi.dashboard.data import build_payload
from sslequi.dashboard.page import render_page
from sslequi.evaluation.results import append_results


def marks_per_run(root: browser.Element, plot_id: str) -> dict[str, int]:
    """Drawn marks (non-empty SVG point / line paths) per run in the plot ``plot_id``."""
    plot = root.by_id(plot_id)
    assert plot is not None, f"no #{plot_id}"
    counts: dict[str, int] = {}
    for trace in plot.find_all(lambda n: n.tag == "g" and "data-run" in n.attrs):
        drawn = trace.find_all(
            lambda n: (
                n.tag == "path"
                and bool({"point", "js-line"} & n.classes())
                and n.attrs.get("d", "").startswith("M")
            )
        )
        run = trace.attrs["data-run"]
        counts[run] = counts.get(run, 0) + len(drawn)
    return counts


def check_page(dom: str, runs: int, groups: int) -> browser.Element:
    """The assertions every rendered page must pass (module docstring)."""
    root = browser.parse(dom)
    errors = root.by_id("errors")
    assert errors is not None and errors.attrs.get("data-hook") == "installed"
    assert errors.attrs.get("data-count") == "0", errors.text
    body = root.find(lambda n: n.tag == "body")
    assert body is not None and body.attrs.get("data-ready") == "1"
    rows = root.by_id("leaderboard").find_all(lambda n: n.tag == "tr" and "data-group" in n.attrs)  # type: ignore[union-attr]
    assert len(rows) == groups
    assert len({row.attrs["data-group"] for row in rows}) == groups
    run_ids = [f"r{i}" for i in range(runs)]
    for plot_id in ("tradeoff", "curves"):
        marks = marks_per_run(root, plot_id)
        assert all(marks.get(run, 0) >= 1 for run in run_ids), (plot_id, marks)
    # the group means are drawn in the trade-off plot too
    assert all(marks_per_run(root, "tradeoff").get(f"group:g{i}", 0) >= 1 for i in range(groups))
    return root


def test_page_sorts_filters_and_draws_every_run_without_errors(tmp_path: Path) -> None:
    fakes.make_sweep(tmp_path / "sweep")
    out = tmp_path / "out"
    assert dashboard_cli.main([str(tmp_path / "sweep"), "--out", str(out)]) == 0
    dom = browser.dump_dom((out / "index.html").as_uri() + "#selftest")
    root = check_page(dom, runs=4, groups=2)
    selftest = root.by_id("selftest")
    assert selftest is not None
    checks = json.loads(selftest.text)
    assert selftest.attrs.get("data-outcome") == "pass", [c for c in checks if not c["ok"]]
    names = " ".join(check["name"] for check in checks)
    for step in (
        "sort descending",
        "sort ascending",
        "filter dataset",
        "filter R²",
        "filter protocol",
    ):
        assert step in names
    # Mean ± std over the two seeds of each group, with the floor beside it.
    cells = root.by_id("leaderboard").find_all(lambda n: n.tag == "td" and "data-value" in n.attrs)  # type: ignore[union-attr]
    top1 = {float(c.attrs["data-value"]) for c in cells if c.attrs["data-metric"] == "top1"}
    expected = {
        round((fakes.value(m, "top1", 0) + fakes.value(m, "top1", 1)) / 2, 6) for m in fakes.METHODS
    }
    assert {round(v, 6) for v in top1} == expected
    assert "floor 0.250" in dom and "± 0.014" in dom


def test_the_error_hook_records_errors(tmp_path: Path) -> None:
    """Zero recorded errors means something: a page with two errors records two."""
    fakes.make_run(tmp_path / "runs", "one", "sie", 0)
    page = render_page(build_payload([tmp_path / "runs"]))
    broken = page.replace(
        "</body>",
        '<script>console.error("deliberate"); window.setTimeout(function () { undefinedFunction(); }, 0);'
        "</script></body>",
    )
    (tmp_path / "broken.html").write_text(broken)
    root = browser.parse(browser.dump_dom((tmp_path / "broken.html").as_uri()))
    errors = root.by_id("errors")
    assert errors is not None and errors.attrs["data-count"] == "2", errors.text
    assert "deliberate" in errors.text and "undefinedFunction" in errors.text


def test_serve_updates_the_open_page_when_results_appear(tmp_path: Path) -> None:
    runs = tmp_path / "sweep"
    fakes.make_run(runs, "sie_s0", "sie", 0)
    late = fakes.make_run(runs, "sie_s1", "sie", 1, evaluated=False)
    fakes.make_run(runs, "vicreg_s0", "vicreg", 0)
    server = subprocess.Popen(
        ["sslequi-dashboard", str(runs), "--serve", "--port", "0", "--interval", "0.5"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines = []
        for line in server.stdout:  # type: ignore[union-attr]
            lines.append(line)
            if line.startswith("serving http://"):
                break
        else:
            raise AssertionError("".join(lines))
        url = line.split()[1]
        with browser.DevTools() as chrome:
            tab = chrome.open(url)
            chrome.wait_for(
                tab, "document.body && document.body.getAttribute('data-ready')", what="the page"
            )
            cell = "document.querySelector(\"#leaderboard tr[data-group='g0'] td[data-metric='top1']\")"
            assert chrome.evaluate(tab, f"{cell}.textContent").count("n=1") == 1
            version = chrome.evaluate(tab, "document.body.getAttribute('data-version')")
            evaluations = "Array.from(document.querySelectorAll('#runs tbody tr')).map(r => r.children[4].textContent)"
            assert chrome.evaluate(tab, evaluations) == ["6 rows", "-", "6 rows"]

            append_results(late, fakes.rows_for("sie", 1))  # the run's evaluation lands

            chrome.wait_for(
                tab,
                f"document.body.getAttribute('data-version') !== {json.dumps(version)} && "
                f"{cell}.textContent.includes('n=2')",
                timeout_s=60,
                what="the page to show the new results",
            )
            assert chrome.evaluate(tab, evaluations) == ["6 rows", "6 rows", "6 rows"]
            mean = (fakes.value("sie", "top1", 0) + fakes.value("sie", "top1", 1)) / 2
            assert float(chrome.evaluate(tab, f"{cell}.getAttribute('data-value')")) == mean
            assert (
                chrome.evaluate(tab, "document.getElementById('errors').getAttribute('data-count')")
                == "0"
            )
    finally:
        server.terminate()
        server.wait(timeout=30)
