"""Open a page in headless Chromium and collect its JavaScript errors and a screenshot.

Chromium is driven through the DevTools protocol over a pipe (``--remote-debugging-pipe``:
JSON messages separated by NUL bytes on file descriptors 3 and 4), so no port, no
websocket library and no browser download are needed: Debian's ``chromium`` is enough.
Errors are what DevTools shows in red: uncaught exceptions and unhandled promise
rejections (``Runtime.exceptionThrown``), ``console.error``/``console.assert``
(``Runtime.consoleAPICalled``) and the browser's own error entries such as a failed
resource load (``Log.entryAdded``).
"""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Flags that work as root in a container without a display or a D-Bus session.
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--mute-audio")
BINARIES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    """$SCGB_CHROMIUM, else the first Chromium on PATH."""
    if os.environ.get("SCGB_CHROMIUM"):
        return shutil.which(os.environ["SCGB_CHROMIUM"])
    return next((p for p in map(shutil.which, BINARIES) if p), None)


@dataclass
class Visit:
    url: str
    errors: list[str] = field(default_factory=list)
    text: str = ""  # document.body.innerText once the page settled
    screenshot: bytes = b""  # PNG of the viewport


class HeadlessChromium:
    """``with HeadlessChromium(binary, profile_dir) as browser: visit = browser.open(url)``"""

    def __init__(self, binary: str, profile_dir: Path, *, width: int = 1280,
                 height: int = 900, log_path: Path | None = None) -> None:
        self.binary, self.profile_dir = binary, Path(profile_dir)
        self.width, self.height = width, height
        self.log_path = log_path or self.profile_dir.parent / "chromium.log"
        self._proc: subprocess.Popen | None = None
        self._buffer = b""
        self._events: list[dict[str, Any]] = []
        self._next_id = 0

    # -- process -------------------------------------------------------------------
    def __enter__(self) -> HeadlessChromium:
        self.profile_dir.mkdir(parents=True, exist_ok=True)
        # the shell moves our stdin/stdout pipes to fds 3 and 4, where Chromium expects them
        cmd = ["sh", "-c", 'exec "$@" 3<&0 4>&1 0</dev/null 1>/dev/null', "sh", self.binary,
               *FLAGS, f"--user-data-dir={self.profile_dir}",
               f"--window-size={self.width},{self.height}", "--remote-debugging-pipe",
               "about:blank"]
        self._log = open(self.log_path, "wb")  # noqa: SIM115 (closed in __exit__)
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=self._log)
        return self

    def __exit__(self, *exc: object) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            if proc.poll() is None:
                self._send("Browser.close", proc=proc)
            proc.wait(timeout=15)
        except (OSError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait(timeout=15)
        finally:
            self._log.close()

    # -- protocol ------------------------------------------------------------------
    def _send(self, method: str, params: dict | None = None, session: str | None = None,
              proc: subprocess.Popen | None = None) -> int:
        proc = proc or self._proc
        assert proc is not None and proc.stdin is not None, "use HeadlessChromium in a with"
        self._next_id += 1
        msg: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        proc.stdin.write(json.dumps(msg).encode() + b"\0")
        proc.stdin.flush()
        return self._next_id

    def _read(self, timeout: float) -> list[dict[str, Any]]:
        """Messages that arrive within ``timeout`` seconds (at least one read is tried)."""
        assert self._proc is not None and self._proc.stdout is not None
        out: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while True:
            ready, _, _ = select.select([self._proc.stdout], [], [],
                                        max(0.0, deadline - time.monotonic()))
            if ready:
                chunk = os.read(self._proc.stdout.fileno(), 1 << 20)
                if not chunk:
                    raise RuntimeError(f"Chromium exited (rc {self._proc.poll()}); see "
                                       f"{self.log_path}")
                self._buffer += chunk
                while b"\0" in self._buffer:
                    raw, self._buffer = self._buffer.split(b"\0", 1)
                    out.append(json.loads(raw))
            if out or time.monotonic() >= deadline:
                return out

    def call(self, method: str, params: dict | None = None, session: str | None = None,
             timeout: float = 60.0) -> dict[str, Any]:
        """Send a command and wait for its answer; events read meanwhile are kept."""
        want = self._send(method, params, session)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            answer = None
            for msg in self._read(deadline - time.monotonic()):
                if msg.get("id") == want:
                    answer = msg
                else:
                    self._events.append(msg)
            if answer is not None:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer.get("result", {})
        raise TimeoutError(f"Chromium did not answer {method} within {timeout:g} s")

    def _wait_for(self, method: str, session: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(e.get("method") == method and e.get("sessionId") == session
                   for e in self._events):
                return True
            self._events.extend(self._read(min(0.5, deadline - time.monotonic())))
        return False

    # -- pages ---------------------------------------------------------------------
    def open(self, url: str, *, settle_s: float = 3.0, timeout: float = 60.0) -> Visit:
        """Load ``url`` in a fresh tab, wait for its load event and ``settle_s`` more (for
        scripts that render after load), then collect errors, text and a screenshot."""
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget",
                            {"targetId": target, "flatten": True})["sessionId"]
        for method in ("Runtime.enable", "Log.enable", "Page.enable"):
            self.call(method, session=session)
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": self.width, "height": self.height, "deviceScaleFactor": 1,
                   "mobile": False}, session=session)
        self._events.clear()
        nav = self.call("Page.navigate", {"url": url}, session=session)
        visit = Visit(url)
        if nav.get("errorText"):
            visit.errors.append(f"navigation: {nav['errorText']}")
        if not self._wait_for("Page.loadEventFired", session, timeout):
            visit.errors.append(f"no load event within {timeout:g} s")
        deadline = time.monotonic() + settle_s
        while time.monotonic() < deadline:
            self._events.extend(self._read(deadline - time.monotonic()))
        visit.errors += [e for e in map(describe_error, self._events) if e]
        body = self.call("Runtime.evaluate",
                         {"expression": "document.body ? document.body.innerText : ''",
                          "returnByValue": True}, session=session)
        visit.text = str(body.get("result", {}).get("value", ""))
        shot = self.call("Page.captureScreenshot", {"format": "png"}, session=session)
        visit.screenshot = base64.b64decode(shot["data"])
        self.call("Target.closeTarget", {"targetId": target})
        return visit


def _where(d: dict[str, Any]) -> str:
    url, line = d.get("url", ""), d.get("lineNumber")
    return f" ({url}:{line + 1})" if url and line is not None else (f" ({url})" if url else "")


def describe_error(event: dict[str, Any]) -> str | None:
    """One line for a DevTools event that DevTools shows as an error, else None."""
    method, p = event.get("method"), event.get("params", {})
    if method == "Runtime.exceptionThrown":
        d = p.get("exceptionDetails", {})
        exc = d.get("exception", {})
        text = exc.get("description") or exc.get("value") or d.get("text", "exception")
        return f"{d.get('text', 'Uncaught')}: {str(text).splitlines()[0]}{_where(d)}"
    if method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
        args = " ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", []))
        frames = p.get("stackTrace", {}).get("callFrames", [])
        return f"console.{p['type']}: {args}{_where(frames[0]) if frames else ''}"
    if method == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
        e = p["entry"]
        return f"{e.get('source', 'log')}: {e.get('text', '')}{_where(e)}"
    return None
