"""``sslequi-dashboard``: one self-contained HTML page over runs and sweeps.

    sslequi-dashboard runs/sweeps/<sweep id>                   # → <sweep>/dashboard/index.html
    sslequi-dashboard runs/demo runs/other/single/x --out /tmp/dash
    sslequi-dashboard runs/sweeps/<sweep id> --serve --port 8765   # live, while it runs

Each argument is a run directory, a sweep (its folder or ``sweep.json``) or a folder holding
runs. The page inlines every script and style (plotly.js included), so it works offline and
when copied elsewhere. Prints the leaderboard's headline (one line per seed group) and the
path it wrote. What the numbers mean: docs/evaluation.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import sslequi.threads  # noqa: F401  (OpenMP defaults, before torch loads)
from sslequi.dashboard.data import DashboardInputError, build_payload, headline_text
from sslequi.dashboard.page import write_page


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sslequi-dashboard",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(__doc__.splitlines()[2:6]),
    )
    parser.add_argument("inputs", nargs="+", metavar="RUN_OR_SWEEP_DIR")
    parser.add_argument(
        "--out", type=Path, default=None, help="folder for index.html (default: <input>/dashboard)"
    )
    parser.add_argument("--title", default=None, help="page title")
    parser.add_argument("--serve", action="store_true", help="serve the page live over HTTP")
    parser.add_argument("--host", default="127.0.0.1", help="--serve: address to bind")
    parser.add_argument("--port", type=int, default=8765, help="--serve: port (0: any free one)")
    parser.add_argument(
        "--interval", type=float, default=2.0, help="--serve: seconds between page refreshes"
    )
    return parser


def default_out(inputs: Sequence[str | Path]) -> Path:
    """``dashboard/`` in the inputs' common folder; a temporary folder when that is the
    current directory or the filesystem root (nothing lands in a working tree)."""
    folders = [Path(p).resolve() for p in inputs]
    folders = [p.parent if p.is_file() else p for p in folders]
    common = Path(os.path.commonpath(folders))
    if common == Path.cwd().resolve() or common.parent == common:
        return Path(tempfile.mkdtemp(prefix="sslequi-dashboard-"))
    return common / "dashboard"


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.interval <= 0:
        print("sslequi-dashboard: --interval must be > 0", file=sys.stderr)
        return 2
    try:
        payload = build_payload(args.inputs, args.title)
    except DashboardInputError as error:
        print(f"sslequi-dashboard: {error}", file=sys.stderr)
        return 2
    print(headline_text(payload))
    out = args.out if args.out is not None else default_out(args.inputs)
    path = write_page(payload, out)
    size_mb = path.stat().st_size / 1e6
    print(
        f"{len(payload['runs'])} runs, {len(payload['groups'])} groups; wrote {path} ({size_mb:.1f} MB)"
    )
    if not args.serve:
        return 0
    from sslequi.dashboard.serve import make_server

    server = make_server(args.inputs, args.host, args.port, int(args.interval * 1000), args.title)
    host, port = server.server_address[:2]
    print(
        f"serving http://{host}:{port}/ (refreshes every {args.interval:g} s; Ctrl-C to stop)",
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
