"""The numba loops of the fused CPU kernel (``fused_cpu.py`` holds the torch side).

Each call processes the (batch, head) slices ``lo..hi-1`` one after the other in the calling
thread (``nogil``: several threads run at once). Tensors arrive as flat 1-D views of their
storage with element offsets and strides: x[b, h, i, c] = x_flat[b*sb + h*sh + i*si + c], so
q, k, v can be the strided views a fused QKV projection produces (no copies) and the output
can be written in (B, n, H, d) order. The last dimension must be contiguous.

Per slice, q (times 1/sqrt(d)), k, v and dOut are first copied into contiguous rows padded
to ``dp``, a multiple of the SIMD width (n*d values: cheap next to the E*d of every step),
so that every edge costs a few vector instructions (``_simd``). The per-edge values (the
weights, their gradient) live in scratch buffers of E values reused slice after slice, the
diffusion states z_1..z_{D-1} likewise unless the forward stored them: a slice's working
set stays in the core's cache for all D steps.

Compiled on first use per dtype and cached on disk (``cache=True``; see docs/kernel.md).
Arithmetic follows the data's dtype: scalars arrive in arrays of that dtype (``theta``,
``consts = [scale, 0, 1]``) because a Python float would widen float32 loops to float64.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from scgraphbench.kernels._simd import (
    WIDTH,
    load,
    store,
    vadd,
    vaxpy,
    vexp,
    vfma,
    vload,
    vmul,
    vscale,
    vstore,
    vsum,
    vzero,
)

_FLAGS = dict(cache=True, nogil=True, boundscheck=False, error_model="numpy")
_INLINE = dict(_FLAGS, inline="always")


# --------------------------------------------------------------------------- rows


@njit(**_INLINE)
def _pack_rows(x, xo, x_si, n, d, scale, dst, dp):
    """dst (n, dp) = scale * x's rows (n, d) of a slice, zero-padded."""
    full = d - d % WIDTH
    for i in range(n):
        src, out = xo + i * x_si, i * dp
        for c in range(0, full, WIDTH):
            vstore(dst, out + c, vscale(scale, vload(x, src + c)))
        for c in range(full, d):
            store(dst, out + c, scale * load(x, src + c))
        for c in range(d, dp):
            store(dst, out + c, 0.0)


@njit(**_INLINE)
def _unpack_rows(src, dp, n, d, x, xo, x_si, add):
    """A slice's rows of x (n, d) = (or += when ``add``) the first d columns of src (n, dp)."""
    full = d - d % WIDTH
    for i in range(n):
        si, out = i * dp, xo + i * x_si
        if add:
            for c in range(0, full, WIDTH):
                vstore(x, out + c, vadd(vload(x, out + c), vload(src, si + c)))
            for c in range(full, d):
                store(x, out + c, load(x, out + c) + load(src, si + c))
        else:
            for c in range(0, full, WIDTH):
                vstore(x, out + c, vload(src, si + c))
            for c in range(full, d):
                store(x, out + c, load(src, si + c))


@njit(**_INLINE)
def _scores(i, lo, hi, col, qs, ks, dp, out):
    """out[e] = qs_i . ks_j for row i's edges e = (i, j)."""
    qi = i * dp
    for e in range(lo, hi):
        kj = load(col, e) * dp
        acc = vzero(qs)
        for o in range(0, dp, WIDTH):
            acc = vfma(vload(qs, qi + o), vload(ks, kj + o), acc)
        store(out, e, vsum(acc))


@njit(**_INLINE)
def _exp_inplace(x):
    """x = e^x, WIDTH lanes at a time (the scalar exp call costs 4x more per value)."""
    size = x.shape[0]
    e = 0
    while e + WIDTH <= size:
        vstore(x, e, vexp(vload(x, e)))
        e += WIDTH
    while e < size:
        x[e] = np.exp(x[e])
        e += 1


@njit(**_INLINE)
def _edge_softmax(n, crow, col, qs, ks, dp, zero, one, p, row_max, lse, lse_o):
    """Edge weights of a slice into p and each row's log-sum-exp into lse[lse_o + i]:
    shifted scores row by row, one vectorised exp over all edges, then the row sums."""
    for i in range(n):
        r0, r1 = load(crow, i), load(crow, i + 1)
        _scores(i, r0, r1, col, qs, ks, dp, p)
        m = load(p, r0) if r0 < r1 else zero
        for e in range(r0 + 1, r1):
            m = max(m, load(p, e))
        store(row_max, i, m)
        for e in range(r0, r1):
            store(p, e, load(p, e) - m)
    _exp_inplace(p)
    for i in range(n):
        r0, r1 = load(crow, i), load(crow, i + 1)
        if r0 == r1:
            store(lse, lse_o + i, zero)  # no edges: the row of A is zero
            continue
        total = zero
        for e in range(r0, r1):
            total += load(p, e)
        inv = one / total
        for e in range(r0, r1):
            store(p, e, load(p, e) * inv)
        store(lse, lse_o + i, load(row_max, i) + np.log(total))


