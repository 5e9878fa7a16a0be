"""Shared pieces of the neural families: genes as tokens, pre-LN blocks, pooling and heads.

A cell is a sequence of gene tokens. Token = gene-identity embedding + expression-value
encoding (+ optional positional encoding over the gene order, to test whether position
matters) (+ a perturbation-flag embedding on the perturbation task). Families differ in
how tokens mix: :class:`TokenMixer` subclasses.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from scgraphbench.models.registry import ModelContext


def bin_values(x: torch.Tensor, n_bins: int) -> torch.Tensor:
    """scGPT value binning: per cell, zero -> bin 0, non-zero values -> bins 1..n_bins-1 by
    their quantile among that cell's non-zero values."""
    nonzero = x > 0
    # rank of each value within its cell; zeros sort first
    ranks = torch.argsort(torch.argsort(x, dim=-1), dim=-1).to(x.dtype)
    n_zero = (~nonzero).sum(-1, keepdim=True).to(x.dtype)
    n_nonzero = nonzero.sum(-1, keepdim=True).clamp(min=1).to(x.dtype)
    q = (ranks - n_zero + 1) / n_nonzero  # in (0, 1] for non-zeros
    bins = torch.ceil(q * (n_bins - 1)).clamp(1, n_bins - 1).long()
    return torch.where(nonzero, bins, torch.zeros_like(bins))


class ValueEncoder(nn.Module):
    """Continuous (small MLP on the scalar, scGPT's default) or binned expression encoding."""

    def __init__(self, d_model: int, mode: str = "continuous", n_bins: int = 51) -> None:
        super().__init__()
        self.mode, self.n_bins = mode, n_bins
        if mode == "continuous":
            self.net = nn.Sequential(nn.Linear(1, d_model), nn.ReLU(), nn.Linear(d_model, d_model))
        elif mode == "binned":
            self.net = nn.Embedding(n_bins, d_model)
        else:
            raise ValueError(f"value_encoding must be 'continuous' or 'binned', got '{mode}'")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "continuous":
            return self.net(x.unsqueeze(-1))
        return self.net(bin_values(x, self.n_bins))


