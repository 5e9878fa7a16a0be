"""Neighbour attention + graph diffusion (GenoHoption) on a CSR graph shared by the batch.

``graph_attention`` is the entry point; it picks one of three implementations (``impl``,
see its docstring and docs/kernel.md): the fused CPU kernel (``fused_cpu.py``, numba), the
fused GPU kernel (``triton_gpu.py``, Triton) or the ``torch.sparse`` implementation in this
module, which is the reference they are tested against and the fallback for what they do
not cover (attention dropout, other dtypes or devices).

The torch.sparse implementation. Hand-written because no maintained library offers sparse attention + diffusion with an
explicit backward that runs on CPU as well as CUDA (``torch.sparse`` autograd builds a dense
(B*H*n)^2 gradient; PyG/DGL layers gather (E, d) messages per edge, which is slow and
memory-hungry on CPU).

Shapes: q, k, v are (B, H, n, d); the graph has n nodes and E edges (self-loops included);
attention weights live on edges, (B, H, E).

How it runs. The B*H attention matrices share one sparsity pattern, so they are laid out as
one block-diagonal CSR matrix of size (B*H*n)^2 with B*H*E stored values; then
- edge scores q_i.k_j/sqrt(d) come from ``torch.sparse.sampled_addmm`` (SDDMM),
- the softmax over each row's edges from ``torch.segment_reduce`` (row max) and a CSR x
  ones ``addmv`` (row sums),
- A @ X from CSR x dense ``torch.addmm`` (MKL on CPU, cuSPARSE on CUDA),
- A^T @ X from a second CSR holding the transposed pattern; its values are a fixed
  permutation (``CSRGraph.perm``) of A's values.
All these ops exist for CPU and CUDA tensors, so the same code runs on both (tested here on
CPU only; there is no GPU on the development machine).

Diffusion. Every mode is a truncated series out = sum_{k=0}^{D} theta_k A^k V, evaluated
Horner-style (z_D = theta_D V, z_k = theta_k V + A z_{k+1}, out = z_0), so one recursion and
one hand-written backward serve all modes:
  g_0 = dOut, g_{k+1} = A^T g_k,  dV = sum_k theta_k g_k,
  dA (on edges) = sum_{k<D} g_k[i] . z_{k+1}[j]   -- accumulated one SDDMM per step,
then the softmax backward dS = A * (dA - rowsum(A * dA)) and dQ = dS K, dK = dS^T Q (scaled).
Memory: the attention weights and the batched index arrays, O(B*H*E), plus the D-1
intermediate states z_1..z_{D-1}, (D-1) * B*H*n*d, kept from the forward for the backward;
the g_k are not stored (each is used once, then dropped). ``checkpoint=True`` recomputes the
states in the backward instead (D-1 more sparse products; frees them between the forward
and the backward, which matters for deep models).
"""

from __future__ import annotations

import hashlib
import math
import os
import warnings
import weakref
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import torch

DIFFUSION_MODES = (None, "ppr", "heat")
IMPLS = ("auto", "fused", "triton", "torch_sparse")
IMPL_ENV = "SCGB_KERNEL_IMPL"  # replaces impl="auto" when set
# (pattern fingerprint, device) -> the CSRGraph that layers on that graph share
_SHARED_GRAPHS: weakref.WeakValueDictionary = weakref.WeakValueDictionary()


