"""Fused GPU graph attention + diffusion: Triton kernels behind a ``torch.autograd.Function``.

The same operations and the same saved state as the CPU kernel (``fused_cpu``): the
forward computes scores, edge softmax and the first Horner step in one kernel
(``softmax_first_step``), then one kernel per further step (``horner_step``); it keeps
only a log-sum-exp per row for the backward. The backward recomputes the weights and the
diffusion states, then runs one kernel per step along A^T's rows (``grad_step``: the
gradient product and the step's share of dA in one pass, no atomics), the softmax
backward with dQ, and dK. Grids are (n rows, B*H slices); every step needs the whole
previous state, so steps are separate launches.

Selected automatically for CUDA tensors (``graph_attention(impl="auto")``). On CPU it runs
only under Triton's interpreter (TRITON_INTERPRET=1), which is how the tests check it.
"""

from __future__ import annotations

import importlib
import math
import os
from typing import TYPE_CHECKING

import torch

from scgraphbench.kernels._autograd import apply_kernel, empty_like_rows, kernel_functions, usable

if TYPE_CHECKING:
    from scgraphbench.kernels.graph_attention import CSRGraph

BLOCK_E = 32  # edges per chunk of a row


def available() -> bool:
    """Whether triton imports."""
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def interpreting() -> bool:
    """Whether TRITON_INTERPRET asks for Triton's CPU interpreter."""
    return os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on", "yes")


def _kernels():
    from scgraphbench.kernels import _triton_kernels

    if _triton_kernels.INTERPRET != interpreting():  # decorated under the other setting
        _triton_kernels = importlib.reload(_triton_kernels)
    return _triton_kernels


def _rows(x: torch.Tensor) -> tuple:
    """(tensor, batch stride, head stride, row stride) of a (B, H, n, d) tensor."""
    return x, x.stride(0), x.stride(1), x.stride(2)


def _blocks(d: int) -> dict:
    import triton

    return dict(BLOCK_E=BLOCK_E, BLOCK_D=max(triton.next_power_of_2(d), 1))


def _states(q: torch.Tensor, count: int) -> torch.Tensor:
    """``count`` float32 (B, H, n, d) states, on q's device."""
    return torch.empty((count, *q.shape), dtype=torch.float32, device=q.device)


def _diffuse(K, grid, blocks, v, p, graph, theta, zs, first: int, last_out) -> None:
    """Horner steps z_k = theta_k V + A z_{k+1} for k = first-1 down to 0 (z_k in zs[k-1],
    z_0 into ``last_out`` when given, else the loop stops at z_1)."""
    H, d = v.shape[1], v.shape[3]
    stop = 0 if last_out is not None else 1
    for step in range(first - 1, stop - 1, -1):
        dst = last_out if step == 0 else zs[step - 1]
        K.horner_step[grid](
            *_rows(v), *_rows(zs[step]), *_rows(dst),
            graph.crow, graph.col, p,
            float(theta[step]), graph.n_edges, H, d, **blocks,
        )  # fmt: skip


def _forward(ctx, q, k, v, graph: CSRGraph, theta, store_states: bool, need_grad: bool):
    K = _kernels()
    q, k, v = usable(q), usable(k), usable(v)
    B, H, n, d = q.shape
    degree = len(theta) - 1
    grid, blocks = (n, B * H), _blocks(d)
    out = empty_like_rows(q)
    lse = torch.empty(B * H * n, dtype=torch.float32, device=q.device)
    p = torch.empty(B * H * graph.n_edges, dtype=torch.float32, device=q.device)
    store = need_grad and store_states and degree > 1
    # states z_1..z_{D-1}: all of them when stored, else the forward needs only two
    zs = _states(q, degree - 1) if store else _states(q, min(degree - 1, 2))
    slots = list(zs) if store else [zs[(degree - 1 - k) % 2] for k in range(1, degree)]
    first_dst = out if degree == 1 else slots[degree - 2]
    K.softmax_first_step[grid](
        *_rows(q), *_rows(k), *_rows(v), *_rows(first_dst),
        graph.crow, graph.col, p, lse,
        float(theta[degree - 1]), float(theta[degree]), 1.0 / math.sqrt(d), n,
        graph.n_edges, H, d, RECOMPUTE=False, WRITE_DST=True, **blocks,
    )  # fmt: skip
    if degree > 1:
        _diffuse(K, grid, blocks, v, p, graph, theta, slots, degree - 1, out)
    if need_grad:
        ctx.graph, ctx.theta, ctx.stored = graph, theta, store
        ctx.kernel_tensors = (q, k, v, lse, zs if store else zs.new_empty(0))
    return out


