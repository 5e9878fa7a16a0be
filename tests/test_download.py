"""download(): against a loopback HTTP server started here, serving files made here.

The server honours Range and can be told to fail the next requests of a path in a given way
(HTTP status, a truncated body, a stall), so every branch of the real network code runs.
"""

from __future__ import annotations

import hashlib
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from scgraphbench.download import download, part_path
from scgraphbench.errors import ScgbError

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB, not all one byte so offsets matter


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep pytest output quiet
        pass

    def do_GET(self) -> None:
        srv = self.server
        srv.log.append((self.path, self.headers.get("Range")))
        plan = srv.fail.get(self.path, [])
        mode = plan.pop(0) if plan else None
        body = srv.files.get(self.path)
        if mode == "stall":
            time.sleep(1.0)
            mode = None
        if isinstance(mode, int):
            self.send_error(mode)
            return
        if body is None:
            self.send_error(404)
            return
        start = 0
        rng = self.headers.get("Range")
        if rng and srv.honour_range:
            start = int(rng.removeprefix("bytes=").split("-")[0])
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        part = body[start:]
        self.send_header("Content-Length", str(len(part)))
        self.end_headers()
        if mode == "truncate":
            # Announce the full length, send a third, hang up: a connection cut mid-body.
            self.wfile.write(part[: len(part) // 3])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(part)


@pytest.fixture
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.daemon_threads = True
    srv.files, srv.fail, srv.log, srv.honour_range = {}, {}, [], True
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
    yield srv
    srv.shutdown()
    srv.server_close()


SHA = hashlib.sha256(PAYLOAD).hexdigest()
FAST = dict(backoff=0.01, timeout=5.0)


def leftovers(folder: Path, dest: Path) -> list[str]:
    """Everything in the destination folder other than the finished file."""
    return sorted(p.name for p in folder.iterdir() if p != dest)


def test_good_download(server, tmp_path):
    server.files["/a.bin"] = PAYLOAD
    dest = tmp_path / "res" / "a.bin"
    out = download(f"{server.url}/a.bin", dest, sha256=SHA, size=len(PAYLOAD), **FAST)
    assert out == dest and dest.read_bytes() == PAYLOAD
    assert leftovers(dest.parent, dest) == []
    # A verified file is not fetched again.
    n = len(server.log)
    download(f"{server.url}/a.bin", dest, sha256=SHA, **FAST)
    assert len(server.log) == n


def test_wrong_checksum_names_url_and_both_sums(server, tmp_path):
    server.files["/a.bin"] = PAYLOAD
    dest = tmp_path / "a.bin"
    wrong = "0" * 64
    with pytest.raises(ScgbError) as e:
        download(f"{server.url}/a.bin", dest, sha256=wrong, **FAST)
    msg = str(e.value)
    assert f"{server.url}/a.bin" in msg and wrong in msg and SHA in msg
    assert list(tmp_path.iterdir()) == []


def test_wrong_size(server, tmp_path):
    server.files["/a.bin"] = PAYLOAD
    with pytest.raises(ScgbError, match="expected 12"):
        download(f"{server.url}/a.bin", tmp_path / "a.bin", size=12, **FAST)
    assert list(tmp_path.iterdir()) == []


def test_truncated_body_every_time_keeps_only_a_resumable_partial(server, tmp_path):
    server.files["/a.bin"] = PAYLOAD
    server.fail["/a.bin"] = ["truncate"] * 3
    dest = tmp_path / "a.bin"
    with pytest.raises(ScgbError, match="failed after 3 attempts") as e:
        download(f"{server.url}/a.bin", dest, sha256=SHA, retries=2, **FAST)
    assert "resume" in str(e.value)
    assert not dest.exists()
    assert leftovers(tmp_path, dest) == ["a.bin.part"]
    have = part_path(dest).stat().st_size
    assert 0 < have < len(PAYLOAD)
    assert PAYLOAD.startswith(part_path(dest).read_bytes())
    # The attempts after the first resumed rather than restarted.
    assert server.log[0][1] is None and all(r and r.startswith("bytes=") for _, r in server.log[1:])


def test_truncated_then_retry_resumes_to_the_right_file(server, tmp_path):
    server.files["/a.bin"] = PAYLOAD
    server.fail["/a.bin"] = ["truncate"]
    dest = tmp_path / "a.bin"
    download(f"{server.url}/a.bin", dest, sha256=SHA, **FAST)
    assert dest.read_bytes() == PAYLOAD
    ranges = [r for _, r in server.log]
    assert ranges[0] is None and len(ranges) == 2
    assert 0 < int(ranges[1].removeprefix("bytes=").rstrip("-")) <= len(PAYLOAD) // 3
    assert leftovers(tmp_path, dest) == []


def test_404_fails_at_once(server, tmp_path):
    dest = tmp_path / "missing.bin"
    with pytest.raises(ScgbError, match="HTTP 404") as e:
        download(f"{server.url}/missing.bin", dest, retries=3, **FAST)
    assert f"{server.url}/missing.bin" in str(e.value)
    assert len(server.log) == 1  # no retry on a client error
    assert list(tmp_path.iterdir()) == []


def test_500_then_200_retries(server, tmp_path):
    server.files["/a.bin"] = PAYLOAD
    server.fail["/a.bin"] = [500, 503]
    dest = tmp_path / "a.bin"
    download(f"{server.url}/a.bin", dest, sha256=SHA, **FAST)
    assert dest.read_bytes() == PAYLOAD
    assert len(server.log) == 3
    assert leftovers(tmp_path, dest) == []


def test_500_forever_gives_up_cleanly(server, tmp_path):
    server.files["/a.bin"] = PAYLOAD
    server.fail["/a.bin"] = [500] * 10
    with pytest.raises(ScgbError, match="HTTP 500"):
        download(f"{server.url}/a.bin", tmp_path / "a.bin", retries=2, **FAST)
    assert len(server.log) == 3
    assert list(tmp_path.iterdir()) == []


def test_timeout_then_success(server, tmp_path):
    server.files["/a.bin"] = PAYLOAD
    server.fail["/a.bin"] = ["stall"]
    dest = tmp_path / "a.bin"
    download(f"{server.url}/a.bin", dest, sha256=SHA, timeout=0.3, backoff=0.01)
    assert dest.read_bytes() == PAYLOAD and len(server.log) == 2


def test_partial_on_disk_is_resumed_with_range(server, tmp_path):
    server.files["/a.bin"] = PAYLOAD
    dest = tmp_path / "a.bin"
    part_path(dest).write_bytes(PAYLOAD[:1000])
    download(f"{server.url}/a.bin", dest, sha256=SHA, **FAST)
    assert dest.read_bytes() == PAYLOAD
    assert server.log == [("/a.bin", "bytes=1000-")]
    assert leftovers(tmp_path, dest) == []


def test_partial_with_server_ignoring_range_restarts(server, tmp_path):
    server.files["/a.bin"] = PAYLOAD
    server.honour_range = False
    dest = tmp_path / "a.bin"
    part_path(dest).write_bytes(b"x" * 500)
    download(f"{server.url}/a.bin", dest, sha256=SHA, **FAST)
    assert dest.read_bytes() == PAYLOAD


def test_stale_partial_is_redone_from_scratch(server, tmp_path):
    """A partial of some other file resumes into garbage; one clean retry fixes it."""
    server.files["/a.bin"] = PAYLOAD
    dest = tmp_path / "a.bin"
    part_path(dest).write_bytes(b"stale" * 100)
    download(f"{server.url}/a.bin", dest, sha256=SHA, **FAST)
    assert dest.read_bytes() == PAYLOAD
    assert [r for _, r in server.log] == ["bytes=500-", None]


def test_partial_as_long_as_file_416_restarts(server, tmp_path):
    server.files["/a.bin"] = PAYLOAD[:100]
    dest = tmp_path / "a.bin"
    part_path(dest).write_bytes(b"y" * 100)
    download(f"{server.url}/a.bin", dest, sha256=hashlib.sha256(PAYLOAD[:100]).hexdigest(), **FAST)
    assert dest.read_bytes() == PAYLOAD[:100]


def test_local_path_and_file_url(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(PAYLOAD)
    out_dir = tmp_path / "res"
    a = download(str(src), out_dir / "a.bin", sha256=SHA)
    b = download(src.as_uri(), out_dir / "b.bin", sha256=SHA)
    assert a.read_bytes() == PAYLOAD and b.read_bytes() == PAYLOAD
    with pytest.raises(ScgbError, match="checksum mismatch"):
        download(src.as_uri(), out_dir / "c.bin", sha256="1" * 64)
    with pytest.raises(ScgbError, match="does not exist"):
        download(str(tmp_path / "nope.bin"), out_dir / "d.bin")
    assert sorted(p.name for p in out_dir.iterdir()) == ["a.bin", "b.bin"]
