"""``sslequi-dashboard --serve``: the page over HTTP, refreshed as runs and results appear.

``GET /`` is the page with ``window.DASHBOARD_LIVE`` set; the page polls ``GET /data.json``
(the payload, rebuilt from disk at most once per ``min_rebuild_s``) and re-renders when its
``version`` changes: a run that starts, logs, completes or gets a ``results.json`` shows up
without reloading. Standard library only (``http.server``); binds to 127.0.0.1 unless told
otherwise (reach it from a laptop through an SSH tunnel).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from sslequi.dashboard.data import build_payload
from sslequi.dashboard.page import render_page


class LivePayload:
    """The payload of ``inputs``, rebuilt when older than ``min_rebuild_s``."""

    def __init__(
        self, inputs: Sequence[str | Path], title: str | None, min_rebuild_s: float
    ) -> None:
        self.inputs = list(inputs)
        self.title = title
        self.min_rebuild_s = min_rebuild_s
        self._lock = threading.Lock()
        self._payload: dict[str, Any] | None = None
        self._built = 0.0

    def get(self) -> dict[str, Any]:
        with self._lock:
            now = time.monotonic()
            if self._payload is None or now - self._built >= self.min_rebuild_s:
                self._payload = build_payload(self.inputs, self.title)
                self._built = now
            return self._payload


def make_server(
    inputs: Sequence[str | Path],
    host: str = "127.0.0.1",
    port: int = 8765,
    interval_ms: int = 2000,
    title: str | None = None,
) -> ThreadingHTTPServer:
    """An HTTP server for the live page (``port=0``: a free port; see ``server_address``)."""
    live = LivePayload(inputs, title, min_rebuild_s=min(1.0, interval_ms / 2000))
    live.get()  # fail now on bad inputs, not on the first request

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            path = self.path.split("?", 1)[0]
            if path in ("/", "/index.html"):
                body = render_page(live.get(), {"url": "data.json", "interval_ms": interval_ms})
                self._send(body.encode("utf-8"), "text/html; charset=utf-8")
            elif path == "/data.json":
                body = json.dumps(live.get(), separators=(",", ":"), allow_nan=False, default=str)
                self._send(body.encode("utf-8"), "application/json")
            else:
                self.send_error(404, "the dashboard serves / and /data.json")

        def _send(self, body: bytes, content_type: str) -> None:
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass  # one line per poll would drown the terminal

    return ThreadingHTTPServer((host, port), Handler)
