"""Triton kernels of the GPU graph attention (``triton_gpu.py`` holds the torch side).

Every kernel runs one program per (row, batch*head slice): grid (n, B*H). A row's edges are
read in chunks of BLOCK_E; the head dimension is padded to BLOCK_D (a power of two) and
masked. Tensors are addressed as x[b, h, i, c] = x_ptr + b*sb + h*sh + i*si + c (the last
dimension contiguous), so strided q, k, v views and the (B, n, H, d) output need no copy.
Arithmetic is float32 whatever the input dtype. Per-edge buffers (weights, their
gradient) are B*H*E float32, allocated per call and freed when it returns.

TRITON_INTERPRET=1 is read when this module is imported (``triton.jit`` decides then);
``triton_gpu`` re-imports it when the setting changed, so tests can run it on CPU.
"""

from __future__ import annotations

import triton
import triton.language as tl
from triton import knobs

INTERPRET = bool(knobs.runtime.interpret)


@triton.jit
def _program(heads, BLOCK_D: tl.constexpr):
    """This program's row, its slice, the slice's batch and head, the lane offsets."""
    row = tl.program_id(0).to(tl.int64)
    s = tl.program_id(1).to(tl.int64)
    b = s // heads
    return row, s, b, s - b * heads, tl.arange(0, BLOCK_D)


@triton.jit
def _rows(base, index, row_stride, offs_d, emask, dmask):
    """The rows ``index`` (a chunk of edges' endpoints) of a slice, as float32."""
    tile = tl.load(base + index[:, None] * row_stride + offs_d[None, :],
                   mask=emask[:, None] & dmask[None, :], other=0.0)
    return tile.to(tl.float32)


@triton.jit
def softmax_first_step(
    q_ptr, q_sb, q_sh, q_si,
    k_ptr, k_sb, k_sh, k_si,
    v_ptr, v_sb, v_sh, v_si,
    dst_ptr, dst_sb, dst_sh, dst_si,
    crow_ptr, col_ptr, p_ptr, lse_ptr,
    theta_k, theta_top, scale, n, n_edges, heads, d,
    RECOMPUTE: tl.constexpr, WRITE_DST: tl.constexpr,
    BLOCK_E: tl.constexpr, BLOCK_D: tl.constexpr,
):  # fmt: skip
    """Edge weights of row i into p (and its log-sum-exp into lse), then the first Horner
    step dst_i = theta_k v_i + theta_top sum_e p_e v_j. RECOMPUTE: the weights again from
    the stored log-sum-exp, exp(s - lse), in one pass (the backward)."""
    i, s, b, h, offs_d = _program(heads, BLOCK_D)
    dmask = offs_d < d
    lo = tl.load(crow_ptr + i)
    hi = tl.load(crow_ptr + i + 1)
    q = tl.load(q_ptr + b * q_sb + h * q_sh + i * q_si + offs_d, mask=dmask, other=0.0)
    q = q.to(tl.float32) * scale
    k_base = k_ptr + b * k_sb + h * k_sh
    v_base = v_ptr + b * v_sb + h * v_sh
    p_base = p_ptr + s * n_edges
    if RECOMPUTE:
        lse = tl.load(lse_ptr + s * n + i)
    else:
        # scores (kept in p for the second pass) and an online max / sum
        m = tl.full((), float("-inf"), tl.float32)
        total = tl.zeros((), tl.float32)
        for start in range(lo, hi, BLOCK_E):
            e = start + tl.arange(0, BLOCK_E)
            emask = e < hi
            j = tl.load(col_ptr + e, mask=emask, other=0)
            kt = _rows(k_base, j, k_si, offs_d, emask, dmask)
            scores = tl.sum(kt * q[None, :], axis=1)
            scores = tl.where(emask, scores, float("-inf"))
            tl.store(p_base + e, scores, mask=emask)
            m_new = tl.maximum(m, tl.max(scores, axis=0))
            total = total * tl.exp(m - m_new) + tl.sum(tl.exp(scores - m_new), axis=0)
            m = m_new
        lse = tl.where(hi > lo, m + tl.log(total), 0.0)
        tl.store(lse_ptr + s * n + i, lse)
    acc = tl.zeros((BLOCK_D,), tl.float32)
    for start in range(lo, hi, BLOCK_E):
        e = start + tl.arange(0, BLOCK_E)
        emask = e < hi
        j = tl.load(col_ptr + e, mask=emask, other=0)
        if RECOMPUTE:
            kt = _rows(k_base, j, k_si, offs_d, emask, dmask)
            scores = tl.sum(kt * q[None, :], axis=1)
        else:
            scores = tl.load(p_base + e, mask=emask, other=0.0)
        w = tl.where(emask, tl.exp(scores - lse), 0.0)
        tl.store(p_base + e, w, mask=emask)
        if WRITE_DST:
            vt = _rows(v_base, j, v_si, offs_d, emask, dmask)
            acc += tl.sum(w[:, None] * vt, axis=0)
    if WRITE_DST:
        vi = tl.load(v_base + i * v_si + offs_d, mask=dmask, other=0.0).to(tl.float32)
        out = theta_k * vi + theta_top * acc
        dst = dst_ptr + b * dst_sb + h * dst_sh + i * dst_si + offs_d
        tl.store(dst, out.to(dst_ptr.dtype.element_ty), mask=dmask)


