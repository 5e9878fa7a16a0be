"""A preloading fork server for the workflow's many short CLI jobs.

Every Snakemake job is a fresh ``python -m scgraphbench ...``; a training job spends about
6 s importing torch (with torch._dynamo, which every ``torch.optim`` step imports),
anndata, scikit-learn's metrics, igraph and numba before it trains for about as long
(``python -X importtime``; docs/ARCHITECTURE.md, "Jobs and the fork server"). The
Snakefile starts one server per local run: it imports those modules once, then forks a
child per job, so a job pays a fork instead of the imports. The child takes the job's
argv, working directory, environment and stdin/stdout/stderr (passed as file
descriptors), runs the same ``cli.main`` and sends back its exit status; the job's process
(the client) exits with it. When the client is killed, the child is killed; when
Snakemake exits, the server exits.

Nothing here changes what a job computes: a child starts from a process that has imported
modules and loaded the fused kernel's machine code with one tiny single-threaded torch
step (no thread pool exists to break across the fork), and every run seeds itself.
Without a server (SLURM, --sdm, a machine with a GPU driver, a command run by hand, a
server that is not up yet) the job runs in its own process, as before.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

SOCKET_ENV = "SCGB_FORKSERVER"
#: imported by the server before it accepts jobs; one that does not import is skipped
PRELOAD = (
    "torch",
    "torch._dynamo",
    "torch.optim",
    "torch_geometric.nn",
    "anndata",
    "pandas",
    "scipy.stats",
    "sklearn.metrics",
    "sklearn.linear_model",
    "igraph",
    "numba",
    "scanpy",
    "scgraphbench.cli",
    "scgraphbench.train.run",
    "scgraphbench.train.annotation",
    "scgraphbench.train.perturbation",
    "scgraphbench.models.registry",
    "scgraphbench.kernels.fused_cpu",
    "scgraphbench.graphs.build",
    "scgraphbench.data.datasets",
    "scgraphbench.report.claims",
    "scgraphbench.report.figures",
)
THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "GOTO_NUM_THREADS",
              "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")
_STATUS = struct.Struct("!i")
_STARTED = b"S"  # the child has the job: from here on the job is never run twice
_IN_CHILD = False
_FOLDER_PREFIX = "scgb-forkserver-"
_RECV_BYTES = 2**16  # the first read; a longer header (a large environment) is read on


def in_forked_child() -> bool:
    """True in a job the server forked (recorded in each run's environment)."""
    return _IN_CHILD


def delegate(argv: list[str]) -> int | None:
    """Run ``argv`` in a child of the server named by $SCGB_FORKSERVER; its exit status, or
    None when no server took it (the caller then runs it itself)."""
    path = os.environ.get(SOCKET_ENV)
    if not path or path == "off" or argv[:1] == ["forkserver"]:
        return None
    header = json.dumps({"argv": argv, "cwd": os.getcwd(), "env": dict(os.environ)}).encode()
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with conn:
        try:
            conn.connect(path)
            socket.send_fds(conn, [struct.pack("!I", len(header)) + header], [0, 1, 2])
            started = _recv_exact(conn, len(_STARTED))
        except OSError:  # no server (yet, or any more), or a closed stdin: run here
            return None
        if started != _STARTED:  # the server went away before it forked the job
            return None
        try:
            status = _recv_exact(conn, _STATUS.size)
        except OSError:
            status = None
    if status is None:
        print("scgraphbench: the fork server's child ended without an exit status "
              "(killed, or out of memory)", file=sys.stderr)
        return 1
    return _STATUS.unpack(status)[0]


#: device files of the NVIDIA and AMD GPU drivers
GPU_DEVICE_FILES = ("/dev/nvidiactl", "/dev/kfd")


def gpu_visible() -> bool:
    """A GPU driver is present. Then no server: a process whose parent has called into the
    CUDA driver (an import that asks ``torch.cuda.is_available()`` is enough) cannot
    initialise CUDA after the fork, so GPU jobs must start their own processes."""
    return any(Path(f).exists() for f in GPU_DEVICE_FILES)


def start(log_path: str) -> subprocess.Popen | None:
    """Start a server for this process's jobs (the Snakefile's ``onstart``) and point
    $SCGB_FORKSERVER at it; None when $SCGB_FORKSERVER=off opts out or a GPU is visible
    (:func:`gpu_visible`). The socket lies in a fresh folder only this user can enter:
    whoever can connect can run commands as us."""
    if os.environ.get(SOCKET_ENV) == "off" or gpu_visible():
        return None
    path = os.path.join(tempfile.mkdtemp(prefix=_FOLDER_PREFIX), "server.sock")
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    # libraries load single-threaded; each job then gets its own count (_apply_thread_env)
    env = {k: v for k, v in os.environ.items() if k != SOCKET_ENV}
    env.update(dict.fromkeys(THREAD_ENV, "1"))
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "scgraphbench", "forkserver", "--socket", path,
             "--parent-pid", str(os.getpid())],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
            start_new_session=True)  # Ctrl-C reaches Snakemake; the server follows it out
    os.environ[SOCKET_ENV] = path
    return proc


