"""Time per edge of each pass of the fused CPU kernel's loops, against the number of genes.

`attention_cost.py` times whole layer steps; this script times the loops of
`kernels/_numba_loops.py` one pass at a time, so that the growth of a step with n can be read
pass by pass. Each pass runs over one (batch, head) slice's buffers, ``--slices`` times in a
row (the kernel runs a thread's slices one after another, reusing the same scratch), on the
layer benchmark's random graph (`attention_cost.random_graph`, self-loop included), in one
thread (the loops are serial; each of the kernel's threads runs such loops). Before anything
is timed, every pass's output is checked in float64 against scipy on the same inputs
(`check_passes`); timing then uses ``--dtype`` (float32, as in training).

The passes, and how often one forward + backward runs each (D = diffusion steps, 6 for PPR
and heat):
- ``softmax``: scores q_i.k_j on each edge, row max, exp, row sums, log-sum-exp (forward, once);
- ``weights``: the weights again from the log-sum-exp (backward, once);
- ``horner``: one Horner step z_k = theta_k V + A z_{k+1}, a gather along A's rows (D times in
  the forward, D-1 more in the backward's recomputation);
- ``permute``: the weights into A^T's edge order (backward, twice: p into it, dA back out);
- ``grad_step``: one backward step along A^T's rows, g_{k+1} = A^T g_k and dA += g_k . z_{k+1}
  (D times);
- ``dq_dk``: dQ = scale dS K (a gather) and dK = scale dS^T Q (a scatter), one pass.
The softmax backward per row (sequential, no gathers) is not timed: applied repeatedly in
place its values shrink towards denormals, which would time something the kernel never does.

    python benchmarks/kernel_passes.py --sizes 1000 2000 4000 8000 --degree 20 \\
        --out-dir results/benchmarks/kernel_passes

Outputs in --out-dir: ``kernel_passes.csv`` (one row per pass and n: seconds for the
``--slices`` repeats, nanoseconds per edge, and the growth of the time per edge from the
smallest n) and ``kernel_passes.json`` (settings, environment, the rows, and per pass the
log-log slope of its time against n, the quantity `attention_cost.py` reports for the layer).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numba import njit

sys.path.insert(0, str(Path(__file__).resolve().parent))
from attention_cost import environment, random_graph  # noqa: E402

from scgraphbench.kernels import CSRGraph  # noqa: E402
from scgraphbench.kernels._numba_loops import (  # noqa: E402
    _edge_softmax,
    _edge_weights,
    _gather_row,
    _grad_step_col,
    _scatter_row,
)
from scgraphbench.kernels.fused_cpu import _padded  # noqa: E402

PASSES = ["softmax", "weights", "horner", "permute", "grad_step", "dq_dk"]
_JIT = dict(nogil=True, boundscheck=False, error_model="numpy")  # not cached: a benchmark


# --------------------------------------------------------------------------- the passes, repeated


@njit(**_JIT)
def _softmax(reps, n, crow, col, qs, ks, dp, zero, one, p, row_max, lse):
    for _ in range(reps):
        _edge_softmax(n, crow, col, qs, ks, dp, zero, one, p, row_max, lse, 0)


@njit(**_JIT)
def _weights(reps, n, crow, col, qs, ks, dp, lse, p):
    for _ in range(reps):
        _edge_weights(n, crow, col, qs, ks, dp, lse, 0, p)


@njit(**_JIT)
def _horner(reps, n, crow, col, p, one, z, dst, dp, vs, theta):
    for _ in range(reps):
        for i in range(n):
            _gather_row(i, crow[i], crow[i + 1], col, p, one, z, dst, dp, vs, theta, True)


@njit(**_JIT)
def _permute(reps, perm, p, p_t):
    for _ in range(reps):
        for e in range(perm.shape[0]):
            p_t[e] = p[perm[e]]


@njit(**_JIT)
def _grad_step(reps, n, crow_t, col_t, p_t, one, g, z, grad_t, out, dp):
    for _ in range(reps):
        for j in range(n):
            _grad_step_col(j, crow_t[j], crow_t[j + 1], col_t, p_t, one, g, z, one, grad_t, out,
                           dp, out, False)


@njit(**_JIT)
def _dq_dk(reps, n, crow, col, grad_s, scale, one, zero, ks, qs, dq, dk, dp):
    for _ in range(reps):
        for i in range(n):
            r0, r1 = crow[i], crow[i + 1]
            _gather_row(i, r0, r1, col, grad_s, scale, ks, dq, dp, ks, zero, False)
            _scatter_row(i, r0, r1, col, grad_s, one, qs, dk, dp)


# --------------------------------------------------------------------------- inputs


class Slice:
    """One slice's inputs and scratch for every pass, rows padded to the SIMD width."""

    def __init__(self, n: int, degree: int, head_dim: int, dtype: np.dtype, seed: int) -> None:
        A = random_graph(n, degree, seed)
        graph = CSRGraph.from_scipy(A, add_self_loops=False)
        self.n, self.d, self.dp = n, head_dim, _padded(head_dim)
        self.crow, self.col = graph.crow.numpy(), graph.col.numpy()
        self.crow_t, self.col_t, self.perm = (graph.crow_t.numpy(), graph.col_t.numpy(),
                                              graph.perm.numpy())
        self.E = self.col.shape[0]
        rng = np.random.default_rng(seed)

        def random_rows() -> np.ndarray:  # (n, dp) flattened, the padding lanes zero
            x = np.zeros((n, self.dp), dtype)
            x[:, :head_dim] = rng.standard_normal((n, head_dim))
            return x.ravel()

        self.qs, self.ks, self.vs, self.z, self.g = (random_rows() for _ in range(5))
        self.grad_s = rng.standard_normal(self.E).astype(dtype)
        self.p, self.p_t = np.empty(self.E, dtype), np.empty(self.E, dtype)
        self.grad_t = np.zeros(self.E, dtype)
        self.row_max, self.lse = np.empty(n, dtype), np.empty(n, dtype)
        self.dst, self.out = np.empty(n * self.dp, dtype), np.empty(n * self.dp, dtype)
        self.dq, self.dk = np.empty(n * self.dp, dtype), np.zeros(n * self.dp, dtype)
        c = dtype.type
        self.zero, self.one, self.theta, self.scale = c(0), c(1), c(0.1), c(0.25)

    def calls(self) -> dict[str, Callable[[int], None]]:
        """Each pass as a function of its repeat count (softmax first: it fills p and lse)."""
        s = self
        return {
            "softmax": lambda r: _softmax(r, s.n, s.crow, s.col, s.qs, s.ks, s.dp, s.zero, s.one,
                                          s.p, s.row_max, s.lse),
            "weights": lambda r: _weights(r, s.n, s.crow, s.col, s.qs, s.ks, s.dp, s.lse, s.p),
            "horner": lambda r: _horner(r, s.n, s.crow, s.col, s.p, s.one, s.z, s.dst, s.dp,
                                        s.vs, s.theta),
            "permute": lambda r: _permute(r, s.perm, s.p, s.p_t),
            "grad_step": lambda r: _grad_step(r, s.n, s.crow_t, s.col_t, s.p_t, s.one, s.g, s.z,
                                              s.grad_t, s.out, s.dp),
            "dq_dk": lambda r: _dq_dk(r, s.n, s.crow, s.col, s.grad_s, s.scale, s.one, s.zero,
                                      s.ks, s.qs, s.dq, s.dk, s.dp),
        }

    def unpadded(self, flat: np.ndarray) -> np.ndarray:
        """A flat (n, dp) buffer as its (n, d) rows without the padding lanes."""
        return flat.reshape(self.n, self.dp)[:, : self.d]