@triton.jit
def horner_step(
    v_ptr, v_sb, v_sh, v_si,
    src_ptr, src_sb, src_sh, src_si,
    dst_ptr, dst_sb, dst_sh, dst_si,
    crow_ptr, col_ptr, p_ptr,
    theta_k, n_edges, heads, d,
    BLOCK_E: tl.constexpr, BLOCK_D: tl.constexpr,
):  # fmt: skip
    """dst_i = theta_k v_i + sum_e p_e src_j: one step z_k = theta_k V + A z_{k+1}."""
    i, s, b, h, offs_d = _program(heads, BLOCK_D)
    dmask = offs_d < d
    lo = tl.load(crow_ptr + i)
    hi = tl.load(crow_ptr + i + 1)
    src_base = src_ptr + b * src_sb + h * src_sh
    p_base = p_ptr + s * n_edges
    acc = tl.zeros((BLOCK_D,), tl.float32)
    for start in range(lo, hi, BLOCK_E):
        e = start + tl.arange(0, BLOCK_E)
        emask = e < hi
        j = tl.load(col_ptr + e, mask=emask, other=0)
        w = tl.load(p_base + e, mask=emask, other=0.0)
        zt = _rows(src_base, j, src_si, offs_d, emask, dmask)
        acc += tl.sum(w[:, None] * zt, axis=0)
    vi = tl.load(v_ptr + b * v_sb + h * v_sh + i * v_si + offs_d, mask=dmask, other=0.0)
    out = theta_k * vi.to(tl.float32) + acc
    dst = dst_ptr + b * dst_sb + h * dst_sh + i * dst_si + offs_d
    tl.store(dst, out.to(dst_ptr.dtype.element_ty), mask=dmask)