def stop(proc: subprocess.Popen | None) -> None:
    """Stop a server from :func:`start` (``onsuccess``/``onerror``) and remove its folder."""
    path = os.environ.get(SOCKET_ENV)
    if path != "off":
        os.environ.pop(SOCKET_ENV, None)
    if proc is None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
    if path and path != "off":  # the server removes both itself, unless it was killed
        Path(path).unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            Path(path).parent.rmdir()


def serve(path: str, parent_pid: int) -> None:
    """Preload, listen on ``path``, fork a child per connection; return when ``parent_pid``
    (the Snakemake process) is gone or SIGTERM arrives."""
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except Exception:  # not installed, or broken: the job that needs it will say so
            pass
    load_kernel()
    sock_path = Path(path)
    sock_path.parent.mkdir(parents=True, exist_ok=True)
    sock_path.unlink(missing_ok=True)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(sock_path))
    sock_path.chmod(0o600)
    listener.listen(64)
    listener.settimeout(0.5)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.is_set() and _alive(parent_pid):
            _reap()
            try:
                conn, _ = listener.accept()
            except (TimeoutError, InterruptedError):
                continue
            sys.stdout.flush()  # nothing buffered here may reach a job's output twice
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:  # the child never returns into this loop, whatever happens
                code = 1
                try:
                    listener.close()
                    code = _child(conn)
                finally:
                    os._exit(code)
            conn.close()
    finally:
        listener.close()
        sock_path.unlink(missing_ok=True)
        if sock_path.parent.name.startswith(_FOLDER_PREFIX):  # start()'s private folder
            with contextlib.suppress(OSError):
                sock_path.parent.rmdir()


def load_kernel() -> None:
    """Load the graph-attention kernel ``auto`` runs on CPU (numba's machine code for the
    fused kernel, about 0.6 s a process with a warm cache) once here rather than in every
    job. It runs one 2-gene forward and backward on one thread, so no thread pool exists
    afterwards to break across the fork (tests/test_forkserver.py counts the threads)."""
    try:
        import torch

        from scgraphbench.kernels import prepare

        torch.set_num_threads(1)  # the jobs set their own (_apply_thread_env)
        prepare("cpu")
    except Exception:  # a broken numba install: each job meets (and reports) it itself
        pass


def _child(conn: socket.socket) -> int:
    global _IN_CHILD
    _IN_CHILD = True
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        msg, fds, _, _ = socket.recv_fds(conn, _RECV_BYTES, 3)
        (size,) = struct.unpack("!I", msg[:4])
        body = msg[4:] + (_recv_exact(conn, size - (len(msg) - 4)) or b"")
        job: dict[str, Any] = json.loads(body)
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        os.chdir(job["cwd"])
        os.environ.clear()
        os.environ.update(job["env"])
        tempfile.tempdir = None  # read $TMPDIR again, from the job's environment
        conn.sendall(_STARTED)
    except Exception as e:  # a malformed request or a client gone: the server is untouched
        print(f"scgraphbench forkserver: bad request: {e}", file=sys.stderr)
        return 1
    # the client's death (Snakemake cancelled the job) ends this child
    threading.Thread(target=_exit_when_closed, args=(conn,), daemon=True).start()
    _name_process(f"scgb {job['argv'][0] if job['argv'] else ''}")
    _apply_thread_env()
    sys.argv = ["scgraphbench", *job["argv"]]
    code = 1
    try:
        from scgraphbench.cli import main

        code = main(job["argv"])
    except SystemExit as e:  # argparse's --help and usage errors
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        _send_status(conn, code)
    return code


def _apply_thread_env() -> None:
    """BLAS and OpenMP read their thread counts when the server loaded them (the server runs
    with 1); the job's own OMP_NUM_THREADS (Snakemake's ``threads``) is applied here, to
    torch and, through threadpoolctl, to OpenBLAS/MKL/OpenMP (scikit-learn's solvers).
    Left at the machine's core count, two 1-thread jobs ran logistic regression 30-100x
    slower, their BLAS threads spinning against each other."""
    threads = os.environ.get("OMP_NUM_THREADS", "")
    if threads.isdigit() and int(threads) > 0:
        n = int(threads)
    else:  # unset: what a fresh process would take, every core it may run on
        n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    n = n or 1
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=n)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)


def _name_process(name: str) -> None:
    """What top and htop show for the job (Linux), instead of the server's name."""
    with contextlib.suppress(OSError):
        Path("/proc/self/comm").write_text(name[:15])


def _exit_when_closed(conn: socket.socket) -> None:
    try:
        while conn.recv(1):
            pass
    except OSError:
        pass
    os.kill(os.getpid(), signal.SIGTERM)


def _send_status(conn: socket.socket, code: int) -> None:
    try:
        conn.sendall(_STATUS.pack(int(code)))
    except OSError:
        pass


def _recv_exact(conn: socket.socket, n: int) -> bytes | None:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def _alive(pid: int) -> bool:
    """Running, and not a zombie its parent has yet to reap."""
    import psutil  # here, not at the top: every job's client imports this module

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _reap() -> None:
    try:
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass
    except ChildProcessError:
        pass