def check_passes(n: int, degree: int, head_dim: int = 16, seed: int = 0) -> dict[str, float]:
    """Run every pass once in float64 and return its largest error relative to scipy's result
    on the same inputs; raises if any exceeds 1e-9, so that no wrong loop is ever timed."""
    import scipy.sparse as sp

    s = Slice(n, degree, head_dim, np.dtype(np.float64), seed)
    calls = s.calls()
    q, k, v, z, g = (s.unpadded(x) for x in (s.qs, s.ks, s.vs, s.z, s.g))
    row = np.repeat(np.arange(n), np.diff(s.crow))
    scores = np.einsum("ed,ed->e", q[row], k[s.col])
    calls["softmax"](1)
    shifted = np.exp(scores - np.maximum.reduceat(scores, s.crow[:-1]).repeat(np.diff(s.crow)))
    totals = np.add.reduceat(shifted, s.crow[:-1])
    want_p = shifted / totals.repeat(np.diff(s.crow))
    want_lse = np.log(np.add.reduceat(np.exp(scores), s.crow[:-1]))
    P = sp.csr_matrix((want_p, s.col, s.crow), shape=(n, n))
    S = sp.csr_matrix((s.grad_s, s.col, s.crow), shape=(n, n))
    errors = {"softmax": max(_rel(s.p, want_p), _rel(s.lse, want_lse))}
    s.p[:] = 0
    calls["weights"](1)
    errors["weights"] = _rel(s.p, want_p)
    calls["horner"](1)
    errors["horner"] = _rel(s.unpadded(s.dst), s.theta * v + P @ z)
    calls["permute"](1)
    errors["permute"] = _rel(s.p_t, want_p[s.perm])
    calls["grad_step"](1)
    dot = np.einsum("ed,ed->e", g[row], z[s.col])  # g_i . z_j on A's edges
    errors["grad_step"] = max(_rel(s.unpadded(s.out), P.T @ g), _rel(s.grad_t, dot[s.perm]))
    calls["dq_dk"](1)
    errors["dq_dk"] = max(_rel(s.unpadded(s.dq), s.scale * (S @ k)), _rel(s.unpadded(s.dk), S.T @ q))
    bad = {name: err for name, err in errors.items() if not err <= 1e-9}
    if bad:
        raise AssertionError(f"kernel passes disagree with scipy in float64 at n={n}: {bad}")
    return errors


