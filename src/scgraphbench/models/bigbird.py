"""BigBird over a gene ordering: sliding window + global tokens + random keys per gene
(Zaheer et al. 2020), as a CSR pattern through the sparse kernel."""

from __future__ import annotations

from typing import Any

from scgraphbench.models.longformer import PatternAttentionModel
from scgraphbench.models.registry import ModelContext, register


@register("bigbird")
class BigBird(PatternAttentionModel):
    """Window (default ``auto``: the gene graph's mean degree, as GenoHoption set it) +
    ``n_global`` global genes (+ CLS) + ``n_random`` random keys per gene, seeded."""

    def __init__(
        self,
        ctx: ModelContext,
        *,
        window: int | str = "auto",
        n_global: int = 2,
        n_random: int = 3,
        order: str = "dataset",
        pattern_seed: int | None = None,
        **params: Any,
    ) -> None:
        super().__init__(
            ctx,
            window=window,
            n_global=n_global,
            n_random=n_random,
            order=order,
            pattern_seed=pattern_seed,
            **params,
        )
