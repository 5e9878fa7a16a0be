"""A multilayer perceptron on the whole expression vector: the neural baseline without genes as
tokens, without a graph and without attention."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from scgraphbench.models.base import GeneStandardiser
from scgraphbench.models.contract import FamilyModule
from scgraphbench.models.registry import ModelContext, register


@register("mlp")
class MLP(FamilyModule):
    """x (B, n_genes) -> [Linear(width), GELU, Dropout] per hidden layer -> Linear(d_model) =
    the cell embedding -> head. ``hidden``: one width for ``n_layers`` layers, or a list of
    widths (then ``n_layers`` is not used).

    The expression is standardised per gene first (training-cell mean and std from
    ``ctx.extra``; see :func:`scgraphbench.models.base.gene_scaling`).

    Annotation: ``logits = Linear(GELU(embedding))``. Perturbation: the input is the control
    cell's expression concatenated with the perturbation flags, and
    ``pred = x + Linear(GELU(embedding))`` (one change per gene), as the token families.
    """

    def __init__(self, ctx: ModelContext, *, d_model: int, hidden: int | list[int],
                 n_layers: int, dropout: float) -> None:
        super().__init__()
        # an int is one width for n_layers hidden layers; a list gives each layer's width
        widths = [hidden] * n_layers if not isinstance(hidden, list | tuple) else list(hidden)
        self.task = ctx.task
        # per-gene standardisation with training-cell statistics (ctx.extra): on raw log
        # values the MLP sat on the class prior for epochs (docs/training.md)
        self.scaler = GeneStandardiser(ctx)
        n_in = ctx.n_genes * (2 if ctx.task == "perturbation" else 1)
        layers: list[nn.Module] = []
        width = n_in
        for out in widths:
            layers += [nn.Linear(width, out), nn.GELU(), nn.Dropout(dropout)]
            width = out
        layers.append(nn.Linear(width, d_model))
        self.trunk = nn.Sequential(*layers)
        n_out = ctx.n_classes if ctx.task == "annotation" else ctx.n_genes
        self.head = nn.Sequential(nn.GELU(), nn.Dropout(dropout), nn.Linear(d_model, n_out))

    def forward(self, x: torch.Tensor, pert: torch.Tensor | None = None) -> dict[str, Any]:
        z = self.scaler(x)
        if self.task == "annotation":
            emb = self.trunk(z)
            return {"embedding": emb, "logits": self.head(emb)}
        flags = torch.zeros_like(x) if pert is None else pert.to(x.dtype)
        emb = self.trunk(torch.cat([z, flags], dim=-1))
        return {"embedding": emb, "pred": x + self.head(emb)}
