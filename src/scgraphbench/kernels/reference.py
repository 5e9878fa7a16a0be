"""Slow but obviously-correct versions of ``graph_attention``, for tests and benchmarks.

- ``graph_attention_dense``: masked dense softmax over an (n, n) score matrix, then the
  diffusion recursions exactly as GenoHoption's gn_attn.py writes them. O(B*H*n^2) memory.
- ``graph_attention_gather``: the first implementation of the kernel, edge lists gathered
  with ``index_select`` and summed with ``index_add``, differentiated by autograd.
  O(B*H*E*d) memory.
Both take an optional ``keep_mask`` (B*H, E) so a test can apply the dropout mask the fast
kernel drew (``keep_mask`` already 0/1; it is rescaled by 1/(1-dropout_p) here).
"""

from __future__ import annotations

import math

import torch

from scgraphbench.kernels.graph_attention import CSRGraph


def _diffusion(
    propagate,
    v: torch.Tensor,
    diffusion: str | None,
    alpha: float,
    t: float,
    steps: int,
    normalise_heat: bool,
) -> torch.Tensor:
    if diffusion is None:
        return propagate(v)
    if diffusion == "ppr":
        h = v
        for _ in range(steps):
            h = (1 - alpha) * propagate(h) + alpha * v
        return h
    if diffusion == "heat":
        h = math.exp(-t) * v
        out = h
        for step in range(1, steps):
            h = (t / step) * propagate(h)
            out = out + h
        if normalise_heat:
            out = out / sum(math.exp(-t) * t**j / math.factorial(j) for j in range(steps))
        return out
    raise ValueError(f"unknown diffusion mode '{diffusion}'")


def dense_attention_matrix(q: torch.Tensor, k: torch.Tensor, graph: CSRGraph) -> torch.Tensor:
    """(B, H, n, n) row-softmax of q.k/sqrt(d) restricted to the graph's edges."""
    mask = torch.zeros(graph.n, graph.n, dtype=torch.bool, device=q.device)
    mask[graph.row, graph.col] = True
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    probs = torch.softmax(scores.masked_fill(~mask, -torch.inf), dim=-1)
    return torch.nan_to_num(probs)  # rows without edges


def _dense_keep(keep_mask: torch.Tensor, graph: CSRGraph, shape: torch.Size) -> torch.Tensor:
    B, H, n = shape[0], shape[1], graph.n
    dense = keep_mask.new_zeros(B * H, n, n)
    dense[:, graph.row, graph.col] = keep_mask.view(B * H, -1)
    return dense.view(B, H, n, n)


def graph_attention_dense(
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
    keep_mask: torch.Tensor | None = None,
    normalise_heat: bool = False,
) -> torch.Tensor:
    """Dense reference: A = masked softmax (times the dropout keep-mask), then the series."""
    A = dense_attention_matrix(q, k, graph)
    if keep_mask is not None:
        A = A * _dense_keep(keep_mask, graph, q.shape) / (1 - dropout_p)
    return _diffusion(lambda x: A @ x, v, diffusion, alpha, t, steps, normalise_heat)


def graph_attention_gather(
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
    keep_mask: torch.Tensor | None = None,
    normalise_heat: bool = False,
) -> torch.Tensor:
    """The first (gather/scatter + autograd) kernel: edge scores by gathering q and k rows."""
    scale = 1.0 / math.sqrt(q.shape[-1])
    scores = (q.index_select(-2, graph.row) * k.index_select(-2, graph.col)).sum(-1) * scale
    shape = scores.shape[:-1] + (graph.n,)
    idx = graph.row.expand_as(scores)
    row_max = torch.full(shape, -torch.inf, dtype=scores.dtype, device=scores.device)
    row_max = row_max.scatter_reduce(-1, idx, scores, reduce="amax", include_self=True)
    ex = torch.exp(scores - row_max.gather(-1, idx))
    denom = torch.zeros(shape, dtype=scores.dtype, device=scores.device).scatter_add(-1, idx, ex)
    w = ex / denom.gather(-1, idx)
    if keep_mask is not None:
        w = w * keep_mask.view_as(w) / (1 - dropout_p)

    def propagate(x: torch.Tensor) -> torch.Tensor:
        msg = w.unsqueeze(-1) * x.index_select(-2, graph.col)
        return torch.zeros_like(x).index_add(-2, graph.row, msg)

    return _diffusion(propagate, v, diffusion, alpha, t, steps, normalise_heat)
