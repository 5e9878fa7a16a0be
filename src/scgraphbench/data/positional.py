"""Synthetic positional-relevance data (the GNN-substitute paper's synthetic experiment; its
code is not public, so this design is ours).

Two datasets over the same random expression matrix:

- ``set``: the label depends only on the multiset of (gene, value) pairs — whether the mean
  of marker set S exceeds the mean of marker set T. Position carries no information.
- ``order``: cells are presented as their genes in rank order *without values*
  (Geneformer-style rank encoding, ``uns['scgraphbench']['token_order'] = 'rank'``); the
  label is whether gene a comes before gene b in that ordering. Only relative positions
  carry the label, so a model without positional encoding cannot beat chance.
"""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd

from scgraphbench.data.prepare import stratified_split
from scgraphbench.errors import ScgbError

MODES = ("set", "order")


def synthetic_positional_adata(mode: str, *, n_cells: int = 1200, n_genes: int = 64,
                               n_markers: int = 6, seed: int = 0, val_fraction: float = 0.15,
                               test_fraction: float = 0.2, dataset: str = "positional",
                               split_seed: int | None = None) -> ad.AnnData:
    """A prepared-layout AnnData (X, layers['counts'], obs label/split) for one mode."""
    if mode not in MODES:
        raise ScgbError(f"unknown positional mode '{mode}'", field="mode",
                        fix=f"use one of: {', '.join(MODES)}")
    if n_genes < 2 * n_markers + 2:
        raise ScgbError(f"n_genes={n_genes} is too small for {n_markers} markers per set",
                        field="n_genes", fix=f"use n_genes >= {2 * n_markers + 2}")
    rng = np.random.default_rng(seed)
    counts = rng.poisson(rng.gamma(2.0, 2.0, size=(n_cells, n_genes))).astype(np.float32)
    X = np.log1p(counts).astype(np.float32)
    genes = [f"GENE{i:03d}" for i in range(n_genes)]
    markers = rng.permutation(n_genes)
    s_set, t_set = markers[:n_markers], markers[n_markers:2 * n_markers]
    a, b = markers[2 * n_markers], markers[2 * n_markers + 1]
    if mode == "set":
        y = X[:, s_set].mean(1) > X[:, t_set].mean(1)
        rule = {"S": [genes[i] for i in s_set], "T": [genes[i] for i in t_set]}
    else:
        # ties broken by gene index, as a stable argsort of -x orders them
        rank = np.argsort(np.argsort(-X, axis=1, kind="stable"), axis=1, kind="stable")
        y = rank[:, a] < rank[:, b]
        rule = {"a": genes[a], "b": genes[b]}
    labels = np.where(y, "yes", "no")
    obs = pd.DataFrame({"label": labels}, index=[f"cell{i}" for i in range(n_cells)])
    split_seed = seed if split_seed is None else split_seed
    obs["split"] = stratified_split(obs["label"], val_fraction, test_fraction, split_seed)
    adata = ad.AnnData(X=X, obs=obs, var=pd.DataFrame(index=genes))
    adata.layers["counts"] = counts
    adata.obs["label"] = adata.obs["label"].astype("category")
    adata.obs["split"] = pd.Categorical(adata.obs["split"], categories=["train", "val", "test"])
    adata.var["gene_name"] = genes
    adata.uns["scgraphbench"] = {"dataset": dataset, "task": "annotation", "seed": int(split_seed),
                                 "n_top_genes": n_genes, "source": f"synthetic_positional:{mode}",
                                 "token_order": "rank" if mode == "order" else "index"}
    adata.uns["positional_rule"] = {"mode": mode, **rule}
    return adata
