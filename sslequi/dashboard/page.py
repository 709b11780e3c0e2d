"""The dashboard page: one HTML file with everything inlined (works offline, copied anywhere).

plotly.js comes from the pinned ``plotly`` Python package (``plotly.offline.get_plotlyjs``,
about 4.8 MB); the page's own script and style are ``static/dashboard.{js,css}``; the data
is the payload of ``sslequi.dashboard.data`` in a ``<script type="application/json">``.
Before anything else the page installs ``window.onerror`` and wraps ``console.error`` to
record every error into the hidden ``#errors`` element (``data-count``; ``data-hook`` says
the hook ran), which the browser tests read.
"""

from __future__ import annotations

import html
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

STATIC = Path(__file__).resolve().parent / "static"

ERROR_RECORDER = r"""
window.__dashboardErrors = [];
(function () {
  function record(text) {
    window.__dashboardErrors.push(String(text));
    var box = document.getElementById("errors");
    if (box) {
      box.textContent = window.__dashboardErrors.join("\n");
      box.setAttribute("data-count", String(window.__dashboardErrors.length));
    }
  }
  window.onerror = function (message, source, line, column) {
    record("error: " + message + " (" + source + ":" + line + ":" + column + ")");
  };
  window.addEventListener("unhandledrejection", function (event) {
    record("unhandled rejection: " + (event.reason && event.reason.stack || event.reason));
  });
  var original = console.error;
  console.error = function () {
    record("console.error: " + Array.prototype.map.call(arguments, String).join(" "));
    return original.apply(console, arguments);
  };
  document.addEventListener("DOMContentLoaded", function () {
    var box = document.getElementById("errors");
    box.textContent = window.__dashboardErrors.join("\n");
    box.setAttribute("data-count", String(window.__dashboardErrors.length));
    box.setAttribute("data-hook", "installed");
  });
})();
"""

TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="sslequi-dashboard (plotly.js {plotly_version})">
<title>{title}</title>
<script>{recorder}</script>
<style>{css}</style>
<script>{plotly}</script>
</head>
<body>
<header><h1>{title}</h1><div id="meta"></div></header>
<section id="leaderboard-section">
<h2>Leaderboard</h2>
<div id="filters"></div>
<div class="table-wrap"><table id="leaderboard"></table></div>
<p class="note" id="leaderboard-note"></p>
</section>
<section>
<h2>Invariance–equivariance trade-off</h2>
<div class="controls" id="tradeoff-controls"></div>
<div id="tradeoff" class="plot"></div>
<p class="note" id="tradeoff-note"></p>
</section>
<section>
<h2>Training curves</h2>
<div class="controls" id="curves-controls"></div>
<div id="curves" class="plot"></div>
<p class="note" id="curves-note"></p>
</section>
<section>
<h2>Runs and provenance</h2>
<div id="runs-wrap"><table id="runs"></table></div>
<div id="numbers"></div>
</section>
<pre id="errors" hidden data-count="0"></pre>
<pre id="selftest" hidden></pre>
<script type="application/json" id="dashboard-data">{data}</script>
<script>window.DASHBOARD_LIVE = {live};</script>
<script>{app}</script>
</body>
</html>
"""


def _inline_script(text: str) -> str:
    """JavaScript ``text`` safe inside ``<script>…</script>`` (no early end tag)."""
    return text.replace("</script", "<\\/script")


def _inline_json(text: str) -> str:
    """JSON ``text`` safe inside ``<script type="application/json">`` (``<`` escaped)."""
    return text.replace("<", "\\u003c")


@lru_cache(maxsize=1)
def plotly_js() -> tuple[str, str]:
    """(plotly.js source, its version) from the installed ``plotly`` package."""
    import plotly
    from plotly.offline import get_plotlyjs

    source = get_plotlyjs()
    version = source.split("plotly.js v", 1)[1].split()[0] if "plotly.js v" in source else "?"
    return _inline_script(source), f"{version} via plotly {plotly.__version__}"


def render_page(payload: dict[str, Any], live: dict[str, Any] | None = None) -> str:
    """The page for ``payload``; ``live`` ({url, interval_ms}) makes it poll for updates."""
    plotly, version = plotly_js()
    data = json.dumps(payload, separators=(",", ":"), allow_nan=False, default=str)
    return TEMPLATE.format(
        title=html.escape(str(payload.get("title", "sslequi dashboard"))),
        plotly_version=html.escape(version),
        recorder=_inline_script(ERROR_RECORDER),
        css=(STATIC / "dashboard.css").read_text(),
        plotly=plotly,
        data=_inline_json(data),
        live=json.dumps(live) if live else "null",
        app=_inline_script((STATIC / "dashboard.js").read_text()),
    )


def write_page(payload: dict[str, Any], out_dir: Path) -> Path:
    """Write ``<out_dir>/index.html``; returns its path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "index.html"
    temporary = path.with_suffix(".html.tmp")
    temporary.write_text(render_page(payload), encoding="utf-8")
    temporary.replace(path)
    return path
