"""Load a prepared dataset into per-split arrays; few-shot subsampling of training cells."""

from __future__ import annotations

from dataclasses import dataclass, field

import anndata as ad
import numpy as np
import scipy.sparse as sp

from scgraphbench.data.gears import CTRL, gears_subgroup, genes_of
from scgraphbench.errors import ScgbError


@dataclass
class AnnotationData:
    X: dict[str, np.ndarray]  # split -> (cells, genes) float32
    y: dict[str, np.ndarray]  # split -> int64 class ids
    classes: list[str]
    genes: list[str]
    cell_ids: dict[str, np.ndarray] = field(default_factory=dict)


def load_prepared(path: str) -> ad.AnnData:
    try:
        adata = ad.read_h5ad(path)
    except FileNotFoundError:
        raise ScgbError(
            "prepared dataset not found",
            path=path,
            fix="run the prepare_dataset rule (or `scgraphbench prepare`) first",
        ) from None
    except OSError as e:
        raise ScgbError(
            f"cannot read the prepared dataset ({e})",
            path=path,
            fix="re-run `scgraphbench prepare` to rewrite it",
        ) from None
    for key in ("split",):
        if key not in adata.obs:
            raise ScgbError(
                f"obs['{key}'] missing: not a prepared dataset",
                path=path,
                field=key,
                fix="prepare it with `scgraphbench prepare`",
            )
    return adata


def dataset_task(adata: ad.AnnData, path: str) -> str:
    """The task a prepared dataset was made for: ``uns['scgraphbench']['task']``."""
    task = (adata.uns.get("scgraphbench") or {}).get("task")
    if task is None:  # older files: infer from the obs columns the contract requires
        task = "perturbation" if "condition" in adata.obs else "annotation"
    if task not in ("annotation", "perturbation"):
        raise ScgbError(
            f"unknown task '{task}'",
            path=path,
            field="uns.scgraphbench.task",
            fix="re-prepare the dataset with task annotation or perturbation",
        )
    return str(task)


def dense(X: np.ndarray | sp.spmatrix) -> np.ndarray:
    return np.asarray(X.toarray() if sp.issparse(X) else X, dtype=np.float32)


