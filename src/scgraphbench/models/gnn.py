"""GNN families from PyTorch Geometric over the gene graph, one graph shared by the batch.

- GCN and GraphSAGE take node features shaped (B, n, d) with one shared ``edge_index``
  (PyG's static-graph mode: their message passing indexes the node dimension -2).
- GATConv has no static-graph mode (its attention coefficients assume (N, d) features), so
  the batch runs as one disjoint union of B copies of the graph: features (B*n, d) and the
  edge index repeated with node offsets b*n, built once per batch size and device and cached.

No Python loop over cells in any of them. Each conv is the token mixer of a pre-LN block
(:class:`scgraphbench.models.base.Block`), so the GNNs differ from the attention families in
the mixer only. Their default readout is attention pooling (PyG's AttentionalAggregation over
the genes, a graph-level readout) rather than a CLS virtual node: a CLS node aggregates the
genes with fixed GCN/mean weights and cannot pick marker genes (measured: GCN with CLS
reached macro-F1 0.14 on pbmc68k where attention pooling reached 0.49).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from torch_geometric.nn import GATConv, GCNConv, SAGEConv

from scgraphbench.errors import ScgbError
from scgraphbench.models.base import GeneTokenModel, TokenMixer
from scgraphbench.models.registry import ModelContext, register


def edge_index_from_scipy(A: sp.spmatrix) -> torch.Tensor:
    """PyG edge_index (2, E) with messages flowing source=col -> target=row."""
    A = sp.coo_matrix(A)
    return torch.from_numpy(np.vstack([A.col, A.row]).astype(np.int64))


def disjoint_union_edge_index(edge_index: torch.Tensor, n_nodes: int, copies: int) -> torch.Tensor:
    """Edge index of ``copies`` disjoint copies of a graph on ``n_nodes`` nodes: copy b's
    nodes are b*n_nodes .. (b+1)*n_nodes-1. (2, copies*E)."""
    offsets = torch.arange(copies, device=edge_index.device) * n_nodes
    return (edge_index.unsqueeze(1) + offsets.view(1, -1, 1)).reshape(2, -1)


class GNNMixer(TokenMixer):
    """A PyG conv as a token mixer on the (L, L) gene graph (CLS node included when pooling is
    cls: a virtual node linked to every gene)."""

    conv_cls: type = GCNConv
    self_loops = False  # the conv adds a self-loop per node (counted in the FLOPs)
    conv_heads = 1  # heads whose outputs are concatenated (GAT)

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        dropout: float,
        ctx: ModelContext,
        graph: sp.csr_matrix | None,
        **params: Any,
    ) -> None:
        super().__init__(d_model, n_heads, dropout, ctx, graph, **params)
        self.conv = self.make_conv(d_model, n_heads, dropout)
        self.register_buffer("edge_index", edge_index_from_scipy(graph), persistent=False)

    def make_conv(self, d_model: int, n_heads: int, dropout: float) -> torch.nn.Module:
        return self.conv_cls(d_model, d_model)

    def core_flops(self, L: int) -> int:
        """One sparse aggregation, 2 E d (GCN adds L self-loop edges)."""
        E = int(self.edge_index.shape[1]) + (L if self.self_loops else 0)
        return 2 * E * int(self.conv.out_channels) * self.conv_heads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x, self.edge_index)


class GCNMixer(GNNMixer):
    conv_cls = GCNConv
    self_loops = True


class SAGEMixer(GNNMixer):
    conv_cls = SAGEConv


class GATMixer(GNNMixer):
    """GATConv (Velickovic et al. 2018) with ``n_heads`` heads of width d/n_heads,
    concatenated; ``dropout`` on the attention coefficients."""

    conv_cls = GATConv

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._union: dict[tuple[int, str], torch.Tensor] = {}

    def make_conv(self, d_model: int, n_heads: int, dropout: float) -> torch.nn.Module:
        if d_model % n_heads:
            raise ScgbError(
                f"gnn_gat: d_model={d_model} is not divisible by n_heads={n_heads}",
                field="models.gnn_gat.params.n_heads",
                fix="pick n_heads dividing d_model",
            )
        self.conv_heads = n_heads
        return GATConv(d_model, d_model // n_heads, heads=n_heads, dropout=dropout)

    def union_edge_index(self, copies: int, n_nodes: int) -> torch.Tensor:
        key = (copies, str(self.edge_index.device))
        if key not in self._union:
            self._union[key] = disjoint_union_edge_index(self.edge_index, n_nodes, copies)
        return self._union[key]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, L, d = x.shape
        out = self.conv(x.reshape(B * L, d), self.union_edge_index(B, L))
        return out.view(B, L, -1)

    def _apply(self, fn: Any, *args: Any, **kwargs: Any) -> GATMixer:
        self._union.clear()  # cached indices live on the old device
        return super()._apply(fn, *args, **kwargs)


@register("gnn_gcn")
class GCN(GeneTokenModel):
    """GCN (Kipf & Welling) blocks on the gene graph."""

    mixer_cls = GCNMixer
    default_pooling = "attention"


@register("gnn_sage")
class GraphSAGE(GeneTokenModel):
    """GraphSAGE (mean aggregation) blocks on the gene graph."""

    mixer_cls = SAGEMixer
    default_pooling = "attention"


@register("gnn_gat")
class GAT(GeneTokenModel):
    """GAT blocks on the gene graph (``n_heads`` heads, ``attn_dropout`` on coefficients)."""

    mixer_cls = GATMixer
    default_pooling = "attention"
