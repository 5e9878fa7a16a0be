"""Turn any source AnnData into the canonical prepared layout.

The prepared h5ad is the only thing later stages read:

- ``X``: log1p(normalize_total(counts, 1e4)), float32, restricted to the selected genes
- ``layers['counts']``: raw counts
- ``var_names``: unique gene symbols (``var['gene_name']`` too)
- ``obs['split']``: one of ``train``, ``val``, ``test``
- annotation: ``obs['label']`` (categorical)
- perturbation: ``obs['condition']`` (GEARS style ``A+ctrl``, ``A+B``, ``ctrl``),
  ``obs['control']`` (bool), ``uns['top20_de']`` ({condition: [gene, ...]}),
  ``uns['subgroup']`` ({test condition: subgroup})
- ``uns['scgraphbench']``: provenance (dataset, task, seed, n_top_genes, source, input_scale)

Sources that hold only log-normalised values (the scGPT annotation files, GEARS'
perturb_processed.h5ad) are detected by their values (non-integer, non-negative, max < 50):
their ``X`` is kept as given and ``layers['counts']`` holds ``expm1(X)``, which is what is left
of the counts; ``uns['scgraphbench']['input_scale']`` says ``log1p`` then. Negative values
(scaled data) are rejected.

HVGs are selected on training cells only so that nothing from the test split
leaks into the features.
"""

from __future__ import annotations

import logging
import warnings

import anndata as ad
import numpy as np
import pandas as pd
import scanpy as sc
import scipy.sparse as sp

from scgraphbench.data import gears
from scgraphbench.errors import ScgbError

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
# GEARS' per-file DE caches, recomputed on the kept genes as uns['top20_de'].
GEARS_DE_CACHES = (
    "rank_genes_groups_cov_all",
    "top_non_dropout_de_20",
    "top_non_zero_de_20",
    "non_zeros_gene_idx",
    "non_dropout_gene_idx",
    "rank_genes_groups",
)
# log1p of CP10k tops out near 9.2 and of CP-median near 12; counts are integers.
LOG_MAX = 50.0


def _values(X) -> np.ndarray:
    return X.data if sp.issparse(X) else np.asarray(X)


def check_expression(adata: ad.AnnData, source: str) -> None:
    """Reject expression matrices that would silently poison every model."""
    data = _values(adata.X)
    if not np.issubdtype(data.dtype, np.number) or np.issubdtype(data.dtype, np.bool_):
        raise ScgbError(
            f"expression matrix has non-numeric dtype {data.dtype}",
            path=source,
            field="X",
            fix="store counts as integers or floats",
        )
    if data.size and not np.isfinite(data).all():
        n_bad = int((~np.isfinite(data)).sum())
        raise ScgbError(
            f"expression matrix holds {n_bad} NaN/inf values",
            path=source,
            field="X",
            fix="remove or impute the non-finite entries before preparing",
        )
    if adata.n_obs == 0 or adata.n_vars == 0:
        raise ScgbError(
            f"empty matrix ({adata.n_obs} cells x {adata.n_vars} genes)",
            path=source,
            field="X",
            fix="check the file is the expression matrix you meant",
        )
    if adata.var_names.has_duplicates:
        dups = adata.var_names[adata.var_names.duplicated()].unique()[:5].tolist()
        raise ScgbError(
            f"duplicate gene names, e.g. {dups}",
            path=source,
            field="var_names",
            fix="set 'make_var_names_unique: true' for this dataset in the config",
        )


def input_scale(X, source: str) -> str:
    """'counts' (non-negative integers) or 'log1p' (non-negative, non-integer, small)."""
    data = _values(X).ravel()
    if data.size == 0:
        return "counts"
    if data.min() < 0:
        raise ScgbError(
            f"expression has negative values (min {data.min():.3g}): it looks scaled or centred",
            path=source,
            field="X",
            fix="give raw counts (or log-normalised values) in X, or name the layer holding "
            "counts with 'counts_layer'",
        )
    step = 1 << 22  # chunks keep the check's memory small on 10^8-value matrices
    if all(
        np.array_equal(c, np.round(c))
        for c in (data[i : i + step] for i in range(0, data.size, step))
    ):
        return "counts"
    if data.max() <= LOG_MAX:
        return "log1p"
    raise ScgbError(
        f"expression is non-integer with values up to {data.max():.3g}: neither counts nor "
        "log-normalised",
        path=source,
        field="X",
        fix="give raw counts, or log1p of normalised counts, or set 'counts_layer'",
    )


