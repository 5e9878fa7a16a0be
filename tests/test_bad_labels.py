"""Bad labels and too-small datasets stop in preparation with a message that names the class
and its cells, before any model or library sees them (docs/bad_inputs.md)."""

from __future__ import annotations

import json
import logging

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from scgraphbench.cli import main
from scgraphbench.data.prepare import (
    check_classes,
    min_cells_per_class,
    missing_labels,
    prepare_annotation,
    stratified_split,
)
from scgraphbench.errors import ScgbError


def counts_adata(labels: list, n_genes: int = 30, seed: int = 0) -> ad.AnnData:
    """Poisson counts for cells with the given labels (any objects, NaN included)."""
    rng = np.random.default_rng(seed)
    n = len(labels)
    obs = pd.DataFrame({"cell_type": pd.Series(labels, dtype=object).to_numpy()},
                       index=[f"c{i}" for i in range(n)])
    var = pd.DataFrame(index=[f"G{i}" for i in range(n_genes)])
    return ad.AnnData(X=rng.poisson(2.0, (n, n_genes)).astype(np.float32), obs=obs, var=var)


def prepare(adata: ad.AnnData, **kw) -> ad.AnnData:
    kw = {"val_fraction": 0.15, "test_fraction": 0.15, **kw}
    return prepare_annotation(adata, dataset="t", label_key="cell_type", seed=0,
                              n_top_genes=None, source="cells.h5ad", **kw)


def prepare_cli(tmp_path, adata: ad.AnnData, capsys, **spec) -> tuple[int, str]:
    """The prepare stage as Snakemake runs it: exit code and what the user sees."""
    path = tmp_path / "cells.h5ad"
    adata.write_h5ad(path)
    spec = {"source": "h5ad", "path": str(path), "label_key": "cell_type", **spec}
    rc = main(["prepare", "--dataset", "mine", "--spec", json.dumps(spec),
               "--out", str(tmp_path / "prepared.h5ad")])
    return rc, capsys.readouterr().err


GOOD = ["B"] * 30 + ["T"] * 30 + ["NK"] * 20


def test_empty_whitespace_and_nan_labels_are_dropped_and_counted(caplog):
    labels = GOOD + ["", "   ", "\t", np.nan, None]
    with caplog.at_level(logging.WARNING):
        out = prepare(counts_adata(labels))
    assert out.n_obs == len(GOOD)
    assert sorted(out.obs["label"].cat.categories) == ["B", "NK", "T"]
    assert "5 of 85 cells have no label (2 missing/NaN, 3 empty or whitespace-only); dropped them" \
        in caplog.text


def test_on_bad_label_error_rejects_them(tmp_path, capsys):
    rc, err = prepare_cli(tmp_path, counts_adata(GOOD + ["", " "]), capsys, on_bad_label="error")
    assert rc == 2
    assert "2 of 82 cells have no label (0 missing/NaN, 2 empty or whitespace-only)" in err
    assert "e.g. cells ['c80', 'c81']" in err and "on_bad_label: drop" in err
    assert not (tmp_path / "prepared.h5ad").exists()


def test_on_bad_label_must_be_known():
    with pytest.raises(ScgbError, match="on_bad_label must be one of \\['drop', 'error'\\], not 'keep'"):
        prepare(counts_adata(GOOD), on_bad_label="keep")


def test_missing_labels_keeps_real_names():
    labels = pd.Series(["B", "", " ", "nan", None, np.nan, "T cell", 3], dtype=object)
    assert missing_labels(labels).tolist() == [False, True, True, False, True, True, False,
                                                False]


def test_one_cell_type_is_an_error_not_accuracy_one(tmp_path, capsys):
    rc, err = prepare_cli(tmp_path, counts_adata(["B"] * 50), capsys)
    assert rc == 2
    assert "only 1 class: 'B' (50 cells); cell-type annotation needs at least two" in err


def test_one_cell_type_left_after_dropping_bad_labels():
    with pytest.raises(ScgbError, match="only 1 class: 'B' \\(40 cells\\)"):
        prepare(counts_adata(["B"] * 40 + [""] * 40))


