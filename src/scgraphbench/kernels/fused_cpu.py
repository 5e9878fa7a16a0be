"""Fused CPU graph attention + diffusion: numba loops behind a ``torch.autograd.Function``.

One pass per (batch, head) slice computes the edge scores, the edge softmax and the Horner
recursion of the diffusion series (``_numba_loops.py``); slices run in parallel on
``torch.get_num_threads()`` threads. What the backward gets from the forward: q, k, v (held
by autograd anyway) and one log-sum-exp per row, (B, H, n) -- not the edge weights, which the
backward recomputes as exp(q.k/sqrt(d) - lse) as FlashAttention does. The diffusion states
z_1..z_{D-1} are recomputed in the backward too (``store_states=False``, the default) or kept,
(D-1) * B*H*n*d values, with ``store_states=True``.

numba because it JIT-compiles these loops with LLVM from wheels alone (no compiler at install
or run time), caches the machine code on disk, and releases the GIL so plain Python threads
run slices in parallel without a second OpenMP runtime next to torch's.
"""

from __future__ import annotations

import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np
import torch

from scgraphbench.kernels._autograd import apply_kernel, empty_like_rows, kernel_functions, usable

if TYPE_CHECKING:
    from scgraphbench.kernels.graph_attention import CSRGraph

DTYPES = {torch.float32: np.float32, torch.float64: np.float64}

_POOL: tuple[int, int, ThreadPoolExecutor] | None = None  # (pid, workers, pool)
_POOL_LOCK = threading.Lock()


def available() -> bool:
    """Whether numba imports (it is a dependency; a broken install falls back)."""
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


_WARM: set[torch.dtype] = set()


def warm_up(dtype: torch.dtype = torch.float32) -> None:
    """Load numba and this dtype's machine code now (a 2-node forward and backward): about
    1 s and 100 MB of resident memory per process with a warm on-disk cache, tens of
    seconds once with a cold one. Model layers call it when they are built, so that a
    training run's time and memory do not count loading a library."""
    if dtype in _WARM:
        return
    from scgraphbench.kernels.graph_attention import CSRGraph

    pair = CSRGraph(
        crow=torch.tensor([0, 2, 3]), col=torch.tensor([0, 1, 1]), row=torch.tensor([0, 0, 1]), n=2
    )
    q = torch.ones(1, 1, 2, 1, dtype=dtype, requires_grad=True)
    fused_graph_attention(q, q, q, pair, (0.5, 0.25, 0.25)).sum().backward()
    _WARM.add(dtype)


def _loops():
    from scgraphbench.kernels import _numba_loops  # numba is imported on first use only

    return _numba_loops


def _pool(workers: int) -> ThreadPoolExecutor:
    """One pool per process (rebuilt after fork or when the thread count changes)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None or _POOL[0] != os.getpid() or _POOL[1] != workers:
            if _POOL is not None and _POOL[0] == os.getpid():
                _POOL[2].shutdown(wait=False)
            _POOL = (os.getpid(), workers, ThreadPoolExecutor(workers, "scgb-kernel"))
        return _POOL[2]


def _run(fn, slices: int, *args) -> None:
    """fn(lo, hi, *args) over the slices 0..slices-1, split into one contiguous chunk per
    thread (torch.get_num_threads() threads, so a 1-thread benchmark uses one)."""
    workers = max(1, min(torch.get_num_threads(), slices))
    if workers == 1:
        fn(0, slices, *args)
        return
    bounds = np.linspace(0, slices, workers + 1).round().astype(np.int64)
    futures = [
        _pool(workers).submit(fn, int(bounds[w]), int(bounds[w + 1]), *args)
        for w in range(workers)
    ]
    for f in futures:
        f.result()


def _padded(d: int) -> int:
    """Row length in the loops' scratch: d rounded up to the SIMD width."""
    from scgraphbench.kernels._simd import WIDTH

    return -(-d // WIDTH) * WIDTH


def _flat(x: torch.Tensor) -> tuple[np.ndarray, int, int, int]:
    """A (B, H, n, d) tensor with a contiguous last dimension as (flat view of its storage
    from its first element, batch stride, head stride, row stride); no copy."""
    B, H, n, d = x.shape
    sb, sh, si, sc = x.stride()
    extent = 1 + (B - 1) * sb + (H - 1) * sh + (n - 1) * si + (d - 1) * sc
    flat = x.detach().as_strided((extent,), (1,), x.storage_offset())
    return flat.numpy(), sb, sh, si


def _forward(ctx, q, k, v, graph: CSRGraph, theta, store_states: bool, need_grad: bool):
    """Run the forward loops; keep on ctx what the backward needs. Returns the output."""
    q, k, v = usable(q), usable(k), usable(v)
    B, H, n, d = q.shape
    degree = len(theta) - 1
    theta_a = np.asarray(theta, dtype=DTYPES[q.dtype])
    consts = np.array([1.0 / math.sqrt(d), 0.0, 1.0], dtype=theta_a.dtype)
    out = empty_like_rows(q)
    lse = q.new_empty(B * H * n)
    store = need_grad and store_states and degree > 1
    dp = _padded(d)
    states = q.new_empty(B * H * (degree - 1) * n * dp if store else 0)
    _run(
        _loops().forward_slices,
        B * H,
        H, n, d, dp,
        *_flat(q), *_flat(k), *_flat(v), *_flat(out),
        graph.crow.numpy(), graph.col.numpy(), theta_a, consts, lse.numpy(), states.numpy(),
        store,
    )  # fmt: skip
    if need_grad:
        ctx.graph, ctx.theta, ctx.consts, ctx.stored = graph, theta_a, consts, store
        ctx.kernel_tensors = (q, k, v, lse, states)
    return out


def _backward(ctx, q, k, v, lse, states, grad_out, dq, dk, dv, add: bool) -> None:
    """Run the backward loops, writing (or with ``add``, adding) into dq, dk, dv."""
    B, H, n, d = q.shape
    graph = ctx.graph
    _run(
        _loops().backward_slices,
        B * H,
        H, n, d, _padded(d),
        *_flat(q), *_flat(k), *_flat(v), *_flat(usable(grad_out)),
        *_flat(dq), *_flat(dk), *_flat(dv),
        graph.crow.numpy(), graph.col.numpy(),
        graph.crow_t.numpy(), graph.col_t.numpy(), graph.perm.numpy(), ctx.theta, ctx.consts,
        lse.numpy(), states.numpy(), ctx.stored, add,
    )  # fmt: skip


FusedGraphAttention, PackedFusedGraphAttention = kernel_functions(
    "Fused", _forward, _backward
)


def fused_graph_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    graph: CSRGraph,
    theta: tuple[float, ...],
    store_states: bool = False,
) -> torch.Tensor:
    """The fused CPU kernel on validated inputs (see ``graph_attention``); float16 and
    bfloat16 are computed in float32."""
    if q.dtype in DTYPES:
        return apply_kernel(FusedGraphAttention, PackedFusedGraphAttention, q, k, v, graph,
                            theta, store_states)
    out = FusedGraphAttention.apply(q.float(), k.float(), v.float(), graph, theta, store_states)
    return out.to(q.dtype)
