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


def _usable(x: torch.Tensor) -> torch.Tensor:
    """x itself when the loops can read it in place (unit stride along d, non-negative
    strides), else a contiguous copy."""
    if x.stride(-1) == 1 and min(x.stride()) >= 0:
        return x
    return x.contiguous()


def _empty_like_rows(x: torch.Tensor) -> torch.Tensor:
    """An uninitialised (B, H, n, d) tensor laid out as x's rows are: (B, n, H, d) memory
    for the head-interleaved views a fused QKV projection gives (then merging the heads
    afterwards is free), (B, H, n, d) otherwise."""
    B, H, n, d = x.shape
    if H > 1 and n > 1 and x.stride(1) < x.stride(2):
        return x.new_empty(B, n, H, d).permute(0, 2, 1, 3)
    return x.new_empty(B, H, n, d)


def _forward(ctx, q, k, v, graph: CSRGraph, theta, store_states: bool, need_grad: bool):
    """Run the forward loops; keep on ctx what the backward needs. Returns the output."""
    q, k, v = _usable(q), _usable(k), _usable(v)
    B, H, n, d = q.shape
    degree = len(theta) - 1
    theta_a = np.asarray(theta, dtype=DTYPES[q.dtype])
    consts = np.array([1.0 / math.sqrt(d), 0.0, 1.0], dtype=theta_a.dtype)
    out = _empty_like_rows(q)
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
        *_flat(q), *_flat(k), *_flat(v), *_flat(_usable(grad_out)),
        *_flat(dq), *_flat(dk), *_flat(dv),
        graph.crow.numpy(), graph.col.numpy(),
        graph.crow_t.numpy(), graph.col_t.numpy(), graph.perm.numpy(), ctx.theta, ctx.consts,
        lse.numpy(), states.numpy(), ctx.stored, add,
    )  # fmt: skip


class FusedGraphAttention(torch.autograd.Function):
    """out = sum_k theta_k A^k V with A the edge softmax of q.k/sqrt(d) on ``graph``."""

    @staticmethod
    def forward(ctx, q, k, v, graph: CSRGraph, theta: tuple[float, ...], store_states: bool):
        need_grad = any(ctx.needs_input_grad[:3])
        out = _forward(ctx, q, k, v, graph, theta, store_states, need_grad)
        if need_grad:
            ctx.save_for_backward(*ctx.kernel_tensors)
            del ctx.kernel_tensors
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):  # type: ignore[override]
        q, k, v, lse, states = ctx.saved_tensors
        dq, dk, dv = _empty_like_rows(q), _empty_like_rows(k), _empty_like_rows(v)
        _backward(ctx, q, k, v, lse, states, grad_out, dq, dk, dv, add=False)
        return dq, dk, dv, None, None, None


class PackedFusedGraphAttention(torch.autograd.Function):
    """The same on q, k, v that are views of one tensor (a fused QKV projection's output):
    differentiated with respect to that tensor, so the backward writes one gradient buffer
    instead of autograd's zero-filled buffer and copy per view (``_packed``)."""

    @staticmethod
    def forward(ctx, base, graph: CSRGraph, theta, store_states: bool, views, disjoint: bool):
        q, k, v = (base.as_strided(size, stride, base.storage_offset() + offset)
                   for size, stride, offset in views)
        need_grad = ctx.needs_input_grad[0]
        out = _forward(ctx, q, k, v, graph, theta, store_states, need_grad)
        if need_grad:
            _, _, _, lse, states = ctx.kernel_tensors
            del ctx.kernel_tensors
            ctx.save_for_backward(base, lse, states)
            ctx.views, ctx.disjoint = views, disjoint
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):  # type: ignore[override]
        base, lse, states = ctx.saved_tensors
        q, k, v = (base.as_strided(size, stride, base.storage_offset() + offset)
                   for size, stride, offset in ctx.views)
        # views that tile the tensor exactly are written once; otherwise they add up
        grad = torch.empty_like(base) if ctx.disjoint else torch.zeros_like(base)
        dq, dk, dv = (grad.as_strided(size, stride, offset) for size, stride, offset in ctx.views)
        _backward(ctx, q, k, v, lse, states, grad_out, dq, dk, dv, add=not ctx.disjoint)
        return grad, None, None, None, None, None


def _dims(x: torch.Tensor) -> list[tuple[int, int]]:
    """(stride, size) of x's dimensions longer than 1, largest stride first."""
    return sorted(((st, sz) for st, sz in zip(x.stride(), x.shape, strict=True) if sz > 1),
                  reverse=True)


def _nested(dims: list[tuple[int, int]]) -> bool:
    """Whether a view with these dims reaches every element once (no self-overlap)."""
    reach = 0
    for stride, size in reversed(dims):
        if stride <= reach:
            return False
        reach += (size - 1) * stride
    return True


def _meets(delta: int, dims: list[tuple[int, int]]) -> bool:
    """Whether two views with these nested dims, ``delta`` elements apart, share an
    element: delta = sum_k j_k stride_k with |j_k| < size_k (few candidates per level)."""
    if not dims:
        return delta == 0
    (stride, size), rest = dims[0], dims[1:]
    slack = sum((sz - 1) * st for st, sz in rest)
    lo = max(-(size - 1), -((slack - delta) // stride))
    hi = min(size - 1, (delta + slack) // stride)
    return any(_meets(delta - j * stride, rest) for j in range(lo, hi + 1))


def _packed(q, k, v):
    """(base, views, disjoint) when q, k, v are same-shaped views of one contiguous tensor
    whose gradient the packed path can write directly, else None. ``views`` holds each
    view's (size, stride, offset in the base); ``disjoint``: no two views share an element
    and together they cover the base (then the gradient needs no zero fill)."""
    base = q._base
    if base is None or k._base is not base or v._base is not base:
        return None
    if not (base.requires_grad and base.is_contiguous() and base.dtype in DTYPES):
        return None
    if not (q.shape == k.shape == v.shape and q.stride() == k.stride() == v.stride()):
        return None
    dims = _dims(q)
    if q.stride(-1) != 1 or min(q.stride()) < 0 or not _nested(dims):
        return None
    offsets = [t.storage_offset() - base.storage_offset() for t in (q, k, v)]
    pairs = [(a, b) for i, a in enumerate(offsets) for b in offsets[i + 1:]]
    if any(a != b and _meets(b - a, dims) for a, b in pairs):
        return None  # partly overlapping views: left to autograd
    distinct = len(set(offsets)) == 3
    disjoint = distinct and 3 * q.numel() == base.numel()
    views = tuple((tuple(q.shape), tuple(q.stride()), off) for off in offsets)
    return base, views, disjoint


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
        packed = _packed(q, k, v) if torch.is_grad_enabled() else None
        if packed is not None:
            base, views, disjoint = packed
            return PackedFusedGraphAttention.apply(
                base, graph, theta, store_states, views, disjoint
            )
        return FusedGraphAttention.apply(q, k, v, graph, theta, store_states)
    out = FusedGraphAttention.apply(q.float(), k.float(), v.float(), graph, theta, store_states)
    return out.to(q.dtype)
