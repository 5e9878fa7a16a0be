"""What the fused kernels (CPU ``fused_cpu``, GPU ``triton_gpu``) share on the torch side:
the autograd Functions around their forward and backward, the layouts they read and write,
and the packed path for q, k, v that are views of one tensor.

A kernel supplies two functions:
- ``forward(ctx, q, k, v, graph, theta, store_states, need_grad) -> out``; when need_grad,
  it sets ``ctx.kernel_tensors = (q, k, v, lse, states)`` (the tensors its backward reads)
  and whatever else it needs on ctx;
- ``backward(ctx, q, k, v, lse, states, grad_out, dq, dk, dv, add)``, writing the
  gradients into dq, dk, dv (adding to them with ``add``).

Packed path: a fused QKV projection's output viewed as q, k, v (three views of one
tensor). Differentiating with respect to the views makes autograd allocate a zero-filled
gradient of the whole tensor per view, copy into it and add the three up; differentiating
with respect to the tensor itself lets the backward write one gradient buffer. At n=2000,
B=32, d_model=64 that is about 45% of a layer step outside the attention core.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from scgraphbench.kernels.graph_attention import CSRGraph

PACKED_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)


def usable(x: torch.Tensor) -> torch.Tensor:
    """x itself when a kernel can read it in place (unit stride along d, non-negative
    strides), else a contiguous copy."""
    if x.stride(-1) == 1 and min(x.stride()) >= 0:
        return x
    return x.contiguous()


def empty_like_rows(x: torch.Tensor) -> torch.Tensor:
    """An uninitialised (B, H, n, d) tensor laid out as x's rows are: (B, n, H, d) memory
    for the head-interleaved views a fused QKV projection gives (then merging the heads
    afterwards is free), (B, H, n, d) otherwise."""
    B, H, n, d = x.shape
    if H > 1 and n > 1 and x.stride(1) < x.stride(2):
        return x.new_empty(B, n, H, d).permute(0, 2, 1, 3)
    return x.new_empty(B, H, n, d)


def _views_of(base: torch.Tensor, views) -> list[torch.Tensor]:
    return [base.as_strided(size, stride, base.storage_offset() + offset)
            for size, stride, offset in views]


def kernel_functions(name: str, forward, backward) -> tuple[type, type]:
    """The plain and the packed autograd Function of a kernel (see the module docstring)."""

    class Plain(torch.autograd.Function):
        @staticmethod
        def forward(ctx, q, k, v, graph: CSRGraph, theta, store_states: bool):
            need_grad = any(ctx.needs_input_grad[:3])
            out = forward(ctx, q, k, v, graph, theta, store_states, need_grad)
            if need_grad:
                ctx.save_for_backward(*ctx.kernel_tensors)
                del ctx.kernel_tensors
            return out

        @staticmethod
        @torch.autograd.function.once_differentiable
        def backward(ctx, grad_out):  # type: ignore[override]
            q, k, v, lse, states = ctx.saved_tensors
            dq, dk, dv = empty_like_rows(q), empty_like_rows(k), empty_like_rows(v)
            backward(ctx, q, k, v, lse, states, grad_out, dq, dk, dv, False)
            return dq, dk, dv, None, None, None

    class Packed(torch.autograd.Function):
        @staticmethod
        def forward(ctx, base, graph: CSRGraph, theta, store_states: bool, views, disjoint):
            q, k, v = _views_of(base, views)
            need_grad = ctx.needs_input_grad[0]
            out = forward(ctx, q, k, v, graph, theta, store_states, need_grad)
            if need_grad:
                lse, states = ctx.kernel_tensors[3:]
                del ctx.kernel_tensors
                ctx.save_for_backward(base, lse, states)
                ctx.views, ctx.disjoint = views, disjoint
            return out

        @staticmethod
        @torch.autograd.function.once_differentiable
        def backward(ctx, grad_out):  # type: ignore[override]
            base, lse, states = ctx.saved_tensors
            q, k, v = _views_of(base, ctx.views)
            # views that tile the tensor exactly are written once; otherwise they add up
            grad = torch.empty_like(base) if ctx.disjoint else torch.zeros_like(base)
            dq, dk, dv = _views_of(grad, ctx.views)
            backward(ctx, q, k, v, lse, states, grad_out, dq, dk, dv, not ctx.disjoint)
            return grad, None, None, None, None, None

    # named subclasses, so that grad_fn names say which kernel ran
    return (type(f"{name}GraphAttention", (Plain,), {}),
            type(f"Packed{name}GraphAttention", (Packed,), {}))


def apply_kernel(plain: type, packed: type, q, k, v, graph, theta, store_states: bool):
    """``packed`` on the tensor q, k, v are views of when ``packed_views`` allows it (and
    gradients are recorded), else ``plain`` on q, k, v."""
    found = packed_views(q, k, v) if torch.is_grad_enabled() else None
    if found is not None:
        base, views, disjoint = found
        return packed.apply(base, graph, theta, store_states, views, disjoint)
    return plain.apply(q, k, v, graph, theta, store_states)


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


def packed_views(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor):
    """(base, views, disjoint) when q, k, v are same-shaped views of one contiguous tensor
    that requires grad, else None. ``views`` holds each view's (size, stride, offset in
    the base); ``disjoint``: no two views share an element and together they cover the
    base (the gradient then needs no zero fill). Identical views are allowed (their
    gradients add up); partly overlapping ones are left to autograd, since two threads or
    programs could then add into the same element."""
    base = q._base
    if base is None or k._base is not base or v._base is not base:
        return None
    if not (base.requires_grad and base.is_contiguous() and base.dtype in PACKED_DTYPES):
        return None
    if not (q.shape == k.shape == v.shape and q.stride() == k.stride() == v.stride()):
        return None
    dims = _dims(q)
    if q.stride(-1) != 1 or min(q.stride()) < 0 or not _nested(dims):
        return None
    offsets = [t.storage_offset() - base.storage_offset() for t in (q, k, v)]
    pairs = [(a, b) for i, a in enumerate(offsets) for b in offsets[i + 1 :]]
    if any(a != b and _meets(b - a, dims) for a, b in pairs):
        return None
    disjoint = len(set(offsets)) == 3 and 3 * q.numel() == base.numel()
    views = tuple((tuple(q.shape), tuple(q.stride()), off) for off in offsets)
    return base, views, disjoint
