"""Longformer over a gene ordering: each gene attends to a sliding window of its neighbours in
the ordering plus a few global tokens (Beltagy et al. 2020), through the sparse CSR kernel."""

from __future__ import annotations

from typing import Any

import scipy.sparse as sp
import torch

from scgraphbench.errors import ScgbError
from scgraphbench.models.base import (
    GeneTokenModel,
    check_choice,
    check_positive,
    init_params,
    mixer_params_of,
)
from scgraphbench.models.genohoption import GraphAttention
from scgraphbench.models.patterns import ORDERS, gene_order, resolve_window, sparse_pattern
from scgraphbench.models.registry import ModelContext, register


def draw_seed(pattern_seed: int | None) -> int:
    """``pattern_seed`` or, when None, a seed drawn from torch's global generator, which the
    run seeds with the run's seed: every run seed gets its own reproducible pattern."""
    if pattern_seed is not None:
        return int(pattern_seed)
    return int(torch.randint(0, 2**31 - 1, (1,)).item())


class PatternAttentionModel(GeneTokenModel):
    """Attention restricted to a window (+ global, + random) pattern over a gene ordering.

    ``window``: neighbours in the band (``window // 2`` on each side) or ``"auto"`` (the gene
    graph's mean degree); ``n_global``: genes made global (the first of the ordering; the
    CLS token is always global); ``n_random``: random keys per gene (BigBird); ``order``:
    dataset | random | graph (reverse Cuthill-McKee of the gene graph); ``pattern_seed``:
    seed of the random order and random keys (None: drawn from the run's seeded RNG).
    """

    mixer_cls = GraphAttention
    default_window: int | str = 64
    default_n_global = 0
    default_n_random = 0

    def __init__(
        self,
        ctx: ModelContext,
        *,
        window: int | str | None = None,
        n_global: int | None = None,
        n_random: int | None = None,
        order: str = "dataset",
        pattern_seed: int | None = None,
        **params: Any,
    ) -> None:
        given = {"window": window, "n_global": n_global, "n_random": n_random}
        own = init_params(type(self))
        foreign = sorted(k for k, v in given.items() if v is not None and k not in own)
        if foreign:  # e.g. n_random for longformer, which has no random keys
            known = own | init_params(GeneTokenModel) | mixer_params_of(self.mixer_cls)
            raise ScgbError(
                f"{self.family}: unknown parameter(s) {foreign}",
                field=f"models.{self.family}.params",
                fix=f"use only: {', '.join(sorted(known))}",
            )
        self.window_param = self.default_window if window is None else window
        self.n_global = self.default_n_global if n_global is None else n_global
        self.n_random = self.default_n_random if n_random is None else n_random
        fam = self.family
        check_choice(fam, "order", order, ORDERS)
        for name, value in (("n_global", self.n_global), ("n_random", self.n_random)):
            check_positive(fam, name, value, 0)
        self.order_name = order
        self.pattern_seed = draw_seed(pattern_seed)
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

    default_window = 64
    default_n_global = 0
    default_n_random = 0

    def __init__(
        self,
        ctx: ModelContext,
        *,
        window: int | str = 64,
        n_global: int = 0,
        order: str = "dataset",
        pattern_seed: int | None = None,
        **params: Any,
    ) -> None:
        super().__init__(
            ctx,
            window=window,
            n_global=n_global,
            order=order,
            pattern_seed=pattern_seed,
            **params,
        )
