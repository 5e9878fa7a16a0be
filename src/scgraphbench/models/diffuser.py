"""Diffuser over a gene ordering (Feng et al. 2023): attention on BigBird's sparse pattern
(window + global + random), then K steps of personalised-PageRank attention diffusion, so a
gene reaches multi-hop neighbours of the pattern inside one layer. It is GenoHoption's
diffusion on a sequence pattern instead of the gene graph (their 'window' baseline)."""

from __future__ import annotations

from typing import Any

from scgraphbench.models.genohoption import PPRAttention
from scgraphbench.models.longformer import PatternAttentionModel
from scgraphbench.models.registry import ModelContext, register


@register("diffuser")
class Diffuser(PatternAttentionModel):
    """BigBird pattern + PPR diffusion: ``alpha`` (restart, default 0.25) and ``steps`` (K,
    default 6) as in GenoHoption's runs; pattern parameters as :class:`BigBird`."""

    mixer_cls = PPRAttention

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