@dataclass
class CSRGraph:
    """Row i lists the genes that gene i attends to (its incoming neighbours).

    ``crow_t``/``col_t`` hold the transposed pattern (A^T in CSR form) and ``perm`` maps it
    back: the e-th stored edge of A^T is edge ``perm[e]`` of A, so A^T's values are
    ``values[..., perm]``.
    """

    crow: torch.Tensor  # (n+1,) int64
    col: torch.Tensor  # (E,) int64
    row: torch.Tensor  # (E,) int64, row index of each edge
    n: int
    crow_t: torch.Tensor | None = None  # (n+1,) int64
    col_t: torch.Tensor | None = None  # (E,) int64
    perm: torch.Tensor | None = None  # (E,) int64
    # block-diagonal index arrays by number of copies (B*H); rebuilt after .to()
    _blocks: dict[int, tuple[torch.Tensor, ...]] = field(
        default_factory=dict, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if self.perm is None:  # derive the transposed pattern (torch ops: any device)
            # A^T in CSR order = A's edges sorted by (col, row)
            self.perm = torch.argsort(self.col * self.n + self.row, stable=True)
            self.col_t = self.row[self.perm]
            counts = torch.bincount(self.col, minlength=self.n)
            self.crow_t = torch.cat([counts.new_zeros(1), torch.cumsum(counts, 0)])

    @classmethod
    def from_scipy(cls, A: sp.spmatrix, add_self_loops: bool = True) -> CSRGraph:
        """Binary pattern of a square scipy matrix (explicit zeros dropped, duplicates merged)."""
        A = sp.csr_matrix(A, dtype=np.float32)
        if A.shape[0] != A.shape[1]:
            raise ValueError(f"graph adjacency must be square, got shape {A.shape}")
        A.eliminate_zeros()
        A.data[:] = 1.0
        if add_self_loops:
            A = A + sp.identity(A.shape[0], dtype=np.float32, format="csr")
        A = sp.csr_matrix(A)
        A.sum_duplicates()
        A.sort_indices()
        crow = torch.from_numpy(A.indptr.astype(np.int64))
        col = torch.from_numpy(A.indices.astype(np.int64))
        row = torch.repeat_interleave(torch.arange(A.shape[0]), crow[1:] - crow[:-1])
        return cls(crow=crow, col=col, row=row, n=A.shape[0])

    @property
    def n_edges(self) -> int:
        return int(self.col.numel())

    @property
    def device(self) -> torch.device:
        return self.col.device

    def to(self, device: torch.device | str) -> CSRGraph:
        return CSRGraph(
            self.crow.to(device),
            self.col.to(device),
            self.row.to(device),
            self.n,
            self.crow_t.to(device),
            self.col_t.to(device),
            self.perm.to(device),
        )

    def fingerprint(self) -> str:
        """sha1 of the pattern (n, crow, col), for sharing one graph between layers."""
        digest = hashlib.sha1(str(self.n).encode())
        for tensor in (self.crow, self.col):
            digest.update(tensor.detach().cpu().numpy().tobytes())
        return digest.hexdigest()

    def shared(self, key: str) -> CSRGraph:
        """The graph registered under (key, device) by another layer, else this one (then
        registered): layers on one graph share its batched index arrays, 2 x B*H*E ints,
        instead of building a copy each."""
        slot = (key, str(self.device))
        existing = _SHARED_GRAPHS.get(slot)
        if existing is None:
            _SHARED_GRAPHS[slot] = existing = self
        return existing

    def block_diagonal(self, copies: int) -> tuple[torch.Tensor, ...]:
        """(crow, col, crow_t, col_t) of ``copies`` copies of the pattern on a block diagonal.

        int32 when it fits (half the memory; MKL and cuSPARSE take both). The last two
        batch sizes used are cached: building them costs about as much as one sparse
        product."""
        if copies not in self._blocks:
            if len(self._blocks) >= 2:
                self._blocks.pop(next(iter(self._blocks)))
            self._blocks[copies] = (
                *self._expand(self.crow, self.col, copies),
                *self._expand(self.crow_t, self.col_t, copies),
            )
        return self._blocks[copies]

    def _expand(
        self, crow: torch.Tensor, col: torch.Tensor, copies: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        n, E = self.n, self.n_edges
        dtype = torch.int32 if copies * max(E, n) < 2**31 - 1 else torch.int64
        dev = self.device
        crow_b = torch.empty(copies * n + 1, dtype=dtype, device=dev)
        crow_b[:-1].view(copies, n).copy_(crow[:-1].view(1, n)).add_(
            torch.arange(copies, device=dev, dtype=dtype).mul_(E).view(-1, 1)
        )
        crow_b[-1] = copies * E
        col_b = torch.empty(copies, E, dtype=dtype, device=dev)
        col_b.copy_(col.view(1, E)).add_(
            torch.arange(copies, device=dev, dtype=dtype).mul_(n).view(-1, 1)
        )
        return crow_b, col_b.view(-1)


def diffusion_coefficients(
    mode: str | None, steps: int, alpha: float = 0.25, t: float = 5.0, normalise_heat: bool = False
) -> list[float]:
    """theta_k of the truncated series sum_{k=0}^{D} theta_k A^k V that a mode computes.

    - None (plain neighbour attention): out = A V, theta = [0, 1].
    - ppr: V_0 = V, V_k = (1-alpha) A V_{k-1} + alpha V, out = V_steps, so
      theta_k = alpha (1-alpha)^k for k < steps and theta_steps = (1-alpha)^steps
      (the coefficients sum to 1: nothing is truncated away); steps=0 gives out = V.
    - heat: V_0 = e^{-t} V, V_k = (t/k) A V_{k-1}, out = sum_{k<steps} V_k, so
      theta_k = e^{-t} t^k / k! for k < steps. These sum to ``heat_mass(t, steps)`` < 1:
      with t=5 and steps=6 only 61.6% of the heat kernel's weight is kept (steps=12 keeps
      99.5%). ``normalise_heat=True`` divides by that sum so the weights sum to 1;
      ``heat_steps_for_tolerance`` picks steps for a given truncation error instead.
    """
    if mode is None:
        return [0.0, 1.0]
    if steps < (1 if mode == "heat" else 0):
        raise ValueError(
            f"diffusion steps must be >= {int(mode == 'heat')} for {mode}, got {steps}"
        )
    if mode == "ppr":
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"PPR alpha must be in [0, 1], got {alpha}")
        return [alpha * (1 - alpha) ** k for k in range(steps)] + [(1 - alpha) ** steps]
    if mode == "heat":
        if t <= 0:
            raise ValueError(f"heat-kernel time t must be > 0, got {t}")
        theta = [math.exp(-t) * t**k / math.factorial(k) for k in range(steps)]
        if normalise_heat:
            total = sum(theta)
            theta = [c / total for c in theta]
        return theta
    raise ValueError(f"unknown diffusion mode '{mode}' (expected None, 'ppr' or 'heat')")


def heat_mass(t: float, steps: int) -> float:
    """Share of the heat kernel e^{-t} sum_k t^k/k! kept by ``steps`` terms (a Poisson CDF)."""
    return sum(math.exp(-t) * t**k / math.factorial(k) for k in range(steps))


def heat_steps_for_tolerance(t: float, tol: float = 0.01, max_steps: int = 200) -> int:
    """Smallest number of heat-diffusion steps whose truncated weight 1 - heat_mass is <= tol.

    Because the attention matrix is row-stochastic (||A^k||_inf = 1), this also bounds the
    error of the truncated output: ||out - e^{-t} expm(tA) V||_inf <= tol * ||V||_inf.
    t=5: tol=0.01 -> 12 steps, tol=1e-3 -> 14 steps.
    """
    if not 0.0 < tol < 1.0:
        raise ValueError(f"tolerance must be in (0, 1), got {tol}")
    if t <= 0:
        raise ValueError(f"heat-kernel time t must be > 0, got {t}")
    term, mass = math.exp(-t), 0.0
    for steps in range(1, max_steps + 1):
        mass += term  # mass = sum_{k<steps} e^{-t} t^k / k!
        if 1.0 - mass <= tol:
            return steps
        term *= t / steps
    raise ValueError(f"no steps <= {max_steps} reach tolerance {tol} at t={t}")


def _csr(crow: torch.Tensor, col: torch.Tensor, values: torch.Tensor, n_cols: int) -> torch.Tensor:
    with warnings.catch_warnings():  # torch warns that CSR support is "beta"; these ops are not
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(
            crow, col, values, size=(crow.numel() - 1, n_cols), check_invariants=False
        )


def _csr_mm(
    crow: torch.Tensor,
    col: torch.Tensor,
    values: torch.Tensor,
    x: torch.Tensor,
    *,
    out: torch.Tensor | None = None,
    add: torch.Tensor | None = None,
    beta: float = 0.0,
    alpha: float = 1.0,
) -> torch.Tensor:
    """out = beta * add + alpha * A @ x, A the block-diagonal CSR (values flat), x (rows, f).

    ``addmm(out=...)`` writes straight into ``out``: the plain ``torch.sparse.mm``
    zero-fills and copies its result, twice the time on CPU."""
    if out is None:
        out = x.new_empty(crow.numel() - 1, x.shape[1])
    if add is None or beta == 0.0:
        add, beta = out, 0.0  # beta=0: addmm ignores the (uninitialised) input
    mat = _csr(crow, col, values, x.shape[0])
    return torch.addmm(add, mat, x, beta=beta, alpha=alpha, out=out)


def _sddmm(
    crow: torch.Tensor,
    col: torch.Tensor,
    a: torch.Tensor,
    b: torch.Tensor,
    scale: float = 1.0,
    accumulate: torch.Tensor | None = None,
) -> torch.Tensor:
    """Flat edge values scale * a[row(e)] . b[col(e)] on the block-diagonal pattern, added
    to ``accumulate`` (flat, updated in place) when given."""
    # computed in place into the pattern's values (out=): avoids copying the index arrays;
    # zeros, because sampled_addmm propagates NaN from the input even with beta=0
    values = a.new_zeros(col.numel()) if accumulate is None else accumulate
    pattern = _csr(crow, col, values, b.shape[0])
    beta = 0.0 if accumulate is None else 1.0
    torch.sparse.sampled_addmm(pattern, a, b.t(), beta=beta, alpha=scale, out=pattern)
    return values


def _row_sum(x: torch.Tensor, crow: torch.Tensor, col: torch.Tensor) -> torch.Tensor:
    """(BH, E) -> (BH, n): sum of each row's edges (sparse matrix-vector product with ones;
    about 3x faster than ``segment_reduce`` on CPU)."""
    rows = crow.numel() - 1
    ones = x.new_ones(rows)
    return torch.addmv(ones, _csr(crow, col, x.view(-1), rows), ones, beta=0.0).view(x.shape[0], -1)


def _to_edges(stat: torch.Tensor, graph: CSRGraph, out: torch.Tensor | None = None) -> torch.Tensor:
    """(BH, n) per-row values -> (BH, E), each row's value repeated over its edges (into
    ``out`` when given: a fresh CPU buffer costs page faults)."""
    return (
        torch.index_select(stat, 1, graph.row, out=out)
        if out is not None
        else (stat.index_select(1, graph.row))
    )


def _edge_softmax(
    scores: torch.Tensor, graph: CSRGraph, crow: torch.Tensor, col: torch.Tensor
) -> torch.Tensor:
    """Softmax of (BH, E) scores over each row's edges, in place."""
    offsets = graph.crow.expand(scores.shape[0], -1)
    row_max = torch.segment_reduce(scores, "max", offsets=offsets, axis=1)
    row_max = torch.nan_to_num(row_max, neginf=0.0)  # rows without edges
    per_edge = _to_edges(row_max, graph)
    scores.sub_(per_edge).exp_()
    return scores.div_(_to_edges(_row_sum(scores, crow, col), graph, out=per_edge))


def _dropout_mask(shape: tuple[int, ...], p: float, like: torch.Tensor) -> torch.Tensor:
    """Keep-mask of attention dropout (drawn from torch's global generator)."""
    return torch.empty(shape, dtype=like.dtype, device=like.device).bernoulli_(1.0 - p)


def _diffuse(
    crow: torch.Tensor,
    col: torch.Tensor,
    a_flat: torch.Tensor,
    v2: torch.Tensor,
    theta: tuple[float, ...],
    states: torch.Tensor | None,
) -> torch.Tensor:
    """Horner evaluation of sum_k theta_k A^k V: z_D = theta_D V, z_k = theta_k V + A z_{k+1}.

    Returns z_0; when ``states`` (D-1, rows, f) is given, z_k is written to states[k-1] for
    0 < k < D (z_D = theta_D V is not stored)."""
    degree = len(theta) - 1
    z, z_scale = v2, theta[degree]  # z_D, its scale folded into the first product
    for step in range(degree - 1, -1, -1):
        out = states[step - 1] if states is not None and step > 0 else None
        z = _csr_mm(crow, col, a_flat, z, out=out, add=v2, beta=theta[step], alpha=z_scale)
        z_scale = 1.0
    return z


class _GraphAttentionFunction(torch.autograd.Function):
    """Forward and backward of neighbour attention + diffusion, both written by hand."""

    @staticmethod
    def forward(
        ctx,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        graph: CSRGraph,
        theta: tuple[float, ...],
        keep_mask: torch.Tensor | None,
        keep_scale: float,
        checkpoint: bool,
    ) -> torch.Tensor:
        B, H, n, d = q.shape
        BH = B * H
        q2, k2, v2 = (x.reshape(BH * n, d) for x in (q, k, v))
        crow, col, crow_t, col_t = graph.block_diagonal(BH)
        scale = 1.0 / math.sqrt(d)
        p = _edge_softmax(_sddmm(crow, col, q2, k2, scale).view(BH, -1), graph, crow, col)
        # the weights the diffusion uses: dropped-out and rescaled in training
        a = p * keep_mask * keep_scale if keep_mask is not None else p
        degree = len(theta) - 1
        need_grad = any(ctx.needs_input_grad[:3])
        store = need_grad and not checkpoint and degree > 1
        states = v2.new_empty(degree - 1, BH * n, d) if store else None
        out = _diffuse(crow, col, a.view(-1), v2, theta, states)
        if need_grad:
            ctx.save_for_backward(q2, k2, v2, p, a if keep_mask is not None else None, states)
            ctx.graph, ctx.theta, ctx.scale, ctx.shape = graph, theta, scale, (B, H, n, d)
        return out.view(B, H, n, d)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: torch.Tensor):  # type: ignore[override]
        q2, k2, v2, p, a, states = ctx.saved_tensors
        graph, theta, scale = ctx.graph, ctx.theta, ctx.scale
        B, H, n, d = ctx.shape
        BH, degree = B * H, len(ctx.theta) - 1
        a = p if a is None else a
        crow, col, crow_t, col_t = graph.block_diagonal(BH)
        a_t = a.index_select(1, graph.perm).view(-1)  # A^T's values in its CSR order
        if degree > 1 and states is None:  # checkpointed: recompute z_1..z_{D-1}
            states = v2.new_empty(degree - 1, BH * n, d)
            _diffuse(crow, col, a.view(-1), v2, theta, states)
        # g_k = (A^T)^k dOut; dV = sum_k theta_k g_k; dA (on edges) = sum_{k<D} g_k[i].z_{k+1}[j]
        g = grad_out.reshape(BH * n, d)
        grad_v = g * theta[0] if theta[0] != 0.0 else None
        grad_a = None
        for step in range(degree):
            z, z_scale = (states[step], 1.0) if step + 1 < degree else (v2, theta[degree])
            grad_a = _sddmm(crow, col, g, z, scale=z_scale, accumulate=grad_a)
            if step + 1 == degree and theta[degree] == 0.0:
                break
            g = _csr_mm(crow_t, col_t, a_t, g)  # g_{step+1}
            coef = theta[step + 1]
            if grad_v is None:  # the first non-zero coefficient
                grad_v = g if coef == 1.0 else g * coef
            elif coef != 0.0:
                grad_v.add_(g, alpha=coef)
        del g, states
        grad_a = grad_a.view(BH, -1)
        # dropout + softmax backward: with a = p * mask * keep_scale,
        # dS = a * dA - p * rowsum(a * dA); a_t's buffer is reused for the per-edge terms
        grad_a.mul_(a)
        buffer = a_t.view(BH, -1)
        correction = _to_edges(_row_sum(grad_a, crow, col), graph, out=buffer).mul_(p)
        grad_s = grad_a.sub_(correction).mul_(scale)
        grad_q = _csr_mm(crow, col, grad_s.view(-1), k2)
        grad_s_t = torch.index_select(grad_s, 1, graph.perm, out=buffer)
        grad_k = _csr_mm(crow_t, col_t, grad_s_t.view(-1), q2)
        shape = (B, H, n, d)
        return (
            grad_q.view(shape),
            grad_k.view(shape),
            grad_v.view(shape),
            None,
            None,
            None,
            None,
            None,
        )