@njit(**_INLINE)
def _edge_weights(n, crow, col, qs, ks, dp, lse, lse_o, p):
    """A slice's edge weights again from the rows' log-sum-exp: p = exp(s - lse)."""
    for i in range(n):
        r0, r1 = load(crow, i), load(crow, i + 1)
        _scores(i, r0, r1, col, qs, ks, dp, p)
        shift = load(lse, lse_o + i)
        for e in range(r0, r1):
            store(p, e, load(p, e) - shift)
    _exp_inplace(p)


@njit(**_INLINE)
def _softmax_backward_row(lo, hi, p, grad_a, zero):
    """grad_a = p (grad_a - sum_e p grad_a) on row i's edges: dS / scale."""
    r = zero
    for e in range(lo, hi):
        r += load(p, e) * load(grad_a, e)
    for e in range(lo, hi):
        store(grad_a, e, load(p, e) * (load(grad_a, e) - r))


@njit(**_INLINE)
def _axpby(a, x, b, y, out, size):
    """out = a x + b y over ``size`` values (a multiple of WIDTH)."""
    for c in range(0, size, WIDTH):
        vstore(out, c, vaxpy(b, vload(y, c), vscale(a, vload(x, c))))


@njit(**_INLINE)
def _gather_row(i, lo, hi, col, w, w_scale, src, dst, dp, base, base_scale, has_base):
    """dst_i = base_scale * base_i (if has_base) + w_scale * sum_e w_e src_j: one row of a
    sparse-dense product. Lanes two chunks at a time and edges two at a time, four
    accumulators, so that consecutive FMAs do not wait on each other."""
    di = i * dp
    for o in range(0, dp, 2 * WIDTH):
        pair = o + WIDTH < dp
        a0, a1, b0, b1 = vzero(src), vzero(src), vzero(src), vzero(src)
        e = lo
        while e + 1 < hi:
            s0, s1 = load(col, e) * dp + o, load(col, e + 1) * dp + o
            w0, w1 = load(w, e), load(w, e + 1)
            a0 = vaxpy(w0, vload(src, s0), a0)
            b0 = vaxpy(w1, vload(src, s1), b0)
            if pair:
                a1 = vaxpy(w0, vload(src, s0 + WIDTH), a1)
                b1 = vaxpy(w1, vload(src, s1 + WIDTH), b1)
            e += 2
        if e < hi:
            s0, w0 = load(col, e) * dp + o, load(w, e)
            a0 = vaxpy(w0, vload(src, s0), a0)
            if pair:
                a1 = vaxpy(w0, vload(src, s0 + WIDTH), a1)
        a0 = vscale(w_scale, vadd(a0, b0))
        if has_base:
            a0 = vaxpy(base_scale, vload(base, di + o), a0)
        vstore(dst, di + o, a0)
        if pair:
            a1 = vscale(w_scale, vadd(a1, b1))
            if has_base:
                a1 = vaxpy(base_scale, vload(base, di + o + WIDTH), a1)
            vstore(dst, di + o + WIDTH, a1)


@njit(**_INLINE)
def _scatter_row(i, lo, hi, col, w, w_scale, src, dst, dp):
    """dst_j += w_scale * w_e * src_i for row i's edges (A^T's product, along A's rows)."""
    si = i * dp
    for o in range(0, dp, WIDTH):
        x = vscale(w_scale, vload(src, si + o))
        for e in range(lo, hi):
            dj = load(col, e) * dp + o
            vstore(dst, dj, vaxpy(load(w, e), x, vload(dst, dj)))


