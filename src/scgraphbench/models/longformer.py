"""Longformer over a gene ordering: each gene attends to a sliding window of its neighbours in
the ordering plus a few global tokens (Beltagy et al. 2020), through the sparse CSR kernel."""

from __future__ import annotations

from typing import Any

import scipy.sparse as sp

from scgraphbench.models.base import GeneTokenModel
from scgraphbench.models.genohoption import GraphAttention
from scgraphbench.models.patterns import gene_order, resolve_window, sparse_pattern
from scgraphbench.models.registry import ModelContext, register


class PatternAttentionModel(GeneTokenModel):
    """Attention restricted to a window (+ global, + random) pattern over a gene ordering.

    ``window``: neighbours in the band (``window // 2`` on each side) or ``"auto"`` (the gene
    graph's mean degree); ``n_global``: genes made global (the first of the ordering; the
    CLS token is always global); ``n_random``: random keys per gene (BigBird; Longformer
    has none); ``order``: dataset | random | graph (reverse Cuthill-McKee of the gene
    graph); ``pattern_seed``: seed of the random order and random keys (None: the run's
    seed). Defaults are the catalog's.
    """

    mixer_cls = GraphAttention

    def __init__(self, ctx: ModelContext, *, window: int | str, n_global: int, order: str,
                 pattern_seed: int | None, n_random: int = 0, **params: Any) -> None:
        self.window_param, self.n_global, self.n_random = window, n_global, n_random
        self.order_name = order
        self.pattern_seed = ctx.seed if pattern_seed is None else int(pattern_seed)
        super().__init__(ctx, **params)

    def attention_graph(self, ctx: ModelContext) -> sp.csr_matrix:
        fam = self.family
        self.window = resolve_window(fam, self.window_param, ctx.graph)
        self.order = gene_order(fam, ctx.n_genes, self.order_name, ctx.graph, self.pattern_seed)
        return sparse_pattern(
            fam,
            ctx.n_genes,
            window=self.window,
            n_global=int(self.n_global),
            n_random=int(self.n_random),
            order=self.order,
            seed=self.pattern_seed,
            use_cls=self.use_cls,
        )


@register("longformer")
class Longformer(PatternAttentionModel):
    """Sliding window (default 64, GenoHoption's Longformer setting) + global tokens."""