def choose_impl(impl: str, q: torch.Tensor, dropout: bool) -> str:
    """The implementation ``graph_attention`` runs for ``impl`` on q's device and dtype.

    auto (unless the environment variable SCGB_KERNEL_IMPL names another, e.g. to rerun a
    pipeline on the reference kernel):
    - attention dropout in training -> "torch_sparse" (the fused kernels have none);
    - CUDA tensors -> "triton" when Triton imports;
    - CPU float32/float64 (float16 and bfloat16 computed in float32) -> "fused" when numba
      imports, at every graph size (docs/kernel.md, "Which implementation runs");
    - anything else -> "torch_sparse".
    An explicit choice that cannot run raises ValueError."""
    if impl == "auto":
        impl = os.environ.get(IMPL_ENV, "auto") or "auto"
    if impl not in IMPLS:
        raise ValueError(
            f"unknown graph attention impl '{impl}' (expected one of {IMPLS}; "
            f"the environment variable {IMPL_ENV} replaces 'auto')"
        )
    cuda = q.device.type == "cuda"
    if impl == "auto":
        if dropout:
            return "torch_sparse"
        if cuda:
            from scgraphbench.kernels import triton_gpu

            return "triton" if triton_gpu.available() else "torch_sparse"
        if q.device.type == "cpu" and q.dtype in _FUSED_DTYPES:
            from scgraphbench.kernels import fused_cpu

            return "fused" if fused_cpu.available() else "torch_sparse"
        return "torch_sparse"
    if impl in ("fused", "triton") and dropout:
        raise ValueError(
            f"impl='{impl}' has no attention dropout; use impl='auto' (falls back to "
            "'torch_sparse' when dropout_p > 0 in training) or dropout_p=0"
        )
    if impl == "fused" and q.device.type != "cpu":
        raise ValueError(f"impl='fused' is the CPU kernel, q is on {q.device}; use 'auto'")
    if impl == "fused" and q.dtype not in _FUSED_DTYPES:
        raise ValueError(f"impl='fused' takes float16/32/64 or bfloat16, got {q.dtype}")
    if impl == "triton":
        from scgraphbench.kernels import triton_gpu

        if not triton_gpu.available():
            raise ValueError("impl='triton' needs the triton package, which does not import")
        if not cuda and not triton_gpu.interpreting():
            raise ValueError(
                f"impl='triton' runs on CUDA tensors (q is on {q.device}); on CPU only "
                "under Triton's interpreter (TRITON_INTERPRET=1, for tests)"
            )
    return impl