def _backward(ctx, q, k, v, lse, states, grad_out, dq, dk, dv, add: bool) -> None:
    K = _kernels()
    graph, theta = ctx.graph, ctx.theta
    B, H, n, d = q.shape
    degree = len(theta) - 1
    grid, blocks = (n, B * H), _blocks(d)
    scale = 1.0 / math.sqrt(d)
    E = graph.n_edges
    p = torch.empty(B * H * E, dtype=torch.float32, device=q.device)
    zs = states if ctx.stored else _states(q, max(degree - 1, 0))
    recompute = degree > 1 and not ctx.stored
    K.softmax_first_step[grid](
        *_rows(q), *_rows(k), *_rows(v), *_rows(zs[degree - 2] if recompute else q),
        graph.crow, graph.col, p, lse,
        float(theta[degree - 1]), float(theta[degree]), scale, n, E, H, d,
        RECOMPUTE=True, WRITE_DST=recompute, **blocks,
    )  # fmt: skip
    if recompute and degree > 2:
        _diffuse(K, grid, blocks, v, p, graph, theta, list(zs), degree - 1, None)
    grad_a = torch.zeros(B * H * E, dtype=torch.float32, device=q.device)
    g = usable(grad_out)
    dv_acc = g.float() * theta[0]  # dV = sum_k theta_k g_k
    buffers = _states(q, 2) if degree > 1 else None
    for step in range(degree):
        last = step == degree - 1
        z, z_scale = (v, float(theta[degree])) if last else (zs[step], 1.0)
        dst = dv_acc if last else buffers[step % 2]
        K.grad_step[grid](
            *_rows(g), *_rows(z), *_rows(dst),
            graph.crow_t, graph.col_t, graph.perm, p, grad_a,
            z_scale, z_scale, E, H, d, HAS_BASE=last, DOTS=True, **blocks,
        )  # fmt: skip
        if not last:
            dv_acc.add_(dst, alpha=float(theta[step + 1]))
            g = dst
    K.softmax_backward_dq[grid](
        *_rows(k), *_rows(dq), graph.crow, graph.col, p, grad_a, scale, E, H, d,
        ADD=add, **blocks,
    )  # fmt: skip
    K.grad_step[grid](  # dK = scale dS^T Q: the A^T product alone, dS now in grad_a
        *_rows(q), *_rows(q), *_rows(dk), graph.crow_t, graph.col_t, graph.perm, grad_a,
        grad_a, scale, 1.0, E, H, d, HAS_BASE=add, DOTS=False, **blocks,
    )  # fmt: skip
    if add:
        dv.add_(dv_acc)
    else:
        dv.copy_(dv_acc)


TritonGraphAttention, PackedTritonGraphAttention = kernel_functions("Triton", _forward, _backward)


def triton_graph_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    graph: CSRGraph,
    theta: tuple[float, ...],
    store_states: bool = False,
) -> torch.Tensor:
    """The Triton kernel on validated inputs (see ``graph_attention``); float32 arithmetic,
    outputs and gradients in the inputs' dtype."""
    return apply_kernel(
        TritonGraphAttention, PackedTritonGraphAttention, q, k, v, graph, theta, store_states
    )
