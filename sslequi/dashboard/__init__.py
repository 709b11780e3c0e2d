"""``sslequi-dashboard``: one self-contained HTML page over runs and sweeps.

``data`` reads run directories (``run.json``, ``config.yaml``, ``metrics.jsonl``,
``results.json``, ``eval_status.json``) into one JSON payload: runs, seed groups,
leaderboard cells (mean ± std over the seeds of a group, one protocol per cell), training
curves and provenance. ``page`` inlines that payload, plotly.js and the page's own script
and style into one HTML file; ``serve`` serves it and refreshes it as runs and results
appear; ``cli`` is the console script.
"""