@triton.jit
def grad_step(
    g_ptr, g_sb, g_sh, g_si,
    z_ptr, z_sb, z_sh, z_si,
    dst_ptr, dst_sb, dst_sh, dst_si,
    crow_t_ptr, col_t_ptr, perm_ptr, p_ptr, grad_a_ptr,
    p_scale, z_scale, n_edges, heads, d,
    HAS_BASE: tl.constexpr, DOTS: tl.constexpr, BLOCK_E: tl.constexpr,
    BLOCK_D: tl.constexpr,
):  # fmt: skip
    """Row j of A^T (column j of A), edges e' = (i, j): dst_j (+)= p_scale sum p_e g_i
    (g_{k+1} = A^T g_k; added to dst's old value with HAS_BASE) and, with DOTS,
    grad_a[e] += z_scale g_i . z_j, with e = perm[e'] A's edge id (each edge is one
    program's: no atomics). Without DOTS it is the product with A^T's edge values p alone
    (dK = scale dS^T Q)."""
    jrow, s, b, h, offs_d = _program(heads, BLOCK_D)
    dmask = offs_d < d
    lo = tl.load(crow_t_ptr + jrow)
    hi = tl.load(crow_t_ptr + jrow + 1)
    g_base = g_ptr + b * g_sb + h * g_sh
    if DOTS:
        zj = tl.load(z_ptr + b * z_sb + h * z_sh + jrow * z_si + offs_d, mask=dmask, other=0.0)
        zj = zj.to(tl.float32) * z_scale
    p_base = p_ptr + s * n_edges
    ga_base = grad_a_ptr + s * n_edges
    acc = tl.zeros((BLOCK_D,), tl.float32)
    for start in range(lo, hi, BLOCK_E):
        et = start + tl.arange(0, BLOCK_E)
        emask = et < hi
        i = tl.load(col_t_ptr + et, mask=emask, other=0)
        e = tl.load(perm_ptr + et, mask=emask, other=0)
        w = tl.load(p_base + e, mask=emask, other=0.0)
        gt = _rows(g_base, i, g_si, offs_d, emask, dmask)
        acc += tl.sum(w[:, None] * gt, axis=0)
        if DOTS:
            dots = tl.sum(gt * zj[None, :], axis=1)
            old = tl.load(ga_base + e, mask=emask, other=0.0)
            tl.store(ga_base + e, old + dots, mask=emask)
    out = p_scale * acc
    dst = dst_ptr + b * dst_sb + h * dst_sh + jrow * dst_si + offs_d
    if HAS_BASE:
        out += tl.load(dst, mask=dmask, other=0.0).to(tl.float32)
    tl.store(dst, out.to(dst_ptr.dtype.element_ty), mask=dmask)


@triton.jit
def softmax_backward_dq(
    k_ptr, k_sb, k_sh, k_si,
    dq_ptr, dq_sb, dq_sh, dq_si,
    crow_ptr, col_ptr, p_ptr, grad_a_ptr,
    scale, n_edges, heads, d,
    ADD: tl.constexpr, BLOCK_E: tl.constexpr, BLOCK_D: tl.constexpr,
):  # fmt: skip
    """Row i: dS = p (dA - sum_e p dA) written over dA, dq_i (+)= scale sum_e dS_e k_j."""
    i, s, b, h, offs_d = _program(heads, BLOCK_D)
    dmask = offs_d < d
    lo = tl.load(crow_ptr + i)
    hi = tl.load(crow_ptr + i + 1)
    p_base = p_ptr + s * n_edges
    ga_base = grad_a_ptr + s * n_edges
    r = tl.zeros((), tl.float32)
    for start in range(lo, hi, BLOCK_E):
        e = start + tl.arange(0, BLOCK_E)
        emask = e < hi
        w = tl.load(p_base + e, mask=emask, other=0.0)
        ga = tl.load(ga_base + e, mask=emask, other=0.0)
        r += tl.sum(w * ga, axis=0)
    k_base = k_ptr + b * k_sb + h * k_sh
    acc = tl.zeros((BLOCK_D,), tl.float32)
    for start in range(lo, hi, BLOCK_E):
        e = start + tl.arange(0, BLOCK_E)
        emask = e < hi
        j = tl.load(col_ptr + e, mask=emask, other=0)
        w = tl.load(p_base + e, mask=emask, other=0.0)
        ga = tl.load(ga_base + e, mask=emask, other=0.0)
        ds = w * (ga - r)
        tl.store(ga_base + e, ds, mask=emask)
        kt = _rows(k_base, j, k_si, offs_d, emask, dmask)
        acc += tl.sum(ds[:, None] * kt, axis=0)
    out = scale * acc
    dst = dq_ptr + b * dq_sb + h * dq_sh + i * dq_si + offs_d
    if ADD:
        out += tl.load(dst, mask=dmask, other=0.0).to(tl.float32)
    tl.store(dst, out.to(dq_ptr.dtype.element_ty), mask=dmask)