@njit(**_INLINE)
def _grad_step_col(j, lo, hi, col_t, p_t, p_scale, g, z, z_scale, grad_t, dst, dp, base, has_base):
    """One step of the backward along column j of A (row j of A^T), edges e' = (i, j) in
    A^T's order: dst_j = base_j (if has_base) + p_scale * sum_e' p_t[e'] g_i, that is
    g_{k+1} = A^T g_k, and grad_t[e'] += z_scale * g_i . z_j, the step's share of dA.
    Both read the same g_i and z_j stays in registers: one row load per edge."""
    dj = j * dp
    for o in range(0, dp, 2 * WIDTH):
        pair = o + WIDTH < dp
        z0 = vload(z, dj + o)
        z1 = vload(z, dj + o + WIDTH) if pair else z0
        a0, a1 = vzero(g), vzero(g)
        for e in range(lo, hi):
            si = load(col_t, e) * dp + o
            w = load(p_t, e)
            x0 = vload(g, si)
            a0 = vaxpy(w, x0, a0)
            s = vmul(x0, z0)
            if pair:
                x1 = vload(g, si + WIDTH)
                a1 = vaxpy(w, x1, a1)
                s = vfma(x1, z1, s)
            store(grad_t, e, load(grad_t, e) + z_scale * vsum(s))
        a0 = vscale(p_scale, a0)
        if has_base:
            a0 = vadd(a0, vload(base, dj + o))
        vstore(dst, dj + o, a0)
        if pair:
            a1 = vscale(p_scale, a1)
            if has_base:
                a1 = vadd(a1, vload(base, dj + o + WIDTH))
            vstore(dst, dj + o + WIDTH, a1)


@njit(**_FLAGS)
def _recurse(n, crow, col, p, theta, one, vs, zs, top, stop, dp):
    """Horner steps z_k = theta_k V + A z_{k+1} for k = top-1 down to stop, z_top already in
    zs (z_k at zs[(k-1)*n*dp ...]; z_0, when stop is 0, at zs's slot -1 is not allowed:
    callers pass stop >= 1)."""
    ndp = n * dp
    for step in range(top - 1, stop - 1, -1):
        src, dst = zs[step * ndp : (step + 1) * ndp], zs[(step - 1) * ndp : step * ndp]
        for i in range(n):
            _gather_row(i, crow[i], crow[i + 1], col, p, one, src, dst, dp, vs, theta[step], True)


# --------------------------------------------------------------------------- slices


@njit(**_FLAGS)
def forward_slices(
    lo, hi, heads, n, d, dp,
    q, q_sb, q_sh, q_si,
    k, k_sb, k_sh, k_si,
    v, v_sb, v_sh, v_si,
    out, o_sb, o_sh, o_si,
    crow, col, theta, consts, lse, states, store,
):  # fmt: skip
    """out = sum_k theta_k A^k V per slice; lse (BH*n) receives each row's log-sum-exp;
    with ``store``, states (BH, D-1, n, dp) receives z_1..z_{D-1} for the backward."""
    degree = theta.shape[0] - 1
    ndp = n * dp
    scale, zero, one = consts[0], consts[1], consts[2]
    dtype = q.dtype
    p, row_max = np.empty(col.shape[0], dtype=dtype), np.empty(n, dtype=dtype)
    qs, ks, vs = np.empty(ndp, dtype), np.empty(ndp, dtype), np.empty(ndp, dtype)
    z0 = np.empty(ndp, dtype)
    scratch = np.empty(0 if store else max(degree - 1, 0) * ndp, dtype=dtype)
    top = theta[degree]
    for s in range(lo, hi):
        b = s // heads
        h = s - b * heads
        _pack_rows(q, b * q_sb + h * q_sh, q_si, n, d, scale, qs, dp)
        _pack_rows(k, b * k_sb + h * k_sh, k_si, n, d, one, ks, dp)
        _pack_rows(v, b * v_sb + h * v_sh, v_si, n, d, one, vs, dp)
        zs = states[s * (degree - 1) * ndp : (s + 1) * (degree - 1) * ndp] if store else scratch
        _edge_softmax(n, crow, col, qs, ks, dp, zero, one, p, row_max, lse, s * n)
        # Horner: z_{D-1} = theta_{D-1} V + theta_D A V, ..., z_0 = out
        first = z0 if degree == 1 else zs[(degree - 2) * ndp : (degree - 1) * ndp]
        for i in range(n):
            _gather_row(i, crow[i], crow[i + 1], col, p, top, vs, first, dp, vs, theta[degree - 1], True)
        if degree > 1:
            _recurse(n, crow, col, p, theta, one, vs, zs, degree - 1, 1, dp)
            z1 = zs[:ndp]
            for i in range(n):
                _gather_row(i, crow[i], crow[i + 1], col, p, one, z1, z0, dp, vs, theta[0], True)
        _unpack_rows(z0, dp, n, d, out, b * o_sb + h * o_sh, o_si, False)


