"""The workflow's fork server (scgraphbench.forkserver): a job handed to it runs in a
forked child with the job's own argv, descriptors and exit status; a job with no server
runs in its own process; a killed job kills its child; the server leaves with Snakemake.
The tiny end-to-end run (tests/test_pipeline.py) goes through it for every job."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from scgraphbench.forkserver import SOCKET_ENV, delegate

PRELOAD_TIMEOUT_S = 180  # the server imports torch, scanpy, PyG... first (15 s here, idle)


def start_server(sock: Path, parent_pid: int) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != SOCKET_ENV}
    return subprocess.Popen([sys.executable, "-m", "scgraphbench", "forkserver", "--socket",
                             str(sock), "--parent-pid", str(parent_pid)], env=env)


def wait_for(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def running(proc: psutil.Process) -> bool:
    """Alive and not a zombie; a process reaped while we look is not running."""
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    sock = tmp_path_factory.mktemp("forkserver") / "s.sock"
    proc = start_server(sock, os.getpid())
    wait_for(sock.exists, PRELOAD_TIMEOUT_S, "the server's socket")
    yield proc, sock
    proc.terminate()
    proc.wait(timeout=30)
    assert not sock.exists(), "the server left its socket behind"


def test_a_job_runs_in_a_server_child_with_its_descriptors_and_status(server, capfd,
                                                                      monkeypatch):
    _, sock = server
    monkeypatch.setenv(SOCKET_ENV, str(sock))
    assert delegate(["list-models"]) == 0
    out = capfd.readouterr().out
    assert "transformer" in out.split() and "genohoption_ppr" in out.split()
    # argparse's usage error: its exit status and its message on this process's stderr
    assert delegate(["train", "--family"]) == 2
    assert "usage:" in capfd.readouterr().err


def test_without_a_server_the_job_runs_in_its_own_process(tmp_path, monkeypatch):
    monkeypatch.setenv(SOCKET_ENV, str(tmp_path / "absent.sock"))
    assert delegate(["list-models"]) is None
    monkeypatch.setenv(SOCKET_ENV, "off")
    assert delegate(["list-models"]) is None
    monkeypatch.delenv(SOCKET_ENV)
    assert delegate(["list-models"]) is None


def test_a_killed_job_ends_its_child(server, tiny_annotation, tmp_path):
    proc, sock = server
    env = {**os.environ, SOCKET_ENV: str(sock)}
    client = subprocess.Popen(
        [sys.executable, "-m", "scgraphbench", "train", "--prepared", str(tiny_annotation),
         "--family", "transformer", "--params", '{"d_model": 8, "n_layers": 1, "n_heads": 2}',
         "--train", '{"epochs": 1000, "patience": 1000, "batch_size": 8}', "--seed", "0",
         "--out-dir", str(tmp_path / "run")],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server_proc = psutil.Process(proc.pid)

    def running_children():
        return [c for c in server_proc.children() if running(c)]

    try:
        wait_for(running_children, 60, "the job's child")
        (child,) = running_children()
        assert client.poll() is None
    finally:
        client.send_signal(signal.SIGKILL)
        client.wait(timeout=30)
    wait_for(lambda: not running(child), 30, "the child to end")
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_the_server_leaves_with_its_parent(tmp_path):
    parent = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3)"])
    sock = tmp_path / "s.sock"
    proc = start_server(sock, parent.pid)
    parent.wait(timeout=30)
    assert proc.wait(timeout=PRELOAD_TIMEOUT_S) == 0
    assert not sock.exists()


def test_start_and_stop_keep_the_socket_private(tmp_path, monkeypatch):
    from scgraphbench.forkserver import start, stop

    monkeypatch.delenv(SOCKET_ENV, raising=False)
    proc = start(str(tmp_path / "logs/forkserver.log"))
    sock = Path(os.environ[SOCKET_ENV])
    try:
        wait_for(sock.exists, PRELOAD_TIMEOUT_S, "the server's socket")
        assert sock.parent.stat().st_mode & 0o777 == 0o700  # only this user may connect
        assert delegate(["list-models"]) == 0
    finally:
        stop(proc)
    assert SOCKET_ENV not in os.environ and not sock.parent.exists()
    assert proc.returncode is not None
    monkeypatch.setenv(SOCKET_ENV, "off")
    assert start(str(tmp_path / "log")) is None


def test_no_server_where_a_gpu_driver_is_present(tmp_path, monkeypatch):
    import scgraphbench.forkserver as fs

    monkeypatch.delenv(SOCKET_ENV, raising=False)
    device = tmp_path / "nvidiactl"
    monkeypatch.setattr(fs, "GPU_DEVICE_FILES", (str(device),))
    assert not fs.gpu_visible()
    device.touch()
    assert fs.gpu_visible()
    assert fs.start(str(tmp_path / "log")) is None and SOCKET_ENV not in os.environ


LOAD_KERNEL_CHECK = """
import os, sys
import torch
from scgraphbench.forkserver import load_kernel
from scgraphbench.kernels import CSRGraph, fused_cpu, graph_attention
import scipy.sparse as sp

load_kernel()
assert torch.float32 in fused_cpu._WARM, "the fused kernel's code was not loaded"
threads = os.listdir("/proc/self/task")
assert len(threads) == 1, f"{len(threads)} threads would not survive the fork"
pid = os.fork()
if pid == 0:  # a job: its own thread count, the kernel's thread pool made here
    code = 1
    try:
        torch.set_num_threads(2)
        g = CSRGraph.from_scipy(sp.random(40, 40, density=0.2, random_state=0, format="csr"))
        q, k, v = (torch.randn(3, 2, 40, 8, generator=torch.Generator().manual_seed(i))
                   for i in range(3))
        out = {impl: graph_attention(q, k, v, g, diffusion="ppr", impl=impl)
               for impl in ("fused", "torch_sparse")}
        code = 0 if torch.allclose(out["fused"], out["torch_sparse"], atol=1e-5) else 3
    finally:
        os._exit(code)
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def test_the_server_loads_the_kernel_and_stays_single_threaded_for_the_fork():
    """load_kernel, which the server runs after its imports, loads numba's machine code with
    no thread left behind (start() gives the server one-thread BLAS/OpenMP settings), and a
    child forked after it runs the fused kernel on two threads with the reference's result."""
    from scgraphbench.forkserver import THREAD_ENV

    env = {k: v for k, v in os.environ.items() if k != SOCKET_ENV}
    env.update(dict.fromkeys(THREAD_ENV, "1"))
    proc = subprocess.run([sys.executable, "-c", LOAD_KERNEL_CHECK], env=env,
                          capture_output=True, text=True, timeout=PRELOAD_TIMEOUT_S)
    assert proc.returncode == 0, proc.stderr
