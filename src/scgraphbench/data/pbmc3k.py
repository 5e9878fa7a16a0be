"""PBMC3k cell-type labels, made by running the scanpy PBMC3k tutorial, not copied from it.

The tutorial ("Preprocessing and clustering 3k PBMCs", scverse/scanpy-tutorials pbmc3k.ipynb)
names its clusters by hand from a marker table. Here the same steps run on the counts and
each cluster is named by that marker table, so the labels follow from the data and the code:

1. QC as the tutorial: cells with >= 200 genes, genes in >= 3 cells, < 2500 genes per cell,
   < 5% mitochondrial counts (genes starting 'MT-').
2. normalize_total(1e4), log1p; HVGs with min_mean=0.0125, max_mean=3, min_disp=0.5;
   regress out total counts and % mitochondrial; scale (max 10); PCA (arpack);
   neighbors (10 neighbours, 40 PCs); Leiden (resolution 1, random_state = seed).
3. Each cluster gets the cell type whose tutorial markers it expresses most: per cluster, the
   mean log-normalised expression of each marker, standardised across clusters (z-score);
   a type's score is the mean z of its markers; the cluster takes the best-scoring type.
   Several clusters may take the same type; a type no cluster takes is absent (logged).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from scgraphbench.errors import ScgbError

log = logging.getLogger(__name__)

# The tutorial's marker table (cluster -> markers -> cell type).
TUTORIAL_MARKERS: dict[str, tuple[str, ...]] = {
    "CD4 T": ("IL7R",),
    "CD14 Monocytes": ("CD14", "LYZ"),
    "B": ("MS4A1",),
    "CD8 T": ("CD8A",),
    "NK": ("GNLY", "NKG7"),
    "FCGR3A Monocytes": ("FCGR3A", "MS4A7"),
    "Dendritic": ("FCER1A", "CST3"),
    "Megakaryocytes": ("PPBP",),
}


@dataclass
class TutorialParams:
    """The tutorial's settings; tests on small subsets relax the QC and graph sizes."""

    min_genes: int = 200
    min_cells: int = 3
    max_genes: int = 2500
    max_pct_mt: float = 5.0
    n_neighbors: int = 10
    n_pcs: int = 40
    resolution: float = 1.0
    hvg: dict = field(default_factory=lambda: {"min_mean": 0.0125, "max_mean": 3, "min_disp": 0.5})


def assign_cell_types(
    logn: ad.AnnData, clusters: pd.Series, markers: dict[str, tuple[str, ...]] = TUTORIAL_MARKERS
) -> dict[str, str]:
    """Cluster -> cell type by z-scored mean marker expression (see the module doc)."""
    usable = {t: [g for g in genes if g in logn.var_names] for t, genes in markers.items()}
    lost = [t for t, genes in usable.items() if not genes]
    if lost:
        raise ScgbError(
            f"no marker genes of {lost} in the data",
            field="annotate",
            fix="the PBMC3k tutorial annotation needs the tutorial's marker genes",
        )
    genes = sorted({g for gs in usable.values() for g in gs})
    X = logn[:, genes].X
    X = X.toarray() if sp.issparse(X) else np.asarray(X)
    means = pd.DataFrame(X, columns=genes).groupby(clusters.to_numpy(), observed=True).mean()
    z = (means - means.mean()) / means.std(ddof=0).replace(0, 1)
    scores = pd.DataFrame({t: z[gs].mean(axis=1) for t, gs in usable.items()})
    return scores.idxmax(axis=1).to_dict()


def tutorial_labels(
    counts: ad.AnnData, *, seed: int = 0, params: TutorialParams | None = None
) -> tuple[pd.Series, dict]:
    """Cell-type label per cell that passes the tutorial's QC (index: those obs_names).

    Returns the labels and a report (clusters -> type, cells per type, QC counts).
    """
    import scanpy as sc

    p = params or TutorialParams()
    a = counts.copy()
    a.var_names_make_unique()
    n_in = a.n_obs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sc.pp.filter_cells(a, min_genes=p.min_genes)
        sc.pp.filter_genes(a, min_cells=p.min_cells)
        a.var["mt"] = a.var_names.str.startswith("MT-")
        sc.pp.calculate_qc_metrics(a, qc_vars=["mt"], percent_top=None, log1p=False, inplace=True)
        a = a[
            (a.obs["n_genes_by_counts"] < p.max_genes) & (a.obs["pct_counts_mt"] < p.max_pct_mt)
        ].copy()
        if a.n_obs < 10:
            raise ScgbError(
                f"only {a.n_obs} of {n_in} cells pass the tutorial's QC",
                field="annotate",
                fix="check that the input holds raw counts",
            )
        sc.pp.normalize_total(a, target_sum=1e4)
        sc.pp.log1p(a)
        logn = a.copy()
        sc.pp.highly_variable_genes(a, **p.hvg)
        a = a[:, a.var["highly_variable"]].copy()
        sc.pp.regress_out(a, ["total_counts", "pct_counts_mt"], n_jobs=1)
        sc.pp.scale(a, max_value=10)
        n_pcs = min(p.n_pcs, a.n_vars - 1, a.n_obs - 1)
        sc.tl.pca(a, n_comps=n_pcs, svd_solver="arpack", random_state=seed)
        sc.pp.neighbors(a, n_neighbors=p.n_neighbors, n_pcs=n_pcs, random_state=seed)
        sc.tl.leiden(a, resolution=p.resolution, random_state=seed)
    clusters = a.obs["leiden"].astype(str)
    names = assign_cell_types(logn, clusters)
    labels = clusters.map(names).rename("label")
    absent = sorted(set(TUTORIAL_MARKERS) - set(names.values()))
    if absent:
        log.warning("PBMC3k annotation: no cluster was named %s", absent)
    report = {
        "cells_in": int(n_in),
        "cells_after_qc": int(a.n_obs),
        "n_clusters": int(clusters.nunique()),
        "cluster_names": names,
        "cells_per_type": {k: int(v) for k, v in labels.value_counts().items()},
        "absent_types": absent,
    }
    return labels, report
