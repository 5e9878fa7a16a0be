"""Preparation on the real public files of ../shared/data (skipped when it is absent)."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from scgraphbench.data.datasets import prepare_dataset
from scgraphbench.data.pbmc3k import TUTORIAL_MARKERS
from scgraphbench.data.readers import find_10x, read_10x
from scgraphbench.errors import ScgbError

pytestmark = pytest.mark.shared

V3 = "10x_v3_filtered_feature_bc_matrix_subset"
V2 = "10x_v2_filtered_gene_bc_matrices_hg19_chr21"


def depth_labels(counts: ad.AnnData) -> pd.Series:
    """Three labels from library-size tertiles: real barcodes, a label the data carries."""
    depth = np.asarray(counts.X.sum(1)).ravel()
    return pd.Series(
        pd.qcut(depth, 3, labels=["low", "mid", "high"]).astype(str), index=counts.obs_names
    )


def test_10x_v3_folder_and_h5_prepare_the_same(shared_data, tmp_path):
    folder = shared_data / V3 / "filtered_feature_bc_matrix"
    h5 = shared_data / V3 / "filtered_feature_bc_matrix.h5"
    counts = read_10x(folder)
    assert counts.shape == (1107, 507)
    depth_labels(counts).rename("depth").to_csv(tmp_path / "labels.csv")
    spec = {
        "source": "10x",
        "labels": str(tmp_path / "labels.csv"),
        "label_key": "depth",
        "n_top_genes": 100,
    }
    a = prepare_dataset("v3", {**spec, "path": str(folder)})
    b = prepare_dataset("v3", {**spec, "path": str(h5)})
    assert a.shape == b.shape == (1107, 100)
    assert list(a.var_names) == list(b.var_names)
    np.testing.assert_allclose(a.X, b.X)
    assert set(a.obs["split"]) == {"train", "val", "test"}


def test_10x_v2_nested_genome_folder_and_h5(shared_data):
    root = shared_data / V2 / "filtered_gene_bc_matrices"
    assert find_10x(root).name == "hg19_chr21"
    mtx = read_10x(root)
    h5 = read_10x(shared_data / V2 / "filtered_gene_bc_matrices_h5.h5")
    assert mtx.shape == h5.shape == (12, 343)
    assert mtx.X.sum() == h5.X.sum()


def test_pbmc68k_reduced_scaled_file_is_rejected_builtin_works(shared_data):
    path = shared_data / "scanpy_pbmc68k_reduced" / "10x_pbmc68k_reduced.h5ad"
    with pytest.raises(ScgbError, match="negative values") as e:
        prepare_dataset("p", {"source": "h5ad", "path": str(path), "label_key": "bulk_labels"})
    assert "10x_pbmc68k_reduced.h5ad" in str(e.value)
    out = prepare_dataset("p", {"source": "scanpy_pbmc68k_reduced", "n_top_genes": 200})
    assert out.shape == (700, 200) and out.obs["label"].nunique() == 10


@pytest.mark.slow  # ~15 s of numba compilation in the tutorial's sc.pp.neighbors
def test_pbmc3k_tutorial_annotation_on_seurat_subset(shared_data, tmp_path):
    """Seurat's pbmc_small cells (real PBMC3k counts) through the pbmc3k registry entry with a
    local h5ad (as scanpy's pbmc3k_raw.h5ad); QC and graph sizes relaxed for 80 cells x 230
    genes. Each assigned type must be the one whose tutorial markers its cells express most."""
    raw = pd.read_csv(shared_data / "pbmc3k_subset_seurat" / "pbmc_raw.txt", sep="\t")
    counts = ad.AnnData(
        X=sp.csr_matrix(raw.T.to_numpy(np.float32)),
        obs=pd.DataFrame(index=raw.columns),
        var=pd.DataFrame(index=raw.index),
    )
    counts.write_h5ad(tmp_path / "pbmc3k_raw.h5ad")
    out = prepare_dataset(
        "pbmc3k",
        {
            "source": "pbmc3k",
            "path": str(tmp_path / "pbmc3k_raw.h5ad"),
            "n_top_genes": None,
            "val_fraction": 0.2,
            "test_fraction": 0.2,
            "annotate_params": {
                "min_genes": 10,
                "min_cells": 1,
                "n_pcs": 20,
                "hvg": {"n_top_genes": 100, "flavor": "seurat"},
            },
        },
    )
    report = out.uns["scgraphbench"]["annotation"]
    assert report["cells_after_qc"] == 80 and out.n_obs == 80
    labels = out.obs["label"].astype(str)
    assert labels.nunique() >= 4
    assert set(labels) <= set(TUTORIAL_MARKERS)
    logn = pd.DataFrame(out.X, index=out.obs_names, columns=out.var_names)
    means = logn.groupby(labels.to_numpy()).mean()
    for cell_type in labels.unique():
        markers = list(TUTORIAL_MARKERS[cell_type])
        # the type's own markers peak in its cells more than in any other assigned type
        assert means[markers].mean(axis=1).idxmax() == cell_type, cell_type
