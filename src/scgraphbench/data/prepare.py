"""Turn any source AnnData into the canonical prepared layout.

The prepared h5ad is the only thing later stages read:

- ``X``: log1p(normalize_total(counts, 1e4)), float32, restricted to the selected genes
- ``layers['counts']``: raw counts
- ``var_names``: unique gene symbols (``var['gene_name']`` too)
- ``obs['split']``: one of ``train``, ``val``, ``test``
- annotation: ``obs['label']`` (categorical)
- perturbation: ``obs['condition']`` (GEARS style ``A+ctrl``, ``A+B``, ``ctrl``),
  ``obs['control']`` (bool), ``uns['top20_de']`` ({condition: [gene, ...]}),
  ``uns['subgroup']`` ({condition: subgroup})
- ``uns['scgraphbench']``: provenance (dataset, task, seed, n_top_genes)

HVGs are selected on training cells only so that nothing from the test split
leaks into the features.
"""

from __future__ import annotations

import warnings

import anndata as ad
import numpy as np
import pandas as pd
import scanpy as sc
import scipy.sparse as sp
from sklearn.model_selection import train_test_split

from scgraphbench.errors import ScgbError

SPLITS = ("train", "val", "test")


def check_expression(adata: ad.AnnData, source: str) -> None:
    """Reject expression matrices that would silently poison every model."""
    X = adata.X
    data = X.data if sp.issparse(X) else np.asarray(X)
    if not np.issubdtype(data.dtype, np.number):
        raise ScgbError(f"expression matrix has non-numeric dtype {data.dtype}", path=source,
                        field="X", fix="store counts as integers or floats")
    if data.size and not np.isfinite(data).all():
        n_bad = int((~np.isfinite(data)).sum())
        raise ScgbError(f"expression matrix holds {n_bad} NaN/inf values", path=source,
                        field="X", fix="remove or impute the non-finite entries before preparing")
    if adata.n_obs == 0 or adata.n_vars == 0:
        raise ScgbError(f"empty matrix ({adata.n_obs} cells x {adata.n_vars} genes)", path=source,
                        field="X", fix="check the file is the expression matrix you meant")
    if adata.var_names.has_duplicates:
        dups = adata.var_names[adata.var_names.duplicated()].unique()[:5].tolist()
        raise ScgbError(f"duplicate gene names, e.g. {dups}", path=source, field="var_names",
                        fix="set 'make_var_names_unique: true' for this dataset in the config")


def require_column(adata: ad.AnnData, column: str, source: str) -> pd.Series:
    if column not in adata.obs.columns:
        raise ScgbError(
            f"label column '{column}' not found; obs has: {list(adata.obs.columns)}",
            path=source, field="label_key", fix="set label_key to one of the columns listed")
    return adata.obs[column]


def stratified_split(labels: pd.Series, val_fraction: float, test_fraction: float,
                     seed: int) -> np.ndarray:
    """Stratified train/val/test assignment; classes too small to stratify go to train."""
    labels = pd.Series(np.asarray(labels, dtype=str))
    split = np.full(len(labels), "train", dtype=object)
    idx = np.arange(len(labels))
    counts = labels.value_counts()
    strat_ok = labels.map(counts).to_numpy() >= 3
    pool = idx[strat_ok]
    if test_fraction > 0:
        rest, test = train_test_split(pool, test_size=test_fraction, random_state=seed,
                                      stratify=labels.iloc[pool])
        split[test] = "test"
        pool = rest
    if val_fraction > 0:
        frac = val_fraction / (1.0 - test_fraction)
        _, val = train_test_split(pool, test_size=frac, random_state=seed + 1,
                                  stratify=labels.iloc[pool])
        split[val] = "val"
    return split


def normalise_log1p(adata: ad.AnnData) -> None:
    """Counts in layers['counts'], log1p(CP10k) in X."""
    adata.layers["counts"] = adata.X.copy()
    sc.pp.normalize_total(adata, target_sum=1e4)
    sc.pp.log1p(adata)
    adata.uns.pop("log1p", None)


def select_hvgs_on_train(adata: ad.AnnData, n_top_genes: int | None) -> ad.AnnData:
    """Pick HVGs from training cells only, then subset every cell to them."""
    if not n_top_genes or n_top_genes >= adata.n_vars:
        return adata
    train = adata[adata.obs["split"] == "train"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hvg = sc.pp.highly_variable_genes(train, n_top_genes=n_top_genes, flavor="seurat",
                                          inplace=False)
    keep = hvg["highly_variable"].to_numpy()
    return adata[:, keep].copy()


def finalise(adata: ad.AnnData, *, dataset: str, task: str, seed: int,
             n_top_genes: int | None, source: str) -> ad.AnnData:
    """Common tail of every preparation: types, gene names, provenance, split checks."""
    for name in SPLITS:
        if task == "annotation" and not (adata.obs["split"] == name).any():
            raise ScgbError(f"split '{name}' is empty after preparation", path=source,
                            field="split", fix="use more cells or smaller val/test fractions")
    adata.obs["split"] = pd.Categorical(adata.obs["split"].astype(str), categories=list(SPLITS))
    if "label" in adata.obs:
        adata.obs["label"] = adata.obs["label"].astype(str).astype("category")
        train_labels = set(adata.obs.loc[adata.obs["split"] == "train", "label"])
        unseen = sorted(set(adata.obs["label"]) - train_labels)
        if unseen:
            raise ScgbError(f"labels {unseen} occur outside the training split only", path=source,
                            field="label", fix="drop those cells or change the split")
    adata.X = (adata.X.toarray() if sp.issparse(adata.X) else np.asarray(adata.X)).astype(np.float32)
    adata.var["gene_name"] = adata.var_names.astype(str)
    adata.uns["scgraphbench"] = {"dataset": dataset, "task": task, "seed": int(seed),
                                 "n_top_genes": int(n_top_genes or adata.n_vars),
                                 "source": str(source)}
    return adata


def prepare_annotation(adata: ad.AnnData, *, dataset: str, label_key: str, seed: int,
                       n_top_genes: int | None, val_fraction: float, test_fraction: float,
                       source: str, split: np.ndarray | None = None) -> ad.AnnData:
    """Counts AnnData + label column -> prepared annotation AnnData."""
    check_expression(adata, source)
    labels = require_column(adata, label_key, source)
    if labels.isna().any():
        adata = adata[~labels.isna().to_numpy()].copy()
        labels = adata.obs[label_key]
    adata = ad.AnnData(X=adata.X.copy(), obs=pd.DataFrame(index=adata.obs_names.astype(str)),
                       var=pd.DataFrame(index=adata.var_names.astype(str)))
    adata.obs["label"] = np.asarray(labels, dtype=str)
    adata.obs["split"] = (split if split is not None
                          else stratified_split(adata.obs["label"], val_fraction, test_fraction, seed))
    normalise_log1p(adata)
    adata = select_hvgs_on_train(adata, n_top_genes)
    return finalise(adata, dataset=dataset, task="annotation", seed=seed,
                    n_top_genes=n_top_genes, source=source)
