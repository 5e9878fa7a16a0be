"""Diffuser over a gene ordering (Feng et al. 2023): attention on BigBird's sparse pattern
(window + global + random), then K steps of personalised-PageRank attention diffusion, so a
gene reaches multi-hop neighbours of the pattern inside one layer. It is GenoHoption's
diffusion on a sequence pattern instead of the gene graph (their 'window' baseline)."""

from __future__ import annotations

from scgraphbench.models.bigbird import BigBird
from scgraphbench.models.genohoption import PPRAttention
from scgraphbench.models.registry import register


@register("diffuser")
class Diffuser(BigBird):
    """BigBird pattern + PPR diffusion: ``alpha`` (restart, default 0.25) and ``steps`` (K,
    default 6) as in GenoHoption's runs; pattern parameters and defaults as :class:`BigBird`."""

    mixer_cls = PPRAttention