def require_column(
    adata: ad.AnnData, column: str, source: str, field: str = "label_key"
) -> pd.Series:
    if column not in adata.obs.columns:
        raise ScgbError(
            f"column '{column}' not found; obs has: {list(adata.obs.columns)}",
            path=source,
            field=field,
            fix=f"set {field} to one of the columns listed",
        )
    return adata.obs[column]


ON_BAD_LABEL = ("drop", "error")
SMALL_CLASSES = ("error", "drop", "train")


def check_choice(option: str, value: str, choices: tuple[str, ...], source: str) -> None:
    """A dataset option that takes one of a few words."""
    if value not in choices:
        raise ScgbError(
            f"{option} must be one of {list(choices)}, not '{value}'",
            path=source,
            field=option,
            fix=f"use {' or '.join(choices)}",
        )


def missing_labels(labels: pd.Series) -> np.ndarray:
    """True where a cell has no label: NaN/None, an empty or a whitespace-only string."""
    labels = pd.Series(labels)
    nan = labels.isna().to_numpy()
    blank = labels.astype(object).map(lambda v: isinstance(v, str) and not v.strip()).to_numpy()
    return nan | blank.astype(bool)


def labelled_cells(
    labels: pd.Series, source: str, on_bad_label: str = "drop", field: str = "label_key"
) -> np.ndarray:
    """Mask of the cells that have a label; the others are dropped with a count in the log,
    or, with ``on_bad_label='error'``, rejected."""
    check_choice("on_bad_label", on_bad_label, ON_BAD_LABEL, source)
    labels = pd.Series(labels)
    missing = missing_labels(labels)
    if not missing.any():
        return ~missing
    n_nan = int(labels.isna().sum())
    n_blank = int(missing.sum()) - n_nan
    what = (f"{int(missing.sum())} of {_n(len(labels), 'cell')} have no label ({n_nan} missing/NaN, "
            f"{n_blank} empty or whitespace-only)")
    if on_bad_label == "error":
        examples = [str(i) for i in labels.index[missing][:3]]
        raise ScgbError(
            f"{what}, e.g. cells {examples}",
            path=source,
            field=field,
            fix="fill in their labels, or set on_bad_label: drop for this dataset to drop "
            "those cells (the count is logged)",
        )
    log.warning("%s: %s; dropped them (on_bad_label: error stops instead)", source, what)
    return ~missing


