"""Every annotation source kind, from files in the real formats written here, and bad inputs."""

from __future__ import annotations

import gzip
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.io
import scipy.sparse as sp

from scgraphbench.data.datasets import lookup, needs_download, prepare_dataset
from scgraphbench.data.prepare import prepare_annotation
from scgraphbench.errors import ScgbError

MS_LABEL = "Factor Value[inferred cell type - authors labels]"


def counts_with_types(
    n_cells: int, n_genes: int, types: list[str], seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Poisson counts where each type lifts its own block of five marker genes."""
    rng = np.random.default_rng(seed)
    labels = np.array(types)[rng.integers(0, len(types), n_cells)]
    counts = rng.poisson(1.0, size=(n_cells, n_genes)).astype(np.float32)
    for k, t in enumerate(types):
        counts[labels == t, 5 * k : 5 * k + 5] += rng.poisson(8.0, ((labels == t).sum(), 5))
    return counts, labels


def scgpt_file(
    path: Path,
    label_key: str,
    types: list[str],
    n_cells: int,
    seed: int,
    log_normalised: bool = True,
    ensembl: bool = False,
    with_gene_name: bool = True,
) -> Path:
    """An h5ad as scGPT ships them: 3,000-HVG-style gene set, log-normalised X (data_is_raw
    False in scGPT's tutorial), the label in its published column."""
    counts, labels = counts_with_types(n_cells, 50, types, seed)
    X = np.log1p(counts / counts.sum(1, keepdims=True) * 1e4) if log_normalised else counts
    symbols = [f"GENE{i}" for i in range(50)]
    var = pd.DataFrame(index=[f"ENSG{i:011d}" for i in range(50)] if ensembl else symbols)
    if with_gene_name:
        var["gene_name"] = symbols
    obs = pd.DataFrame(
        {label_key: labels, "batch": "b0"}, index=[f"c{seed}_{i}" for i in range(n_cells)]
    )
    ad.AnnData(X=sp.csr_matrix(X.astype(np.float32)), obs=obs, var=var).write_h5ad(path)
    return path


def test_scgpt_pair_split_and_labels(tmp_path):
    types = ["alpha", "beta", "delta", "ductal"]
    train = scgpt_file(tmp_path / "demo_train.h5ad", "Celltype", types, 400, 0)
    test = scgpt_file(tmp_path / "demo_test.h5ad", "Celltype", [*types, "schwann"], 150, 1)
    out = prepare_dataset(
        "pancreas",
        {"source": "pancreas", "train_path": str(train), "test_path": str(test), "n_top_genes": 30},
    )
    obs = out.obs
    from_train = obs_names_from(obs, "train-")
    assert set(obs.loc[from_train, "split"]) == {"train", "val"}
    assert (obs.loc[~from_train, "split"] == "test").all()
    # 25% of the train file is validation, stratified per label
    val_share = (
        (obs.loc[from_train, "split"] == "val")
        .groupby(obs.loc[from_train, "label"], observed=True)
        .mean()
    )
    assert val_share.between(0.2, 0.3).all()
    # the test file unchanged except the label train never saw (dropped, counted)
    meta = out.uns["scgraphbench"]
    n_schwann = int((ad.read_h5ad(test).obs["Celltype"] == "schwann").sum())
    assert meta["dropped_unseen_labels"] == {"schwann": n_schwann}
    assert (~from_train).sum() == 150 - n_schwann
    assert meta["input_scale"] == "log1p" and out.n_vars == 30
    assert set(out.obs["label"].cat.categories) == set(types)


def obs_names_from(obs: pd.DataFrame, prefix: str) -> np.ndarray:
    return obs.index.str.startswith(prefix)


def test_ms_pair_uses_gene_name_symbols_even_when_test_lacks_them(tmp_path):
    types = ["astrocyte", "microglia", "oligodendrocyte"]
    train = scgpt_file(tmp_path / "c_data.h5ad", MS_LABEL, types, 300, 0, ensembl=True)
    test = scgpt_file(
        tmp_path / "filtered_ms_adata.h5ad",
        MS_LABEL,
        types,
        120,
        1,
        ensembl=True,
        with_gene_name=False,
    )
    out = prepare_dataset(
        "ms",
        {"source": "ms", "train_path": str(train), "test_path": str(test), "n_top_genes": None},
    )
    assert list(out.var_names[:3]) == ["GENE0", "GENE1", "GENE2"]
    assert (out.obs["split"] == "test").sum() == 120


def test_myeloid_missing_label_column_lists_columns(tmp_path):
    train = scgpt_file(tmp_path / "reference_adata.h5ad", "celltype", ["a", "b"], 100, 0)
    test = scgpt_file(tmp_path / "query_adata.h5ad", "celltype", ["a", "b"], 50, 1)
    with pytest.raises(ScgbError) as e:
        prepare_dataset(
            "myeloid", {"source": "myeloid", "train_path": str(train), "test_path": str(test)}
        )
    msg = str(e.value)
    assert "'cell_type' not found" in msg and "['celltype', 'batch']" in msg
    assert "reference_adata.h5ad" in msg


def write_10x_v3(folder: Path, counts: np.ndarray, barcodes: list[str], genes: list[str]) -> None:
    """A Cell Ranger 3 filtered_feature_bc_matrix folder (gzipped mtx/features/barcodes)."""
    folder.mkdir(parents=True)
    with gzip.open(folder / "matrix.mtx.gz", "wb") as fh:
        scipy.io.mmwrite(fh, sp.coo_matrix(counts.T.astype(np.int64)))
    with gzip.open(folder / "features.tsv.gz", "wt") as fh:
        fh.writelines(f"ENSG{i:011d}\t{g}\tGene Expression\n" for i, g in enumerate(genes))
    with gzip.open(folder / "barcodes.tsv.gz", "wt") as fh:
        fh.writelines(f"{b}\n" for b in barcodes)


def test_10x_folder_with_labels_csv(tmp_path):
    counts, labels = counts_with_types(300, 40, ["T", "B", "NK"], seed=3)
    barcodes = [f"AAAC{i:06d}-1" for i in range(300)]
    genes = [f"G{i}" for i in range(39)] + ["G0"]  # a repeated symbol, as 10x files have
    write_10x_v3(tmp_path / "outs" / "filtered_feature_bc_matrix", counts, barcodes, genes)
    pd.DataFrame({"barcode": barcodes[:280], "cell_type": labels[:280]}).to_csv(
        tmp_path / "labels.csv", index=False
    )
    out = prepare_dataset(
        "mine",
        {
            "source": "10x",
            "path": str(tmp_path / "outs"),
            "labels": str(tmp_path / "labels.csv"),
            "label_key": "cell_type",
            "n_top_genes": 20,
        },
    )
    assert out.n_obs == 280 and out.n_vars == 20
    assert out.var_names.is_unique
    assert set(out.obs["split"]) == {"train", "val", "test"}
    assert out.uns["scgraphbench"]["input_scale"] == "counts"
    # raw counts kept, X = log1p(CP10k) of all genes' counts before HVG selection
    raw = out.layers["counts"]
    assert np.array_equal(
        raw.toarray() if sp.issparse(raw) else raw,
        np.round(raw.toarray() if sp.issparse(raw) else raw),
    )


def test_10x_without_labels_is_a_clear_error(tmp_path):
    counts, _ = counts_with_types(30, 10, ["x"])
    write_10x_v3(tmp_path / "m", counts, [f"B{i}" for i in range(30)], [f"G{i}" for i in range(10)])
    with pytest.raises(ScgbError, match="no cell labels"):
        prepare_dataset("mine", {"source": "10x", "path": str(tmp_path / "m")})


def test_h5ad_bring_your_own_with_counts_layer(tmp_path):
    counts, labels = counts_with_types(240, 30, ["a", "b", "c"], seed=4)
    adata = ad.AnnData(
        X=np.zeros_like(counts) - 1.0,  # a scaled X, counts in a layer
        obs=pd.DataFrame({"ct": labels}, index=[f"c{i}" for i in range(240)]),
        var=pd.DataFrame(index=[f"G{i}" for i in range(30)]),
    )
    adata.layers["raw"] = counts
    adata.write_h5ad(tmp_path / "mine.h5ad")
    spec = {"source": "h5ad", "path": str(tmp_path / "mine.h5ad"), "label_key": "ct"}
    with pytest.raises(ScgbError, match="negative values"):
        prepare_dataset("mine", spec)
    out = prepare_dataset("mine", {**spec, "counts_layer": "raw"})
    np.testing.assert_allclose(np.expm1(out.X).sum(1), 1e4, rtol=1e-3)


def annotation_adata(X: np.ndarray, var_names: list[str] | None = None) -> ad.AnnData:
    n, g = X.shape
    return ad.AnnData(
        X=X,
        obs=pd.DataFrame(
            {"ct": np.array(["a", "b", "c"] * n)[:n]}, index=[f"c{i}" for i in range(n)]
        ),
        var=pd.DataFrame(index=var_names or [f"G{i}" for i in range(g)]),
    )


ANN = dict(
    dataset="d",
    label_key="ct",
    seed=0,
    n_top_genes=None,
    val_fraction=0.2,
    test_fraction=0.2,
    source="bad.h5ad",
)


def test_bad_inputs():
    good = np.random.default_rng(0).poisson(2.0, (60, 8)).astype(np.float32)
    nan = good.copy()
    nan[3, 2] = np.nan
    with pytest.raises(ScgbError, match="1 NaN/inf"):
        prepare_annotation(annotation_adata(nan), **ANN)
    inf = good.copy()
    inf[0, 0] = np.inf
    with pytest.raises(ScgbError, match="NaN/inf"):
        prepare_annotation(annotation_adata(inf), **ANN)
    with pytest.raises(ScgbError, match="non-numeric"):
        prepare_annotation(annotation_adata(good.astype(bool)), **ANN)
    with pytest.raises(ScgbError, match=r"duplicate gene names, e.g. \['G0'\]"):
        prepare_annotation(
            annotation_adata(good, ["G0", "G0"] + [f"G{i}" for i in range(2, 8)]), **ANN
        )
    with pytest.raises(ScgbError, match=r"'nope' not found; obs has: \['ct'\]"):
        prepare_annotation(annotation_adata(good), **{**ANN, "label_key": "nope"})
    with pytest.raises(ScgbError, match="split 'val' is empty"):
        prepare_annotation(annotation_adata(good), **{**ANN, "val_fraction": 0.0})
    with pytest.raises(ScgbError, match="neither counts nor log-normalised"):
        prepare_annotation(annotation_adata(good * 100.5), **ANN)


def test_non_numeric_h5ad_expression(tmp_path):
    """A string matrix cannot even be an AnnData X; an object-typed one is rejected."""
    adata = annotation_adata(np.zeros((30, 4), dtype=np.float32))
    adata.X = np.full((30, 4), "x", dtype=object)
    with pytest.raises(ScgbError, match="non-numeric dtype object"):
        prepare_annotation(adata, **ANN)


def test_unknown_source_and_dataset_name():
    with pytest.raises(ScgbError) as e:
        prepare_dataset("x", {"source": "pbmc4k"})
    assert "unknown source 'pbmc4k'" in str(e.value) and "norman" in str(e.value)
    with pytest.raises(ScgbError, match=r"'nrman' is not in the config; configured: \['norman'\]"):
        lookup({"norman": {"source": "norman"}}, "nrman")
    with pytest.raises(ScgbError, match="is a perturbation dataset"):
        prepare_dataset(
            "norman", {"source": "norman", "task": "annotation", "path": "/nonexistent.h5ad"}
        )
    with pytest.raises(ScgbError, match="needs 'path'"):
        prepare_dataset("g", {"source": "gears"})


def test_offline_override_needs_no_download():
    assert needs_download({"source": "norman"})
    assert not needs_download({"source": "norman", "path": "/data/perturb_processed.h5ad"})
    assert not needs_download({"source": "ms", "train_path": "a.h5ad", "test_path": "b.h5ad"})
    assert not needs_download({"source": "scanpy_pbmc68k_reduced"})


def test_annotation_hvgs_use_training_cells_only(tmp_path):
    types = ["alpha", "beta", "delta"]
    train = scgpt_file(tmp_path / "train.h5ad", "Celltype", types, 300, 0, log_normalised=False)
    test = scgpt_file(tmp_path / "test.h5ad", "Celltype", types, 100, 1, log_normalised=False)
    spec = {
        "source": "h5ad",
        "path": str(train),
        "test_path": str(test),
        "label_key": "Celltype",
        "n_top_genes": 15,
    }
    base = prepare_dataset("p", spec)
    shuffled = ad.read_h5ad(test)
    X = shuffled.X.toarray()
    shuffled.X = sp.csr_matrix(X[:, ::-1] * 7)  # scramble every test cell's genes
    shuffled.write_h5ad(tmp_path / "test2.h5ad")
    again = prepare_dataset("p", {**spec, "test_path": str(tmp_path / "test2.h5ad")})
    assert list(again.var_names) == list(base.var_names)
    assert not np.allclose(
        again.X[again.obs["split"] == "test"], base.X[base.obs["split"] == "test"]
    )


def test_n_top_genes_above_the_gene_count_keeps_all_and_says_so(caplog):
    from scgraphbench.data.prepare import select_hvgs_on_train

    adata = ad.AnnData(np.ones((4, 6), dtype=np.float32),
                       obs=pd.DataFrame({"split": ["train"] * 4}, index=list("abcd")))
    with caplog.at_level("WARNING"):
        out = select_hvgs_on_train(adata, 3000)
    assert out.n_vars == 6
    assert "n_top_genes = 3000 but the data has 6 genes: keeping all 6" in caplog.text
