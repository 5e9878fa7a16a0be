"""Gene-graph convolution on expression values (Dutil et al. 2018, "Towards gene expression
convolutions using gene interaction graphs"; Rhee et al. 2018): each gene is a node whose
features are its own standardised value (and, for perturbation, its perturbation flag), not a
learned gene embedding, and PyG GCNConv layers average those values over graph neighbours.

The token GNNs (:mod:`.gnn`) give every gene an identity embedding before message passing,
so on planted data they do as well on a shuffled GRN as on the true one (docs/verdicts.md,
"Engine checks"): a neighbour's message says who it is more than what it measures. Here a
message is a value, so a graph that groups co-regulated genes denoises their shared signal
and a random graph blurs it; this is the family that tests whether a prior carries
information about expression.

Readout is gene-wise: the (genes x channels) states are flattened and projected to the cell
embedding, so the model keeps which gene carried which smoothed value (a mean over genes
would not). Perturbation: ``pred_g = x_g + <w_g, h_g> + b_g + <v_g, GELU(embedding)>`` with
gene-specific weights, so a perturbation flag reaches its graph neighbours' predictions
through the convolutions (and every gene through the cell embedding, whose weights v start
at zero).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch_geometric.nn import GCNConv

from scgraphbench.errors import ScgbError
from scgraphbench.models.base import GeneStandardiser
from scgraphbench.models.contract import FamilyModule
from scgraphbench.models.gnn import edge_index_from_scipy
from scgraphbench.models.registry import ModelContext, register


@register("gnn_value")
class ValueGCN(FamilyModule):
    """x (B, n) -> standardise -> node features (B, n, 1 [+ flag]) -> ``n_layers`` x
    [GCNConv(channels), ReLU] -> flatten (B, n * channels) -> dropout -> Linear(d_model) =
    the cell embedding -> [GELU, dropout, Linear(n_classes)] (annotation)."""

    def __init__(self, ctx: ModelContext, *, channels: int, n_layers: int, d_model: int,
                 dropout: float) -> None:
        super().__init__()
        n = ctx.n_genes
        if ctx.graph is None or ctx.graph.shape != (n, n):
            shape = None if ctx.graph is None else ctx.graph.shape
            raise ScgbError(f"gnn_value needs an ({n}, {n}) gene graph, got {shape}",
                            field="models.gnn_value.graphs",
                            fix="list graph variants built for this dataset's genes")
        self.task = ctx.task
        self.scaler = GeneStandardiser(ctx)
        # GCNConv adds the self-loops and the symmetric normalisation itself
        self.register_buffer("edge_index", edge_index_from_scipy(ctx.graph), persistent=False)
        n_in = 2 if ctx.task == "perturbation" else 1
        self.convs = nn.ModuleList(
            GCNConv(n_in if i == 0 else channels, channels) for i in range(n_layers))
        self.dropout = nn.Dropout(dropout)
        self.embed = nn.Linear(n * channels, d_model)
        if ctx.task == "annotation":
            self.head = nn.Sequential(nn.GELU(), nn.Dropout(dropout),
                                      nn.Linear(d_model, ctx.n_classes))
        else:
            self.gene_weight = nn.Parameter(torch.zeros(n, channels))
            self.gene_bias = nn.Parameter(torch.zeros(n))
            # the cell embedding's share of each gene's change (zero at the start, so a
            # flag first moves its graph neighbours only)
            self.cell_to_gene = nn.Linear(d_model, n)
            nn.init.zeros_(self.cell_to_gene.weight)

    def gene_states(self, x: torch.Tensor, pert: torch.Tensor | None = None) -> torch.Tensor:
        """(B, n_genes, channels) after the convolutions."""
        h = self.scaler(x).unsqueeze(-1)
        if self.task == "perturbation":
            flags = torch.zeros_like(x) if pert is None else pert.to(x.dtype)
            h = torch.cat([h, flags.unsqueeze(-1)], dim=-1)
        for conv in self.convs:
            h = torch.relu(conv(h, self.edge_index))
        return h

    def attention_flops(self, n_genes: int) -> int:
        """The convolutions' neighbour aggregation, 2 (E + n) c per layer (self-loops added);
        the token-mixing cost that train/cost.py compares across families."""
        edges = int(self.edge_index.shape[1]) + n_genes
        return int(sum(2 * edges * conv.out_channels for conv in self.convs))

    def forward(self, x: torch.Tensor, pert: torch.Tensor | None = None) -> dict[str, Any]:
        h = self.gene_states(x, pert)
        emb = self.embed(self.dropout(h.flatten(1)))
        if self.task == "annotation":
            return {"embedding": emb, "logits": self.head(emb)}
        delta = (h * self.gene_weight).sum(-1) + self.gene_bias
        delta = delta + self.cell_to_gene(nn.functional.gelu(emb))
        return {"embedding": emb, "pred": x + delta}
