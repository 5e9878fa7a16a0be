"""Attention injected into a pretrained backbone: its own Q/K/V, then dense attention or the
sparse kernel on the gene graph, with each cell's tokens mapped onto the graph's nodes.

Tokens versus graph nodes: a backbone's tokens are a subset of its matched genes (plus
special tokens), in an order that may change from cell to cell (Geneformer ranks genes by
expression). The gene graph is fixed: its nodes are ``[global tokens] + matched genes``.
:func:`attention_core` scatters each cell's q/k/v from token positions onto graph nodes (one
vectorised scatter for the batch, no loop over cells), runs the kernel on the shared graph
and gathers the result back, so that edges follow genes, not positions. Nodes a cell has no
token for are masked out as keys (GenoHoption keeps an edge for a cell only when both genes
are among its tokens).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from scgraphbench.kernels import CSRGraph, graph_attention

ATTENTION_MODES = ("dense", "masked", "diffusion_ppr", "diffusion_heat")
# the kernel's diffusion argument of each mode
DIFFUSION_OF_MODE = {
    "dense": None,
    "masked": None,
    "diffusion_ppr": "ppr",
    "diffusion_heat": "heat",
}
# Additive score for keys a cell has no token for: exp(-1e4) is exactly 0 in fp32 and bf16.
_ABSENT_SCORE = 1e4


def split_heads(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    """(B, L, H*d) -> (B, H, L, d)."""
    B, L, D = x.shape
    return x.view(B, L, n_heads, D // n_heads).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(B, H, L, d) -> (B, L, H*d)."""
    B, H, L, d = x.shape
    return x.transpose(1, 2).reshape(B, L, H * d)


def _scatter_nodes(t: torch.Tensor, index: torch.Tensor, n_nodes: int) -> torch.Tensor:
    """(B, H, L, D) token rows -> (B, H, n_nodes, D); rows of index n_nodes (padding) dropped."""
    B, H, _, D = t.shape
    out = t.new_zeros(B, H, n_nodes + 1, D)
    out = out.scatter(2, index.expand(B, H, -1, D), t)
    return out[:, :, :n_nodes]


def attention_core(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    mode: str,
    graph: CSRGraph | None = None,
    node_index: torch.Tensor | None = None,
    key_valid: torch.Tensor | None = None,
    alpha: float = 0.25,
    t: float = 5.0,
    steps: int = 6,
    dropout_p: float = 0.0,
    training: bool = False,
) -> torch.Tensor:
    """Attention over (B, H, L, d) q/k/v of L token positions; returns (B, H, L, d).

    - ``dense``: scaled dot-product attention over the valid keys (``key_valid`` (B, L),
      None = all valid), as the released models.
    - ``masked`` / ``diffusion_ppr`` / ``diffusion_heat``: the sparse kernel on ``graph``.
      ``node_index`` (B, L) gives the graph node of each token (-1 for padding); None means
      token i is node i for every cell (fixed tokens, no padding).
    """
    if mode == "dense":
        mask = None if key_valid is None else key_valid[:, None, None, :]
        return F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=dropout_p if training else 0.0
        )
    diffusion = DIFFUSION_OF_MODE[mode]
    kw = dict(
        diffusion=diffusion, alpha=alpha, t=t, steps=steps, dropout_p=dropout_p, training=training
    )
    assert graph is not None, "graph modes need the gene graph"
    if diffusion == "ppr" and steps == 0:
        return v  # V_0 = V: no propagation at all
    if node_index is None:
        return graph_attention(q, k, v, graph, **kw)

    B, H, L, d = q.shape
    N = graph.n
    dtype = q.dtype
    if dtype == torch.float16:  # the absent-key score must not overflow
        q, k, v = q.float(), k.float(), v.float()
    index = torch.where(node_index >= 0, node_index, N)[:, None, :, None]  # (B, 1, L, 1)
    present = torch.zeros(B, N + 1, dtype=torch.bool, device=q.device)
    present = present.scatter(1, index[:, 0, :, 0], True)[:, :N]  # (B, N)
    # One extra channel masks absent keys inside the kernel's own softmax:
    # [q*s, 1] . [k, b] / sqrt(d+1) = q.k/sqrt(d) + b/sqrt(d+1), with b = 0 or -1e4*sqrt(d+1).
    # Absent nodes get q = 0 (finite, uniform rows that no present node reads).
    s = math.sqrt((d + 1) / d)
    ones = q.new_ones(B, H, L, 1)
    q_nodes = _scatter_nodes(torch.cat([q * s, ones], -1), index, N)
    k_nodes = _scatter_nodes(torch.cat([k, torch.zeros_like(ones)], -1), index, N)
    bias = (~present).to(q.dtype) * (-_ABSENT_SCORE * math.sqrt(d + 1))
    k_nodes = torch.cat([k_nodes[..., :d], bias[:, None, :, None].expand(B, H, N, 1)], -1)
    v_nodes = _scatter_nodes(torch.cat([v, torch.zeros_like(ones)], -1), index, N)
    out_nodes = graph_attention(q_nodes, k_nodes, v_nodes, graph, **kw)[..., :d]
    out_nodes = torch.cat([out_nodes, out_nodes.new_zeros(B, H, 1, d)], 2)  # padding reads 0
    out = out_nodes.gather(2, index.expand(B, H, L, d))
    return out.to(dtype)


def attention_flops(
    *,
    n_layers: int,
    d_model: int,
    n_tokens: int,
    mode: str,
    graph: CSRGraph | None,
    steps: int,
    mapped: bool,
) -> int:
    """Forward FLOPs per cell of ``n_layers`` layers running :func:`attention_core`, by
    train/cost.py's formula: 8 L d^2 for the Q/K/V/O projections, plus 4 L^2 d (dense) or
    (4 + 2 steps) E d' (graph, E edges with self-loops and global edges; d' = d + 1 with the
    per-cell masking channel of mapped tokens)."""
    flops = 8 * n_tokens * d_model * d_model
    if mode == "dense" or graph is None:
        flops += 4 * n_tokens * n_tokens * d_model
    else:
        n_steps = steps if DIFFUSION_OF_MODE[mode] else 0
        flops += (4 + 2 * n_steps) * graph.n_edges * (d_model + (1 if mapped else 0))
    return int(n_layers * flops)
