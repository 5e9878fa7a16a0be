"""BigBird over a gene ordering: sliding window + global tokens + random keys per gene
(Zaheer et al. 2020), as a CSR pattern through the sparse kernel."""

from __future__ import annotations

from scgraphbench.models.longformer import PatternAttentionModel
from scgraphbench.models.registry import register


@register("bigbird")
class BigBird(PatternAttentionModel):
    """Window (default ``auto``: the gene graph's mean degree, as GenoHoption set it) +
    ``n_global`` global genes (+ CLS) + ``n_random`` random keys per gene, seeded; the
    parameters and defaults are the catalog's (``scgraphbench.models.catalog``)."""