def _rel(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.abs(np.asarray(got) - want).max() / max(np.abs(want).max(), 1e-300))


# --------------------------------------------------------------------------- timing


def time_passes(sizes: list[int], degree: int, head_dim: int, slices: int, reps: int,
                dtype: str, seed: int) -> pd.DataFrame:
    """Best-of-``reps`` seconds of each pass run ``slices`` times, per n."""
    rows = []
    for n in sizes:
        s = Slice(n, degree, head_dim, np.dtype(dtype), seed)
        for name, call in s.calls().items():
            call(1)  # compile (first size) and touch the buffers
            best = float("inf")
            for _ in range(reps):
                start = time.perf_counter()
                call(slices)
                best = min(best, time.perf_counter() - start)
            rows.append({"pass": name, "n": n, "degree": degree, "edges": s.E,
                         "time_s": best, "ns_per_edge": best / (slices * s.E) * 1e9})
            print(f"n={n:6d} {name:10s} {rows[-1]['ns_per_edge']:6.2f} ns/edge", flush=True)
    table = pd.DataFrame(rows)
    first = table[table.n == min(sizes)].set_index("pass")["ns_per_edge"]
    table["growth_vs_first"] = table.ns_per_edge / table["pass"].map(first)
    return table


def slopes(table: pd.DataFrame) -> dict[str, float]:
    """Per pass, the least-squares log-log slope of its time against n."""
    return {name: float(np.polyfit(np.log(t.n), np.log(t.time_s), 1)[0])
            for name, t in table.groupby("pass", sort=False) if t.n.nunique() > 1}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 2000, 4000, 8000])
    ap.add_argument("--degree", type=int, default=20, help="graph degree k (self-loop included)")
    ap.add_argument("--head-dim", type=int, default=16)
    ap.add_argument("--slices", type=int, default=128,
                    help="repeats per timing: B*H of the layer benchmark (32 x 4)")
    ap.add_argument("--reps", type=int, default=3, help="timings per pass and n (best kept)")
    ap.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out-dir", type=Path, default=Path("benchmarks/results/kernel_passes"))
    a = ap.parse_args(argv)
    if min(a.sizes) <= a.degree or a.slices < 1 or a.reps < 1 or a.head_dim < 1:
        ap.error("need every n > --degree, and --slices, --reps, --head-dim >= 1")
    return a


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    check = check_passes(min(a.sizes), a.degree, a.head_dim, a.seed)
    table = time_passes(a.sizes, a.degree, a.head_dim, a.slices, a.reps, a.dtype, a.seed)
    a.out_dir.mkdir(parents=True, exist_ok=True)
    table.to_csv(a.out_dir / "kernel_passes.csv", index=False)
    settings: dict[str, Any] = {k: (str(v) if isinstance(v, Path) else v)
                                for k, v in vars(a).items()}
    (a.out_dir / "kernel_passes.json").write_text(json.dumps({
        "settings": settings, "environment": environment("cpu"),
        "float64_check_vs_scipy": check, "time_slope": slopes(table),
        "rows": table.to_dict(orient="records")}, indent=1))
    print(f"wrote {a.out_dir}/kernel_passes.{{csv,json}}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
