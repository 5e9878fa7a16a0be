"""Graph attention families on the gene graph: masked attention (neighbours only), and
GenoHoption's diffusion attention (neighbour attention then K steps of PPR or heat
diffusion inside the layer), all through the sparse kernel."""

from __future__ import annotations

from typing import Any

import scipy.sparse as sp
import torch

from scgraphbench.kernels import CSRGraph, graph_attention, prepare
from scgraphbench.models.base import GeneTokenModel, MultiHeadMixer
from scgraphbench.models.registry import ModelContext, register
from scgraphbench.models.token_graph import GraphBuffers


class GraphAttention(MultiHeadMixer):
    diffusion: str | None = None

    def __init__(self, d_model: int, n_heads: int, dropout: float, ctx: ModelContext,
                 graph: sp.csr_matrix | None, *, alpha: float = 0.25, t: float = 5.0,
                 steps: int = 0, normalise_heat: bool = False, checkpoint: bool | None = None,
                 **params: Any) -> None:
        # masked attention declares no diffusion parameters: these values are then unused
        super().__init__(d_model, n_heads, dropout, ctx, graph, **params)
        self.gene_graph = GraphBuffers(CSRGraph.from_scipy(graph, add_self_loops=True))
        self.alpha, self.t, self.steps = alpha, t, steps
        self.normalise_heat, self.checkpoint = normalise_heat, checkpoint
        # load the kernel now, so that the training run's time and memory do not count it
        prepare("cuda" if torch.cuda.is_available() else "cpu")

    @property
    def graph(self) -> CSRGraph:
        return self.gene_graph.graph

    def core_flops(self, L: int) -> int:
        """Scores on edges and the weighted sum (4 E d), + 2 E d per diffusion step."""
        steps = self.steps if self.diffusion else 0
        return (4 + 2 * steps) * self.graph.n_edges * self.qkv.in_features

    def attention_mask(self, L: int, device: torch.device) -> torch.Tensor:
        mask = torch.zeros(L, L, dtype=torch.bool, device=device)
        graph = self.graph
        mask[graph.row.to(device), graph.col.to(device)] = True
        return mask

    def core(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return graph_attention(q, k, v, self.graph, diffusion=self.diffusion, alpha=self.alpha,
                               t=self.t, steps=self.steps, dropout_p=self.dropout,
                               training=self.training, normalise_heat=self.normalise_heat,
                               checkpoint=self.checkpoint)


class PPRAttention(GraphAttention):
    diffusion = "ppr"


class HeatAttention(GraphAttention):
    diffusion = "heat"


@register("masked_attention")
class MaskedAttentionModel(GeneTokenModel):
    """Attention restricted to graph neighbours (scTransformer / scrna_longformer kNN mask)."""

    mixer_cls = GraphAttention


@register("genohoption_ppr")
class GenoHoptionPPR(GeneTokenModel):
    """GenoHoption: neighbour attention, then K steps of personalised-PageRank diffusion."""

    mixer_cls = PPRAttention


@register("genohoption_heat")
class GenoHoptionHeat(GeneTokenModel):
    """GenoHoption: neighbour attention, then the truncated heat-kernel series."""

    mixer_cls = HeatAttention