def stratified_fraction(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Indices of a per-label stratified subsample (at least one cell per label)."""
    if fraction >= 1.0:
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    keep = []
    for lab in np.unique(labels):
        idx = np.flatnonzero(labels == lab)
        n = max(1, int(round(fraction * len(idx))))
        keep.append(rng.choice(idx, size=n, replace=False))
    return np.sort(np.concatenate(keep))


def annotation_data(
    adata: ad.AnnData, path: str, train_fraction: float = 1.0, seed: int = 0
) -> AnnotationData:
    if "label" not in adata.obs:
        raise ScgbError(
            "obs['label'] missing: this dataset is not an annotation dataset",
            path=path,
            field="label",
            fix="use a perturbation model/task for it",
        )
    classes = sorted(adata.obs.loc[adata.obs["split"] == "train", "label"].astype(str).unique())
    index = {c: i for i, c in enumerate(classes)}
    X, y, ids = {}, {}, {}
    for split in ("train", "val", "test"):
        mask = (adata.obs["split"] == split).to_numpy()
        if not mask.any():
            raise ScgbError(
                f"the '{split}' split is empty",
                path=path,
                field="split",
                fix="re-prepare with non-zero val/test fractions",
            )
        labels = adata.obs.loc[mask, "label"].astype(str)
        unknown = sorted(set(labels) - set(index))
        if unknown:
            raise ScgbError(
                f"labels {unknown} appear in '{split}' but never in train",
                path=path,
                field="label",
                fix="re-prepare so every label has training cells",
            )
        X[split] = dense(adata.X[mask])
        y[split] = labels.map(index).to_numpy(dtype=np.int64)
        ids[split] = adata.obs_names[mask].to_numpy()
    keep = stratified_fraction(y["train"], train_fraction, seed)
    X["train"], y["train"], ids["train"] = X["train"][keep], y["train"][keep], ids["train"][keep]
    return AnnotationData(X=X, y=y, classes=classes, genes=list(adata.var_names), cell_ids=ids)


def class_weights(y: np.ndarray, n_classes: int) -> np.ndarray:
    """'balanced' weights as scikit-learn defines them: n / (n_classes * count)."""
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    w = np.where(counts > 0, len(y) / (n_classes * np.maximum(counts, 1)), 0.0)
    return w.astype(np.float32)


@dataclass
class PerturbationData:
    """A prepared perturbation dataset as arrays.

    Targets per split: every perturbed cell of the split, plus (train only) the control cells,
    whose input is the cell itself (as GEARS trains on ``ctrl``). Inputs of perturbed targets
    are control cells drawn from ``ctrl_pool[split]``: train controls for training, every
    control cell for validation and test (GEARS draws from all of them).
    """

    genes: list[str]
    X: dict[str, np.ndarray]  # split -> (cells, genes) target expression
    cond_id: dict[str, np.ndarray]  # split -> (cells,) index into ``conditions``
    self_input: dict[
        str, np.ndarray
    ]  # split -> (cells,) row in ctrl_pool if the input is itself, else -1
    ctrl_pool: dict[str, np.ndarray]  # split -> (controls, genes)
    conditions: list[str]
    flags: np.ndarray  # (n_conditions, genes) uint8 perturbation flags
    ctrl_mean: np.ndarray  # (genes,) mean of every control cell (GEARS deeper_analysis)
    de_idx: dict[str, np.ndarray]  # condition -> indices of its top-20 DE genes
    subgroup: dict[str, str]  # condition -> GEARS subgroup
    # genes whose single perturbation has cells in the train split (GEARS' "seen" genes
    # include singles its split moved to val)
    singles_trained: set[str] = field(default_factory=set)
    cell_ids: dict[str, np.ndarray] = field(default_factory=dict)

    def condition_names(self, split: str) -> np.ndarray:
        return np.asarray(self.conditions, dtype=object)[self.cond_id[split]]


def _gene_index(adata: ad.AnnData) -> dict[str, int]:
    index = {g: i for i, g in enumerate(adata.var_names.astype(str))}
    if "gene_name" in adata.var:  # also accept symbols when var_names are ids
        for i, g in enumerate(adata.var["gene_name"].astype(str)):
            index.setdefault(g, i)
    return index


def perturbation_data(
    adata: ad.AnnData, path: str, train_fraction: float = 1.0, seed: int = 0
) -> PerturbationData:
    """Check a prepared perturbation dataset and cut it into arrays (see
    :class:`PerturbationData`). Raises ScgbError naming the field for every inconsistency."""
    if "condition" not in adata.obs:
        raise ScgbError(
            "obs['condition'] missing: this is not a perturbation dataset",
            path=path,
            field="condition",
            fix="use an annotation model/task for it, or prepare it with task: perturbation",
        )
    condition = adata.obs["condition"].astype(str).to_numpy()
    split = adata.obs["split"].astype(str).to_numpy()
    control = (
        adata.obs["control"].astype(bool).to_numpy()
        if "control" in adata.obs
        else condition == CTRL
    )
    gene_index = _gene_index(adata)
    genes = list(adata.var_names.astype(str))
    conditions = sorted(set(condition[~control]))
    for c in conditions:
        for g in genes_of(c):
            if g not in gene_index:
                raise ScgbError(
                    f"condition '{c}' perturbs gene '{g}', which is not among the dataset's "
                    f"{len(genes)} genes",
                    path=path,
                    field="condition",
                    fix="re-prepare keeping every perturbed gene among the selected genes, or "
                    "drop that condition",
                )
        if not genes_of(c):
            raise ScgbError(
                f"condition '{c}' names no gene but its cells are not controls",
                path=path,
                field="control",
                fix="mark them control, or name the gene",
            )
    if not control.any():
        raise ScgbError(
            "no control cells",
            path=path,
            field="control",
            fix="keep the 'ctrl' cells when preparing; they are the model's input",
        )
    train_ctrl = control & (split == "train")
    if not train_ctrl.any():
        raise ScgbError(
            "no control cells in the train split",
            path=path,
            field="split",
            fix="re-prepare so that control cells are in train (GEARS puts all there)",
        )
    all_conditions = [CTRL, *conditions]
    cond_index = {c: i for i, c in enumerate(all_conditions)}
    flags = np.zeros((len(all_conditions), len(genes)), dtype=np.uint8)
    for c in conditions:
        flags[cond_index[c], [gene_index[g] for g in genes_of(c)]] = 1

    Xall = adata.X
    X, cond_id, self_input, pool, ids = {}, {}, {}, {}, {}
    train_rows = np.flatnonzero((split == "train") & (~control | train_ctrl))
    keep = stratified_fraction(condition[train_rows], train_fraction, seed)
    train_rows = train_rows[keep]
    ctrl_rows = np.flatnonzero(train_ctrl)
    pool["train"] = dense(Xall[ctrl_rows])
    pool_all = dense(Xall[np.flatnonzero(control)])
    ctrl_pos = {r: i for i, r in enumerate(ctrl_rows)}
    for s in ("train", "val", "test"):
        rows = train_rows if s == "train" else np.flatnonzero((split == s) & ~control)
        if len(rows) == 0:
            what = "cells" if s == "train" else "perturbed cells"
            raise ScgbError(
                f"the '{s}' split has no {what}",
                path=path,
                field="split",
                fix="re-prepare with perturbations assigned to train, val and test",
            )
        X[s] = dense(Xall[rows])
        cond_id[s] = np.asarray(
            [cond_index[CTRL] if control[r] else cond_index[condition[r]] for r in rows],
            dtype=np.int64,
        )
        self_input[s] = np.asarray(
            [ctrl_pos.get(r, -1) if s == "train" and control[r] else -1 for r in rows],
            dtype=np.int64,
        )
        ids[s] = adata.obs_names[rows].to_numpy()
        if s != "train":
            pool[s] = pool_all

    de_all = adata.uns.get("top20_de")
    evaluated = sorted({all_conditions[i] for s in ("val", "test") for i in set(cond_id[s])})
    if de_all is None:
        raise ScgbError(
            "uns['top20_de'] missing: no DE genes to score on",
            path=path,
            field="top20_de",
            fix="prepare the dataset with `scgraphbench prepare` "
            "(task: perturbation computes them)",
        )
    de_idx = {}
    for c in evaluated:
        if c not in de_all:
            raise ScgbError(
                f"no DE genes for condition '{c}'",
                path=path,
                field="top20_de",
                fix="re-prepare: every val/test condition needs its top-20 DE genes",
            )
        missing = [g for g in np.asarray(de_all[c]).astype(str) if g not in gene_index]
        if missing:
            raise ScgbError(
                f"DE genes {missing[:5]} of condition '{c}' are not in the dataset",
                path=path,
                field="top20_de",
                fix="re-prepare the dataset",
            )
        de_idx[c] = np.asarray([gene_index[g] for g in np.asarray(de_all[c]).astype(str)])

    given = dict(adata.uns.get("subgroup") or {})
    seen = {g for c in set(condition[(split == "train") & ~control]) for g in genes_of(c)}
    subgroup = {c: str(given.get(c, gears_subgroup(c, seen))) for c in evaluated}
    return PerturbationData(
        genes=genes,
        X=X,
        cond_id=cond_id,
        self_input=self_input,
        ctrl_pool=pool,
        conditions=all_conditions,
        flags=flags,
        ctrl_mean=pool_all.astype(np.float64).mean(0),
        de_idx=de_idx,
        subgroup=subgroup,
        cell_ids=ids,
        singles_trained={genes_of(c)[0] for c in set(condition[train_rows])
                         if c != CTRL and len(genes_of(c)) == 1},
    )