@pytest.mark.parametrize(("labels", "message"), [
    # was: scikit-learn's "ValueError: With n_samples=0, test_size=0.15 ..." traceback
    (["B", "T", "NK", "B", "T"], "0 of 3 classes have enough cells to appear in every split"),
    # was: prepared, the two T cells silently in train only
    (["B", "B", "B", "T", "T"], "1 of 2 classes have enough cells to appear in every split"),
])
def test_five_cells_stop_before_any_split(tmp_path, capsys, labels, message):
    rc, err = prepare_cli(tmp_path, counts_adata(labels), capsys)
    assert rc == 2
    assert message in err
    assert "a class needs at least 3 cells, one each in train, val and test" in err
    assert "too small: " in err and "'T': 2 cells" in err


def test_small_class_is_an_error_naming_it_and_its_cells():
    with pytest.raises(ScgbError) as e:
        prepare(counts_adata(GOOD + ["pDC", "pDC"]))
    msg = str(e.value)
    assert "1 class too small to appear in every split: 'pDC': 2 cells" in msg
    assert "small_classes: drop" in msg and "small_classes: train" in msg


def test_small_classes_drop_and_train(caplog):
    adata = counts_adata(GOOD + ["pDC", "pDC"])
    with caplog.at_level(logging.WARNING):
        dropped = prepare(adata, small_classes="drop")
    assert "pDC" not in set(dropped.obs["label"]) and dropped.n_obs == len(GOOD)
    assert "dropped 2 cells of 1 class too small to split: 'pDC': 2 cells" in caplog.text
    kept = prepare(adata, small_classes="train")
    pdc = kept.obs.loc[kept.obs["label"] == "pDC", "split"]
    assert len(pdc) == 2 and (pdc == "train").all()


def test_small_class_rule_follows_the_fractions():
    labels = pd.Series(GOOD + ["pDC", "pDC"])
    assert min_cells_per_class(0.15, 0.15) == 3
    assert min_cells_per_class(0.25, 0.0) == 2  # a given test file: train + val only
    assert min_cells_per_class(0.0, 0.0) == 1
    assert check_classes(labels, 0.25, 0.0, "x").all()
    with pytest.raises(ScgbError, match="leaves no training cells"):
        check_classes(labels, 0.5, 0.5, "x")
    with pytest.raises(ScgbError, match="small_classes must be one of"):
        check_classes(labels, 0.1, 0.1, "x", small_classes="ignore")


@pytest.mark.parametrize("sizes", [(3, 3), (3, 4, 5), (7, 100), (40, 41, 2000), (11,) * 9])
@pytest.mark.parametrize("fractions", [(0.15, 0.15), (0.1, 0.3), (0.45, 0.45), (0.25, 0.0),
                                       (0.0, 0.2)])
def test_every_class_reaches_every_requested_split(sizes, fractions):
    val, test = fractions
    labels = np.repeat([f"k{i}" for i in range(len(sizes))], sizes)
    split = stratified_split(labels, val, test, seed=3)
    for k, n in zip(np.unique(labels), sizes, strict=False):
        got = pd.Series(split[labels == k]).value_counts()
        assert got.get("train", 0) >= 1
        assert (got.get("val", 0) >= 1) == (val > 0)
        assert (got.get("test", 0) >= 1) == (test > 0)
        if n >= 100:  # large classes get the asked shares (rounded)
            assert got.get("test", 0) == round(n * test)
            assert got.get("val", 0) == round(n * val)
    assert (split == stratified_split(labels, val, test, seed=3)).all()  # pure
    assert (split != stratified_split(labels, val, test, seed=4)).any()  # seeded


def test_given_split_one_class_in_train_is_an_error():
    adata = counts_adata(["B"] * 30 + ["T"] * 10)  # T only in the given test file
    split = np.array(["train"] * 20 + ["val"] * 5 + ["test"] * 15, dtype=object)
    with pytest.raises(ScgbError, match="only 1 class in the training split \\('B': 30 cells\\)"):
        prepare(adata, split=split)
