"""Load a prepared dataset into per-split arrays; few-shot subsampling of training cells."""

from __future__ import annotations

from dataclasses import dataclass, field

import anndata as ad
import numpy as np

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
        raise ScgbError("prepared dataset not found", path=path,
                        fix="run the prepare_dataset rule (or `scgraphbench prepare`) first") from None
    for key in ("split",):
        if key not in adata.obs:
            raise ScgbError(f"obs['{key}'] missing: not a prepared dataset", path=path, field=key,
                            fix="prepare it with `scgraphbench prepare`")
    return adata


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


def annotation_data(adata: ad.AnnData, path: str, train_fraction: float = 1.0,
                    seed: int = 0) -> AnnotationData:
    if "label" not in adata.obs:
        raise ScgbError("obs['label'] missing: this dataset is not an annotation dataset",
                        path=path, field="label", fix="use a perturbation model/task for it")
    classes = sorted(adata.obs.loc[adata.obs["split"] == "train", "label"].astype(str).unique())
    index = {c: i for i, c in enumerate(classes)}
    X, y, ids = {}, {}, {}
    for split in ("train", "val", "test"):
        mask = (adata.obs["split"] == split).to_numpy()
        if not mask.any():
            raise ScgbError(f"the '{split}' split is empty", path=path, field="split",
                            fix="re-prepare with non-zero val/test fractions")
        labels = adata.obs.loc[mask, "label"].astype(str)
        unknown = sorted(set(labels) - set(index))
        if unknown:
            raise ScgbError(f"labels {unknown} appear in '{split}' but never in train", path=path,
                            field="label", fix="re-prepare so every label has training cells")
        X[split] = np.asarray(adata.X[mask], dtype=np.float32)
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


