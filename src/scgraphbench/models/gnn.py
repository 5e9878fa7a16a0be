"""GNN families from PyTorch Geometric over the gene graph.

One graph serves the whole batch: GCN and GraphSAGE take node features shaped
(B, n, d) with a shared ``edge_index`` (PyG's static-graph mode), so there is no
Python loop over cells.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from torch_geometric.nn import GCNConv, SAGEConv

from scgraphbench.models.base import GeneTokenModel, TokenMixer
from scgraphbench.models.registry import ModelContext, register


def edge_index_from_scipy(A: sp.spmatrix) -> torch.Tensor:
    """PyG edge_index (2, E) with messages flowing source=col -> target=row."""
    A = sp.coo_matrix(A)
    return torch.from_numpy(np.vstack([A.col, A.row]).astype(np.int64))


class GNNMixer(TokenMixer):
    conv_cls: type = GCNConv

    def __init__(self, d_model: int, n_heads: int, dropout: float, ctx: ModelContext,
                 graph: sp.csr_matrix | None, **params: Any) -> None:
        super().__init__(d_model, n_heads, dropout, ctx, graph)
        self.conv = self.make_conv(d_model)
        self.register_buffer("edge_index", edge_index_from_scipy(graph), persistent=False)

    def make_conv(self, d_model: int) -> torch.nn.Module:
        return self.conv_cls(d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x, self.edge_index)


class GCNMixer(GNNMixer):
    conv_cls = GCNConv


class SAGEMixer(GNNMixer):
    conv_cls = SAGEConv


@register("gnn_gcn")
class GCN(GeneTokenModel):
    mixer_cls = GCNMixer
    needs_graph = True


@register("gnn_sage")
class GraphSAGE(GeneTokenModel):
    mixer_cls = SAGEMixer
    needs_graph = True
