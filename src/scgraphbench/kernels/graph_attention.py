"""Neighbour attention + graph diffusion (GenoHoption) on a CSR graph shared by the batch.

Hand-written because no maintained library offers fused sparse attention + diffusion
that runs on CPU as well as CUDA.

Shapes: q, k, v are (B, H, n, d); the graph has n nodes and E edges (self-loops
included); attention weights live on edges, (B, H, E).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch


@dataclass
class CSRGraph:
    """Row i lists the genes that gene i attends to (its incoming neighbours)."""

    crow: torch.Tensor  # (n+1,) int64
    col: torch.Tensor  # (E,) int64
    row: torch.Tensor  # (E,) int64, row index of each edge
    n: int

    @classmethod
    def from_scipy(cls, A: sp.spmatrix, add_self_loops: bool = True) -> CSRGraph:
        A = sp.csr_matrix(A, dtype=np.float32)
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

    def to(self, device: torch.device | str) -> CSRGraph:
        return CSRGraph(self.crow.to(device), self.col.to(device), self.row.to(device), self.n)


def edge_softmax(scores: torch.Tensor, graph: CSRGraph) -> torch.Tensor:
    """Softmax of (..., E) edge scores over each row's edges."""
    shape = scores.shape[:-1] + (graph.n,)
    idx = graph.row.expand_as(scores)
    row_max = torch.full(shape, -torch.inf, dtype=scores.dtype, device=scores.device)
    row_max = row_max.scatter_reduce(-1, idx, scores, reduce="amax", include_self=True)
    ex = torch.exp(scores - row_max.gather(-1, idx))
    denom = torch.zeros(shape, dtype=scores.dtype, device=scores.device).scatter_add(-1, idx, ex)
    return ex / denom.gather(-1, idx)


def propagate(weights: torch.Tensor, graph: CSRGraph, v: torch.Tensor) -> torch.Tensor:
    """out[..., i, :] = sum over edges e of row i of weights[..., e] * v[..., col[e], :]."""
    msg = weights.unsqueeze(-1) * v.index_select(-2, graph.col)
    out = torch.zeros_like(v)
    return out.index_add(-2, graph.row, msg)


def attention_weights(q: torch.Tensor, k: torch.Tensor, graph: CSRGraph) -> torch.Tensor:
    """Row-softmax of q_i . k_j / sqrt(d) over each gene's neighbours: (B, H, E)."""
    scale = 1.0 / math.sqrt(q.shape[-1])
    scores = (q.index_select(-2, graph.row) * k.index_select(-2, graph.col)).sum(-1) * scale
    return edge_softmax(scores, graph)


def diffusion_coefficients(mode: str, steps: int, alpha: float = 0.25, t: float = 5.0) -> list[float]:
    """theta_k of the truncated series sum_k theta_k A^k V that a diffusion computes.

    ppr: V_0 = V, V_k = (1-alpha) A V_{k-1} + alpha V  ->  theta_k = alpha (1-alpha)^k for
    k < steps and (1-alpha)^steps for k = steps.
    heat: sum_{k<steps} e^{-t} t^k / k! A^k V.
    """
    if mode == "ppr":
        return [alpha * (1 - alpha) ** k for k in range(steps)] + [(1 - alpha) ** steps]
    if mode == "heat":
        return [math.exp(-t) * t**k / math.factorial(k) for k in range(steps)]
    raise ValueError(f"unknown diffusion mode '{mode}' (expected 'ppr' or 'heat')")


def graph_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, graph: CSRGraph, *,
                    diffusion: str | None = None, alpha: float = 0.25, t: float = 5.0,
                    steps: int = 6, dropout_p: float = 0.0, training: bool = False) -> torch.Tensor:
    """Neighbour attention, optionally followed by K steps of PPR or heat-kernel diffusion."""
    w = attention_weights(q, k, graph)
    if dropout_p > 0 and training:
        w = torch.nn.functional.dropout(w, p=dropout_p, training=True)
    if diffusion is None:
        return propagate(w, graph, v)
    if diffusion == "ppr":
        h = v
        for _ in range(steps):
            h = (1 - alpha) * propagate(w, graph, h) + alpha * v
        return h
    if diffusion == "heat":
        h = math.exp(-t) * v
        out = h
        for step in range(1, steps):
            h = (t / step) * propagate(w, graph, h)
            out = out + h
        return out
    raise ValueError(f"unknown diffusion mode '{diffusion}' (expected 'ppr' or 'heat')")
