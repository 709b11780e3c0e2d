"""Debian's Chromium, headless, for the dashboard's browser tests.

``dump_dom`` loads a page and returns the DOM after its scripts ran (``--dump-dom``, with a
virtual-time budget so timers and promises settle). ``DevTools`` drives a live page over
the DevTools protocol through ``--remote-debugging-pipe`` (JSON messages separated by NUL
on file descriptors 3 and 4; no websocket client needed). ``parse`` turns HTML into a small
element tree with ``find``/``find_all``.

Chromium missing: the tests fail under CI (``.ci/run`` installs it), and skip with the
reason otherwise.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

import pytest

NAMES = ("chromium", "chromium-browser", "google-chrome")
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}


def chromium() -> str:
    """Chromium's path; fails in CI and skips elsewhere when it is not installed."""
    for name in NAMES:
        path = shutil.which(name)
        if path:
            return path
    if os.environ.get("CI"):
        pytest.fail("chromium is not installed, and browser tests never skip in CI (.ci/run)")
    pytest.skip("chromium is not installed (apt-get install chromium; .ci/run installs it in CI)")
    raise AssertionError("unreachable")


def _flags(user_data_dir: str) -> list[str]:
    flags = [
        "--headless",
        "--disable-gpu",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-extensions",
        "--disable-dev-shm-usage",
        f"--user-data-dir={user_data_dir}",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        flags.append("--no-sandbox")  # Chromium refuses to run as root with its sandbox
    return flags


def dump_dom(url: str, budget_ms: int = 20000, timeout_s: float = 240) -> str:
    """The DOM of ``url`` after its scripts ran."""
    with tempfile.TemporaryDirectory(prefix="sslequi-chromium-") as profile:
        result = subprocess.run(
            [
                chromium(),
                *_flags(profile),
                f"--virtual-time-budget={budget_ms}",
                "--window-size=1400,2000",
                "--dump-dom",
                url,
            ],
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
    if result.returncode != 0 or "<html" not in result.stdout:
        raise AssertionError(
            f"chromium --dump-dom failed ({result.returncode}): {result.stderr[-2000:]}"
        )
    return result.stdout


class DevTools:
    """A headless Chromium driven over ``--remote-debugging-pipe``."""

    def __init__(self) -> None:
        path = chromium()
        self._profile = tempfile.TemporaryDirectory(prefix="sslequi-chromium-")
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()

        def as_fds_3_and_4() -> None:  # Chromium reads commands on fd 3, answers on fd 4
            read_end, write_end = os.dup(to_child_r), os.dup(from_child_w)
            os.dup2(read_end, 3)
            os.dup2(write_end, 4)

        self.process = subprocess.Popen(
            [path, *_flags(self._profile.name), "--remote-debugging-pipe", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=(3, 4),  # kept open after as_fds_3_and_4 placed the pipes there
            preexec_fn=as_fds_3_and_4,
        )
        os.close(to_child_r)
        os.close(from_child_w)
        self._buffer = b""
        self._next_id = 0

    def send(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        session: str | None = None,
        timeout_s: float = 60,
    ) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        os.write(self._to_child, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout_s
        while True:
            for reply in self._messages(deadline):
                if reply.get("id") == self._next_id:
                    if "error" in reply:
                        raise AssertionError(f"DevTools {method}: {reply['error']}")
                    return reply.get("result", {})

    def _messages(self, deadline: float) -> Iterator[dict[str, Any]]:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError("DevTools: no answer from Chromium in time")
        ready, _, _ = select.select([self._from_child], [], [], remaining)
        if not ready:
            raise AssertionError("DevTools: no answer from Chromium in time")
        chunk = os.read(self._from_child, 1 << 20)
        if not chunk:
            raise AssertionError(f"DevTools: Chromium exited ({self.process.poll()})")
        self._buffer += chunk
        *complete, self._buffer = self._buffer.split(b"\0")
        for raw in complete:
            yield json.loads(raw)

    def open(self, url: str) -> str:
        """A new tab on ``url``; returns its session id."""
        target = self.send("Target.createTarget", {"url": url})["targetId"]
        return self.send("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]

    def evaluate(self, session: str, expression: str) -> Any:
        result = self.send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
            session,
        )
        if "exceptionDetails" in result:
            raise AssertionError(f"page script failed: {result['exceptionDetails']}")
        return result.get("result", {}).get("value")

    def wait_for(
        self, session: str, expression: str, timeout_s: float = 120, what: str = ""
    ) -> Any:
        deadline = time.monotonic() + timeout_s
        while True:
            value = self.evaluate(session, expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what or expression}")
            time.sleep(0.25)

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout_s=10)
        except (AssertionError, OSError):
            pass
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._to_child)
        os.close(self._from_child)
        self._profile.cleanup()

    def __enter__(self) -> DevTools:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ----------------------------------------------------------------------------- HTML


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    children: list[Element] = field(default_factory=list)
    text: str = ""

    def iter(self) -> Iterator[Element]:
        yield self
        for child in self.children:
            yield from child.iter()

    def find_all(self, predicate: Callable[[Element], bool]) -> list[Element]:
        return [node for node in self.iter() if predicate(node)]

    def find(self, predicate: Callable[[Element], bool]) -> Element | None:
        return next((node for node in self.iter() if predicate(node)), None)

    def by_id(self, element_id: str) -> Element | None:
        return self.find(lambda node: node.attrs.get("id") == element_id)

    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())


class _TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Element(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack[-1].children.append(Element(tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        for index in range(len(self.stack) - 1, 0, -1):
            if self.stack[index].tag == tag:
                del self.stack[index:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].text += data


def parse(html: str) -> Element:
    builder = _TreeBuilder()
    builder.feed(html)
    builder.close()
    return builder.root