@njit(**_FLAGS)
def backward_slices(
    lo, hi, heads, n, d, dp,
    q, q_sb, q_sh, q_si,
    k, k_sb, k_sh, k_si,
    v, v_sb, v_sh, v_si,
    g, g_sb, g_sh, g_si,
    dq, dq_sb, dq_sh, dq_si,
    dk, dk_sb, dk_sh, dk_si,
    dv, dv_sb, dv_sh, dv_si,
    crow, col, crow_t, col_t, perm, theta, consts, lse, states, stored, add,
):  # fmt: skip
    """dQ, dK, dV of out = sum_k theta_k A^k V, A = edge softmax(q.k * scale), per slice.

    g_0 = dOut, g_{k+1} = A^T g_k, dV = sum_k theta_k g_k and
    dA_e = sum_{k<D} g_k[i] . z_{k+1}[j] (z_D = theta_D V), one pass per step along A^T's
    rows (crow_t, col_t; perm maps A^T's edges to A's); then the softmax backward
    dS = A (dA - rowsum(A dA)), dQ = scale dS K and dK = scale dS^T Q row by row."""
    degree = theta.shape[0] - 1
    ndp = n * dp
    scale, zero, one = consts[0], consts[1], consts[2]
    dtype = q.dtype
    n_edges = col.shape[0]
    p, grad_a = np.empty(n_edges, dtype), np.empty(n_edges, dtype)
    p_t, grad_t = np.empty(n_edges, dtype), np.empty(n_edges, dtype)
    qs, ks, vs = np.empty(ndp, dtype), np.empty(ndp, dtype), np.empty(ndp, dtype)
    g_cur, g_next = np.empty(ndp, dtype), np.empty(ndp, dtype)
    dq_s, dk_s, dv_s = np.empty(ndp, dtype), np.empty(ndp, dtype), np.empty(ndp, dtype)
    scratch = np.empty(0 if stored else max(degree - 1, 0) * ndp, dtype=dtype)
    top = theta[degree]
    for s in range(lo, hi):
        b = s // heads
        h = s - b * heads
        _pack_rows(q, b * q_sb + h * q_sh, q_si, n, d, scale, qs, dp)
        _pack_rows(k, b * k_sb + h * k_sh, k_si, n, d, one, ks, dp)
        _pack_rows(v, b * v_sb + h * v_sh, v_si, n, d, one, vs, dp)
        _pack_rows(g, b * g_sb + h * g_sh, g_si, n, d, one, g_cur, dp)
        zs = states[s * (degree - 1) * ndp : (s + 1) * (degree - 1) * ndp] if stored else scratch
        # weights from the log-sum-exp; z_{D-1}..z_1 again unless stored
        _edge_weights(n, crow, col, qs, ks, dp, lse, s * n, p)
        if degree > 1 and not stored:
            last_z = zs[(degree - 2) * ndp : (degree - 1) * ndp]
            for i in range(n):
                _gather_row(i, crow[i], crow[i + 1], col, p, top, vs, last_z, dp, vs,
                            theta[degree - 1], True)
            _recurse(n, crow, col, p, theta, one, vs, zs, degree - 1, 1, dp)
        # A^T's order from here: p_t[e'] = p[perm[e']], dA accumulates in grad_t
        for e in range(n_edges):
            store(p_t, e, load(p, load(perm, e)))
        grad_t[:] = zero
        _axpby(theta[0], g_cur, zero, g_cur, dv_s, ndp)
        for step in range(degree):
            # dA += g_k . z_{k+1} on every edge, g_{k+1} = A^T g_k, dV += theta_{k+1} g_{k+1};
            # the last step has z_D = theta_D V and adds theta_D g_D to dV directly
            last = step == degree - 1
            z = vs if last else zs[step * ndp : (step + 1) * ndp]
            z_scale = top if last else one
            out = dv_s if last else g_next
            for j in range(n):
                _grad_step_col(j, load(crow_t, j), load(crow_t, j + 1), col_t, p_t, z_scale,
                               g_cur, z, z_scale, grad_t, out, dp, dv_s, last)
            if not last:
                _axpby(one, dv_s, theta[step + 1], g_next, dv_s, ndp)
                g_cur, g_next = g_next, g_cur
        for e in range(n_edges):
            store(grad_a, load(perm, e), load(grad_t, e))
        # the softmax backward and dQ = scale dS K, dK = scale dS^T Q, row by row
        dk_s[:] = zero
        for i in range(n):
            r0, r1 = load(crow, i), load(crow, i + 1)
            _softmax_backward_row(r0, r1, p, grad_a, zero)
            _gather_row(i, r0, r1, col, grad_a, scale, ks, dq_s, dp, ks, zero, False)
            _scatter_row(i, r0, r1, col, grad_a, one, qs, dk_s, dp)
        # into one buffer when q, k, v are views of one tensor (overlapping views add up)
        _unpack_rows(dq_s, dp, n, d, dq, b * dq_sb + h * dq_sh, dq_si, add)
        _unpack_rows(dk_s, dp, n, d, dk, b * dk_sb + h * dk_sh, dk_si, add)
        _unpack_rows(dv_s, dp, n, d, dv, b * dv_sb + h * dv_sh, dv_si, add)