def sinusoidal_positions(n: int, d: int) -> torch.Tensor:
    pos = torch.arange(n, dtype=torch.float32).unsqueeze(1)
    div = torch.exp(torch.arange(0, d, 2, dtype=torch.float32) * (-math.log(10000.0) / d))
    pe = torch.zeros(n, d)
    pe[:, 0::2] = torch.sin(pos * div)
    pe[:, 1::2] = torch.cos(pos * div[: d // 2])
    return pe


class TokenMixer(nn.Module):
    """Maps tokens (B, L, d) -> (B, L, d). L = n_genes (+1 with a CLS token at index 0)."""

    def __init__(self, d_model: int, n_heads: int, dropout: float, ctx: ModelContext,
                 graph: sp.csr_matrix | None, **params: Any) -> None:
        super().__init__()


class MultiHeadMixer(TokenMixer):
    """QKV projections + an attention core that families override; output projection."""

    def __init__(self, d_model: int, n_heads: int, dropout: float, ctx: ModelContext,
                 graph: sp.csr_matrix | None, **params: Any) -> None:
        super().__init__(d_model, n_heads, dropout, ctx, graph, **params)
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} is not divisible by n_heads={n_heads}")
        self.n_heads, self.dropout = n_heads, dropout
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)

    def core(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """(B, H, L, dh) x3 -> (B, H, L, dh)."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, L, d = x.shape
        qkv = self.qkv(x).view(B, L, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4)
        h = self.core(qkv[0], qkv[1], qkv[2])
        return self.out(h.transpose(1, 2).reshape(B, L, d))


class Block(nn.Module):
    """Pre-LN residual block: x + mix(LN(x)), then x + FFN(LN(x))."""

    def __init__(self, mixer: nn.Module, d_model: int, dropout: float, ff_mult: int = 4) -> None:
        super().__init__()
        self.mixer = mixer
        self.ln1, self.ln2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.ff = nn.Sequential(nn.Linear(d_model, ff_mult * d_model), nn.GELU(),
                                nn.Dropout(dropout), nn.Linear(ff_mult * d_model, d_model))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop(self.mixer(self.ln1(x)))
        return x + self.drop(self.ff(self.ln2(x)))


def graph_with_cls(A: sp.csr_matrix, use_cls: bool) -> sp.csr_matrix:
    """Prepend a CLS node linked to and from every gene (GenoHoption's global edges)."""
    A = sp.csr_matrix(A, dtype=np.float32)
    if not use_cls:
        return A
    n = A.shape[0]
    ones = sp.csr_matrix(np.ones((1, n), dtype=np.float32))
    top = sp.hstack([sp.csr_matrix((1, 1), dtype=np.float32), ones])
    bottom = sp.hstack([ones.T, A])
    return sp.vstack([top, bottom]).tocsr()


class GeneTokenModel(nn.Module):
    """Genes as tokens, a stack of blocks built from ``mixer_cls``, a pooled cell embedding,
    and a classification or perturbation head.

    Forward: ``x`` (B, n_genes) log-normalised expression, ``pert`` (B, n_genes) 0/1 flags
    of perturbed genes (perturbation task). Returns ``{"embedding": (B, d), "logits": (B, C)}``
    for annotation or ``{"embedding", "pred": (B, n_genes)}`` for perturbation.
    """

    mixer_cls: type[TokenMixer] = TokenMixer
    needs_graph = False

    def __init__(self, ctx: ModelContext, d_model: int = 64, n_layers: int = 2, n_heads: int = 4,
                 dropout: float = 0.1, value_encoding: str = "continuous", n_bins: int = 51,
                 positional: bool = False, pooling: str = "cls", **mixer_params: Any) -> None:
        super().__init__()
        self.ctx, self.task, self.pooling = ctx, ctx.task, pooling
        self.use_cls = pooling == "cls"
        n = ctx.n_genes
        self.gene_emb = nn.Embedding(n, d_model)
        self.value_enc = ValueEncoder(d_model, value_encoding, n_bins)
        self.positional = positional
        if positional:
            self.register_buffer("pos", sinusoidal_positions(n, d_model), persistent=False)
        if self.use_cls:
            self.cls = nn.Parameter(torch.zeros(1, 1, d_model))
        if ctx.task == "perturbation":
            self.pert_emb = nn.Embedding(2, d_model)
        graph = None
        if self.needs_graph:
            if ctx.graph is None:
                raise ValueError(f"family '{self.family}' needs a gene graph")
            graph = graph_with_cls(ctx.graph, self.use_cls)
        self.blocks = nn.ModuleList(
            Block(self.mixer_cls(d_model, n_heads, dropout, ctx, graph, use_cls=self.use_cls,
                                 **mixer_params), d_model, dropout)
            for _ in range(n_layers))
        self.norm = nn.LayerNorm(d_model)
        if ctx.task == "annotation":
            self.head = nn.Sequential(nn.Linear(d_model, d_model), nn.ReLU(),
                                      nn.Linear(d_model, ctx.n_classes))
        else:
            self.head = nn.Sequential(nn.Linear(2 * d_model, d_model), nn.ReLU(),
                                      nn.Linear(d_model, 1))
        self.register_buffer("gene_ids", torch.arange(n), persistent=False)

    def tokens(self, x: torch.Tensor, pert: torch.Tensor | None) -> torch.Tensor:
        h = self.gene_emb(self.gene_ids).unsqueeze(0) + self.value_enc(x)
        if self.positional:
            h = h + self.pos.unsqueeze(0)
        if pert is not None and self.task == "perturbation":
            h = h + self.pert_emb(pert.long())
        if self.use_cls:
            h = torch.cat([self.cls.expand(x.shape[0], -1, -1), h], dim=1)
        return h

    def forward(self, x: torch.Tensor, pert: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        h = self.tokens(x, pert)
        for block in self.blocks:
            h = block(h)
        h = self.norm(h)
        genes = h[:, 1:] if self.use_cls else h
        emb = h[:, 0] if self.use_cls else genes.mean(1)
        if self.task == "annotation":
            return {"embedding": emb, "logits": self.head(emb)}
        # per-gene change from the control cell, conditioned on the cell embedding
        ctx = emb.unsqueeze(1).expand_as(genes)
        delta = self.head(torch.cat([genes, ctx], dim=-1)).squeeze(-1)
        return {"embedding": emb, "pred": x + delta}