_FUSED_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)


def prepare(device: torch.device | str = "cpu", impl: str = "auto") -> str:
    """Load the implementation ``graph_attention`` will choose on ``device`` (numba's
    machine code for the fused CPU kernel; nothing for the others, Triton compiles on first
    launch) and return its name. Model layers call it when they are built, so that a run's
    training time and memory do not include loading numba; the fork server calls it once
    for all the jobs it forks."""
    chosen = choose_impl(impl, torch.empty(0, device=device), dropout=False)
    if chosen == "fused":
        from scgraphbench.kernels.fused_cpu import warm_up

        warm_up()
    return chosen


def graph_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    graph: CSRGraph,
    *,
    diffusion: str | None = None,
    alpha: float = 0.25,
    t: float = 5.0,
    steps: int = 6,
    dropout_p: float = 0.0,
    training: bool = False,
    normalise_heat: bool = False,
    checkpoint: bool | None = None,
    impl: str = "auto",
) -> torch.Tensor:
    """Neighbour attention, optionally followed by ``steps`` steps of PPR or heat diffusion.

    q, k, v: (B, H, n, d) on the graph's device; returns (B, H, n, d).
    Weights A: row softmax of q_i.k_j/sqrt(d) over each row's neighbours, then dropout
    (p=dropout_p, only when training; the same dropped A is used in every diffusion step).
    - diffusion=None: out = A V.
    - 'ppr': V_0 = V, V_k = (1-alpha) A V_{k-1} + alpha V, out = V_steps.
    - 'heat': V_0 = e^{-t} V, V_k = (t/k) A V_{k-1}, out = sum_{k<steps} V_k; the kept
      weight is ``heat_mass(t, steps)`` (0.616 at t=5, steps=6); ``normalise_heat=True``
      divides the output by it. See ``heat_steps_for_tolerance``.
    ``checkpoint``: whether the backward recomputes the diffusion states instead of
    keeping them from the forward. None (default) lets the implementation choose: the
    fused kernels recompute (their backward keeps only a log-sum-exp per row), torch_sparse
    keeps them. True/False force it either way.
    ``impl``: "auto" (default; see ``choose_impl``), "fused" (CPU, numba), "triton" (CUDA)
    or "torch_sparse" (any device; the reference and fallback).
    """
    if diffusion not in DIFFUSION_MODES:
        raise ValueError(f"unknown diffusion mode '{diffusion}' (expected None, 'ppr' or 'heat')")
    if q.dim() != 4 or q.shape != k.shape or q.shape != v.shape:
        raise ValueError(
            f"q, k, v must share one (B, H, n, d) shape, got "
            f"{tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}"
        )
    if q.shape[2] != graph.n:
        raise ValueError(f"q has {q.shape[2]} tokens but the graph has {graph.n} nodes")
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"dropout_p must be in [0, 1), got {dropout_p}")
    if graph.device != q.device:
        raise ValueError(
            f"q is on {q.device} but the graph is on {graph.device}; move the graph with "
            "graph.to(q.device) (model layers keep it as buffers, moved by model.to())"
        )
    theta = tuple(diffusion_coefficients(diffusion, steps, alpha, t, normalise_heat))
    dropout = training and dropout_p > 0
    chosen = choose_impl(impl, q, dropout)
    if len(theta) == 1:  # heat with 1 step or PPR with 0: out = theta_0 V, no attention at all
        return v * theta[0]
    if chosen == "fused":
        from scgraphbench.kernels.fused_cpu import fused_graph_attention

        return fused_graph_attention(q, k, v, graph, theta, store_states=checkpoint is False)
    if chosen == "triton":
        from scgraphbench.kernels.triton_gpu import triton_graph_attention

        return triton_graph_attention(q, k, v, graph, theta, store_states=checkpoint is False)
    keep_mask, keep_scale = None, 1.0
    if dropout:
        B, H = q.shape[:2]
        keep_mask = _dropout_mask((B * H, graph.n_edges), dropout_p, q)
        keep_scale = 1.0 / (1.0 - dropout_p)
    return _GraphAttentionFunction.apply(
        q, k, v, graph, theta, keep_mask, keep_scale, bool(checkpoint)
    )
