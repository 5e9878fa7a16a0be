"""Graph attention families on the gene graph: masked attention (neighbours only) and
GenoHoption's diffusion attention (neighbour attention then K steps of PPR or heat
diffusion inside the layer), all through the sparse kernel."""

from __future__ import annotations

from typing import Any

import scipy.sparse as sp
import torch

from scgraphbench.kernels import CSRGraph, graph_attention, prepare
from scgraphbench.kernels.graph_attention import series_work
from scgraphbench.models.base import GeneTokenModel, MultiHeadMixer
from scgraphbench.models.registry import ModelContext, register


class GraphAttention(MultiHeadMixer):
    diffusion: str | None = None

    def __init__(self, d_model: int, n_heads: int, dropout: float, ctx: ModelContext,
                 graph: sp.csr_matrix | None, alpha: float = 0.25, t: float = 5.0,
                 steps: int = 6, normalise_heat: bool = False, checkpoint: bool | None = None,
                 **params: Any) -> None:
        super().__init__(d_model, n_heads, dropout, ctx, graph, **params)
        g = CSRGraph.from_scipy(graph, add_self_loops=True)
        # buffers, so .to(device) moves the graph with the module
        for name in ("crow", "col", "row", "crow_t", "col_t", "perm"):
            self.register_buffer(name, getattr(g, name), persistent=False)
        self.n, self._graph_key = g.n, g.fingerprint()
        self._graph: CSRGraph | None = None
        self.alpha, self.t, self.steps = alpha, t, steps
        self.normalise_heat, self.checkpoint = normalise_heat, checkpoint
        # load the kernel now, so that the training run's time and memory do not count it
        work = series_work(n_heads, g.n_edges, self.diffusion, steps)
        prepare("cuda" if torch.cuda.is_available() else "cpu", work=work)

    @property
    def graph(self) -> CSRGraph:
        # one CSRGraph per graph and device, shared by the layers (it caches the batched
        # index arrays); rebuilt after .to(device)
        if self._graph is None or self._graph.device != self.col.device:
            self._graph = CSRGraph(self.crow, self.col, self.row, self.n, self.crow_t,
                                   self.col_t, self.perm).shared(self._graph_key)
        return self._graph

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
    needs_graph = True


@register("genohoption_ppr")
class GenoHoptionPPR(GeneTokenModel):
    mixer_cls = PPRAttention
    needs_graph = True


@register("genohoption_heat")
class GenoHoptionHeat(GeneTokenModel):
    mixer_cls = HeatAttention
    needs_graph = True
