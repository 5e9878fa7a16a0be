"""Datasets that ship with installed packages, so the default run needs no network."""

from __future__ import annotations

import anndata as ad
import numpy as np
import scipy.sparse as sp


def pbmc68k_reduced_counts() -> ad.AnnData:
    """scanpy's bundled pbmc68k_reduced (700 cells, 765 genes, 10 bulk_labels) as counts.

    ``.raw`` holds log1p(CP10k); ``obs['n_counts']`` is each cell's library size,
    so counts = round(expm1(raw) * n_counts / 1e4).
    """
    import scanpy as sc

    pbmc = sc.datasets.pbmc68k_reduced()
    raw = pbmc.raw.to_adata()
    logn = raw.X.toarray() if sp.issparse(raw.X) else np.asarray(raw.X)
    counts = np.rint(np.expm1(logn) * pbmc.obs["n_counts"].to_numpy()[:, None] / 1e4)
    out = ad.AnnData(X=sp.csr_matrix(counts.astype(np.float32)), obs=pbmc.obs.copy(),
                     var=raw.var[[]].copy())
    out.var_names_make_unique()
    return out