def _n(count: int, noun: str) -> str:
    """'1 cell', '2 cells', '1 class', '3 classes'."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}{'es' if noun == 'class' else 's'}"


def min_cells_per_class(val_fraction: float, test_fraction: float) -> int:
    """Cells a class needs to have one in train and in each split with a fraction > 0."""
    return 1 + (val_fraction > 0) + (test_fraction > 0)


def _split_names(val_fraction: float, test_fraction: float) -> str:
    names = ["train"] + ["val"] * (val_fraction > 0) + ["test"] * (test_fraction > 0)
    return ", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else names[0]


def check_classes(
    labels: pd.Series,
    val_fraction: float,
    test_fraction: float,
    source: str,
    small_classes: str = "error",
    field: str = "label_key",
) -> np.ndarray:
    """Check the labels can be split as asked, before any split is drawn; returns the mask
    of the cells kept.

    A class needs :func:`min_cells_per_class` cells (3 with both fractions > 0) so that
    :func:`stratified_split` can put one in each split. Smaller classes are an error, or
    with ``small_classes='drop'`` dropped (logged), or with ``'train'`` kept in training only
    (never evaluated). At least two classes must reach every split, else there is nothing to
    classify.
    """
    check_choice("small_classes", small_classes, SMALL_CLASSES, source)
    for name, frac in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= frac < 1.0:
            raise ScgbError(f"{name} = {frac} is not in [0, 1)", path=source, field=name,
                            fix="use e.g. 0.15")
    if val_fraction + test_fraction >= 1.0:
        raise ScgbError(
            f"val_fraction + test_fraction = {val_fraction + test_fraction:g} leaves no "
            "training cells",
            path=source,
            field="val_fraction",
            fix="make their sum smaller than 1, e.g. 0.15 each",
        )
    labels = pd.Series(np.asarray(labels, dtype=str))
    counts = labels.value_counts()
    need = min_cells_per_class(val_fraction, test_fraction)
    splits = _split_names(val_fraction, test_fraction)
    if len(counts) < 2:
        only = (f"'{counts.index[0]}' ({_n(int(counts.iloc[0]), 'cell')})" if len(counts)
                else "none")
        raise ScgbError(
            f"only {_n(len(counts), 'class')}: {only}; cell-type annotation needs at least two",
            path=source,
            field=field,
            fix="check label_key names the cell-type column, or add cells of other types",
        )
    small = counts[counts < need]
    large = counts[counts >= need]
    sizes = ", ".join(f"'{k}': {_n(int(v), 'cell')}" for k, v in small.items())
    rule = (f"with val_fraction {val_fraction:g} and test_fraction {test_fraction:g} a class "
            f"needs at least {need} cells, one each in {splits}")
    if len(large) < 2:
        raise ScgbError(
            f"{len(large)} of {_n(len(counts), 'class')} have enough cells to appear in "
            f"every split ({rule}); too small: {sizes}",
            path=source,
            field=field,
            fix="use a dataset with more cells per class, or smaller val/test fractions "
            "(0 skips that split)",
        )
    keep = np.ones(len(labels), dtype=bool)
    if len(small):
        if small_classes == "error":
            raise ScgbError(
                f"{_n(len(small), 'class')} too small to appear in every split: {sizes} "
                f"({rule})",
                path=source,
                field=field,
                fix="set small_classes: drop for this dataset (drop those cells) or "
                "small_classes: train (keep them in training only, never evaluated), or merge "
                "them into a larger class",
            )
        if small_classes == "drop":
            keep = ~labels.isin(small.index).to_numpy()
            log.warning("%s: dropped %s of %s too small to split: %s", source,
                        _n(int((~keep).sum()), "cell"), _n(len(small), "class"), sizes)
        else:
            log.warning("%s: %s too small to split kept in train only (never evaluated): %s",
                        source, _n(len(small), "class"), sizes)
    return keep


def stratified_split(
    labels: pd.Series, val_fraction: float, test_fraction: float, seed: int
) -> np.ndarray:
    """Stratified train/val/test assignment, a pure function of its arguments.

    Each class of n cells gets round(n * test_fraction) test and round(n * val_fraction)
    val cells, at least one each where the fraction is > 0 and at most what leaves one
    train cell, drawn at random (``seed``). Classes with fewer than
    :func:`min_cells_per_class` cells go wholly to train; :func:`check_classes` decides
    beforehand whether that is allowed.
    """
    labels = np.asarray(labels, dtype=str)
    split = np.full(len(labels), "train", dtype=object)
    need = min_cells_per_class(val_fraction, test_fraction)
    rng = np.random.default_rng(seed)
    for label in sorted(set(labels)):
        cells = rng.permutation(np.flatnonzero(labels == label))
        n = len(cells)
        if n < need:
            continue
        n_test = min(max(round(n * test_fraction), 1), n - need + 1) if test_fraction > 0 else 0
        n_val = (min(max(round(n * val_fraction), 1), n - n_test - 1)
                 if val_fraction > 0 else 0)
        split[cells[:n_test]] = "test"
        split[cells[n_test : n_test + n_val]] = "val"
    return split


def normalise_log1p(
    adata: ad.AnnData, counts_layer: str | None = None, source: str = "input"
) -> str:
    """Counts in layers['counts'], log1p(CP10k) in X; returns the input scale it found.

    Log-normalised input keeps its X; its counts layer is expm1(X) (see the module doc).
    """
    if counts_layer is not None:
        if counts_layer not in adata.layers:
            raise ScgbError(
                f"layer '{counts_layer}' not found; layers: {list(adata.layers)}",
                path=source,
                field="counts_layer",
                fix="name an existing layer or remove counts_layer",
            )
        adata.X = adata.layers[counts_layer].copy()
    scale = input_scale(adata.X, source)
    if scale == "counts":
        adata.layers["counts"] = adata.X.copy()
        sc.pp.normalize_total(adata, target_sum=1e4)
        sc.pp.log1p(adata)
        adata.uns.pop("log1p", None)
    else:
        adata.layers["counts"] = adata.X.expm1() if sp.issparse(adata.X) else np.expm1(adata.X)
        log.warning(
            "%s: X is log-normalised (no raw counts); kept as X, counts layer = expm1(X)", source
        )
    return scale


def select_hvgs_on_train(
    adata: ad.AnnData, n_top_genes: int | None, keep: list[str] | None = None
) -> ad.AnnData:
    """Pick HVGs from training cells only, then subset every cell to them (plus ``keep``)."""
    if not n_top_genes:
        return adata
    if n_top_genes >= adata.n_vars:
        log.warning("n_top_genes = %d but the data has %d genes: keeping all %d (set "
                    "n_top_genes: null to say so)", n_top_genes, adata.n_vars, adata.n_vars)
        return adata
    train = adata[adata.obs["split"] == "train"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hvg = sc.pp.highly_variable_genes(
            train, n_top_genes=n_top_genes, flavor="seurat", inplace=False
        )
    mask = hvg["highly_variable"].to_numpy().copy()
    if keep:
        mask |= adata.var_names.isin(keep)
    return adata[:, mask].copy()


def finalise(
    adata: ad.AnnData,
    *,
    dataset: str,
    task: str,
    seed: int,
    n_top_genes: int | None,
    source: str,
    extra: dict | None = None,
) -> ad.AnnData:
    """Common tail of every preparation: types, gene names, provenance, split checks."""
    required = SPLITS if task == "annotation" else ("train", "test")
    for name in required:
        if not (adata.obs["split"] == name).any():
            raise ScgbError(
                f"split '{name}' is empty after preparation",
                path=source,
                field="split",
                fix="use more cells or smaller val/test fractions",
            )
    adata.obs["split"] = pd.Categorical(adata.obs["split"].astype(str), categories=list(SPLITS))
    if "label" in adata.obs:
        adata.obs["label"] = adata.obs["label"].astype(str).astype("category")
        train_labels = set(adata.obs.loc[adata.obs["split"] == "train", "label"])
        if len(train_labels) < 2:
            counts = adata.obs["label"].value_counts()
            sizes = ", ".join(f"'{k}': {_n(int(v), 'cell')}" for k, v in counts.items())
            raise ScgbError(
                f"only {_n(len(train_labels), 'class')} in the training split ({sizes}); "
                "cell-type annotation needs at least two",
                path=source,
                field="label",
                fix="check label_key names the cell-type column, or add cells of other types",
            )
        unseen = sorted(set(adata.obs["label"]) - train_labels)
        if unseen:
            raise ScgbError(
                f"labels {unseen} occur outside the training split only",
                path=source,
                field="label",
                fix="drop those cells or change the split",
            )
    adata.X = (adata.X.toarray() if sp.issparse(adata.X) else np.asarray(adata.X)).astype(
        np.float32
    )
    adata.var["gene_name"] = adata.var_names.astype(str)
    adata.uns["scgraphbench"] = {
        "dataset": dataset,
        "task": task,
        "seed": int(seed),
        "n_top_genes": int(n_top_genes or adata.n_vars),
        "source": str(source),
        **(extra or {}),
    }
    return adata


def _fresh(adata: ad.AnnData, counts_layer: str | None) -> ad.AnnData:
    """A bare copy (X, layers needed, no obs/var clutter) so prepared files stay small."""
    out = ad.AnnData(
        X=adata.X.copy(),
        obs=pd.DataFrame(index=adata.obs_names.astype(str)),
        var=pd.DataFrame(index=adata.var_names.astype(str)),
    )
    if counts_layer is not None and counts_layer in adata.layers:
        out.layers[counts_layer] = adata.layers[counts_layer].copy()
    return out


def drop_labels_unseen_in_train(
    labels: pd.Series, split: np.ndarray, source: str
) -> tuple[np.ndarray, dict[str, int]]:
    """Mask of cells to keep: val/test cells whose label has no training cell are dropped
    (no classifier can predict a class it never saw); returns the mask and the counts."""
    labels = np.asarray(labels, dtype=str)
    train_labels = set(labels[split == "train"])
    drop = ~np.isin(labels, list(train_labels))
    counts = pd.Series(labels[drop]).value_counts().to_dict()
    if counts:
        log.warning(
            "%s: dropped %d val/test cells whose label never occurs in training: %s",
            source,
            int(drop.sum()),
            counts,
        )
    return ~drop, {str(k): int(v) for k, v in counts.items()}


def prepare_annotation(
    adata: ad.AnnData,
    *,
    dataset: str,
    label_key: str,
    seed: int,
    n_top_genes: int | None,
    val_fraction: float,
    test_fraction: float,
    source: str,
    split: np.ndarray | None = None,
    counts_layer: str | None = None,
    on_bad_label: str = "drop",
    small_classes: str = "error",
) -> ad.AnnData:
    """Counts (or log-normalised) AnnData + label column -> prepared annotation AnnData.

    ``split``: a given per-cell split (values train/val/test), e.g. the scGPT train/test
    files; val/test cells whose label never occurs in train are then dropped and counted in
    ``uns['scgraphbench']['dropped_unseen_labels']``. Without it the split is stratified
    (:func:`stratified_split`) after :func:`check_classes` (``small_classes``).
    ``on_bad_label``: cells with a NaN, empty or whitespace-only label are dropped and
    counted (``drop``) or rejected (``error``).
    """
    check_expression(adata, source)
    labels = require_column(adata, label_key, source)
    keep = labelled_cells(labels, source, on_bad_label)
    if split is not None:
        split = np.asarray(split, dtype=object)
    if not keep.all():
        adata, labels = adata[keep], labels[keep]
        split = split[keep] if split is not None else None
    if split is None:
        keep = check_classes(labels, val_fraction, test_fraction, source, small_classes)
        if not keep.all():
            adata, labels = adata[keep], labels[keep]
    dropped: dict[str, int] = {}
    if split is not None:
        bad = sorted(set(split) - set(SPLITS))
        if bad:
            raise ScgbError(
                f"split values {bad} are not train/val/test",
                path=source,
                field="split",
                fix="use only train, val and test",
            )
        mask, dropped = drop_labels_unseen_in_train(labels, split, source)
        if not mask.all():
            adata, labels, split = adata[mask], labels[mask], split[mask]
    out = _fresh(adata, counts_layer)
    out.obs["label"] = np.asarray(labels, dtype=str)
    out.obs["split"] = (
        split
        if split is not None
        else stratified_split(out.obs["label"], val_fraction, test_fraction, seed)
    )
    scale = normalise_log1p(out, counts_layer, source)
    out = select_hvgs_on_train(out, n_top_genes)
    return finalise(
        out,
        dataset=dataset,
        task="annotation",
        seed=seed,
        n_top_genes=n_top_genes,
        source=source,
        extra={"input_scale": scale, "dropped_unseen_labels": dropped},
    )


def prepare_gears(
    adata: ad.AnnData,
    *,
    dataset: str,
    seed: int,
    n_top_genes: int | None,
    train_fraction: float = 0.75,
    source: str,
    on_missing_gene: str = "drop",
    exclude_conditions: list[str] | None = None,
    counts_layer: str | None = "counts",
) -> ad.AnnData:
    """GEARS ``perturb_processed.h5ad`` layout -> prepared perturbation AnnData.

    Input: obs ``condition`` ('A+ctrl', 'A+B', 'ctrl'), optional ``cell_type``/``control``;
    var ``gene_name`` (used as var_names when present); X counts or log-normalised.

    - A perturbation naming a gene absent from the expression matrix cannot be given to a
      model as an input: with ``on_missing_gene='drop'`` (default) its cells are dropped and
      counted (logged, ``uns['scgraphbench']['dropped_conditions']``); ``'error'`` raises.
      ``exclude_conditions`` drops named conditions first (e.g. GEARS' non-GO perturbations).
    - Split: GEARS 'simulation' split by perturbation (see :mod:`scgraphbench.data.gears`);
      control cells, which GEARS keeps all in train, are split at random (seeded) in the
      proportions of the perturbed cells, so val/test have held-out control cells too.
    - Genes: HVGs on training cells, plus every perturbed gene (models need them as inputs).
    - ``uns['top20_de']``: GEARS' top-20 DE genes per condition, on the kept genes, all cells.
    - ``counts_layer``: a layer of raw counts, used when present (the synthetic generator
      writes one; GEARS' files have none, so their log-normalised X is kept).
    - Other ``uns`` entries of the source (e.g. a generator's ground truth) are carried over;
      GEARS' own DE caches are not (``top20_de`` replaces them).
    """
    check_choice("on_missing_gene", on_missing_gene, ("drop", "error"), source)
    check_expression(adata, source)
    conditions = require_column(adata, "condition", source, field="condition").astype(str)
    var_names = (
        adata.var["gene_name"].astype(str).to_numpy()
        if "gene_name" in adata.var
        else adata.var_names.astype(str).to_numpy()
    )
    if pd.Index(var_names).has_duplicates:
        dups = pd.Index(var_names)[pd.Index(var_names).duplicated()].unique()[:5].tolist()
        raise ScgbError(
            f"duplicate gene names in var['gene_name'], e.g. {dups}",
            path=source,
            field="var.gene_name",
            fix="make the gene names unique",
        )
    if not (conditions == gears.CTRL).any():
        raise ScgbError(
            "no control cells (condition 'ctrl')",
            path=source,
            field="condition",
            fix="label unperturbed cells 'ctrl' as GEARS does",
        )

    keep = np.ones(adata.n_obs, dtype=bool)
    dropped: dict[str, int] = {}
    if exclude_conditions:
        excl = conditions.isin(exclude_conditions).to_numpy()
        dropped.update(conditions[excl].value_counts().to_dict())
        keep &= ~excl
    present = set(var_names)
    missing = {
        c: [g for g in gears.genes_of(c) if g not in present] for c in pd.unique(conditions[keep])
    }
    missing = {c: genes for c, genes in missing.items() if genes}
    if missing:
        if on_missing_gene == "error":
            raise ScgbError(
                f"{len(missing)} conditions perturb genes absent from the data, e.g. "
                f"{dict(list(missing.items())[:3])}",
                path=source,
                field="condition",
                fix="set on_missing_gene: drop, or use a file whose genes include them",
            )
        bad = conditions.isin(list(missing)).to_numpy() & keep
        dropped.update(conditions[bad].value_counts().to_dict())
        keep &= ~bad
        log.warning(
            "%s: dropped %d conditions (%d cells) perturbing genes absent from the data: %s",
            source,
            len(missing),
            int(bad.sum()),
            sorted(missing)[:10],
        )
    if not keep.all():
        adata, conditions = adata[keep], conditions[keep]
    if not (conditions != gears.CTRL).any():
        raise ScgbError(
            "no perturbed cells left",
            path=source,
            field="condition",
            fix="check the condition column and on_missing_gene/exclude_conditions",
        )

    out = ad.AnnData(
        X=adata.X.copy(),
        obs=pd.DataFrame(index=adata.obs_names.astype(str)),
        var=pd.DataFrame(index=var_names),
    )
    use_layer = counts_layer if counts_layer in adata.layers else None
    if use_layer:
        out.layers[use_layer] = adata.layers[use_layer].copy()
    out.obs["condition"] = conditions.to_numpy()
    out.obs["control"] = (conditions == gears.CTRL).to_numpy()
    if "cell_type" in adata.obs:
        out.obs["cell_type"] = adata.obs["cell_type"].astype(str).to_numpy()

    cond_split, subgroup = gears.gears_split(out.obs["condition"], train_fraction, seed)
    split = out.obs["condition"].map(cond_split).to_numpy(dtype=object)
    split = _split_controls(split, out.obs["control"].to_numpy(), seed)
    out.obs["split"] = split

    scale = normalise_log1p(out, use_layer, source)
    perturbed = sorted({g for c in cond_split for g in gears.genes_of(c)})
    out = select_hvgs_on_train(out, n_top_genes, keep=perturbed)
    out.obs["condition"] = out.obs["condition"].astype("category")
    for key, value in adata.uns.items():
        if key not in GEARS_DE_CACHES:
            out.uns[key] = value
    out.uns["top20_de"] = gears.top_de_genes(out, 20)
    out.uns["subgroup"] = subgroup
    return finalise(
        out,
        dataset=dataset,
        task="perturbation",
        seed=seed,
        n_top_genes=n_top_genes,
        source=source,
        extra={
            "input_scale": scale,
            "dropped_conditions": {str(k): int(v) for k, v in dropped.items()},
            "split_rule": "gears_simulation",
            "train_fraction": train_fraction,
        },
    )


def _split_controls(split: np.ndarray, control: np.ndarray, seed: int) -> np.ndarray:
    """Assign control cells to train/val/test in the proportions of the perturbed cells."""
    split = split.copy()
    pert_split = split[~control]
    shares = np.array([(pert_split == s).mean() for s in SPLITS])
    ctrl_idx = np.flatnonzero(control)
    rng = np.random.default_rng(seed)
    order = rng.permutation(ctrl_idx)
    cuts = np.round(np.cumsum(shares) * len(order)).astype(int)
    for name, part in zip(SPLITS, np.split(order, cuts[:-1]), strict=True):
        split[part] = name
    return split
