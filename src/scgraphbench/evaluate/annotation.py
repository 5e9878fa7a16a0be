"""Cell-type annotation metrics, as pure functions of label and embedding arrays.

- :func:`annotation_scores`: accuracy and macro-F1 (scikit-learn).
- :func:`per_class_scores`: precision, recall, F1 and support per class.
- :func:`confusion_table`: the confusion matrix as a labelled table (rows: truth).
- :func:`embedding_scores`: Leiden clusters of the cell embeddings vs the labels (ARI, NMI)
  and the silhouette of the embeddings by label.
"""

from __future__ import annotations

import warnings

import anndata as ad
import numpy as np
import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    adjusted_rand_score,
    confusion_matrix,
    f1_score,
    normalized_mutual_info_score,
    precision_recall_fscore_support,
    silhouette_score,
)


def annotation_scores(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> dict[str, float]:
    """Accuracy and macro-F1.

    Macro-F1 averages over the classes present in ``y_true`` or ``y_pred`` (scikit-learn's
    default), so a training class absent from a small test split does not count as F1 = 0
    unless it is predicted.
    """
    labels = np.arange(n_classes)
    present = np.union1d(np.unique(y_true), np.unique(y_pred))
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(
            f1_score(
                y_true,
                y_pred,
                labels=labels[np.isin(labels, present)],
                average="macro",
                zero_division=0,
            )
        ),
    }


def per_class_scores(
    y_true: np.ndarray, y_pred: np.ndarray, classes: list[str]
) -> dict[str, dict[str, float]]:
    """{class: {precision, recall, f1, support}} over every training class (0 when undefined)."""
    p, r, f, s = precision_recall_fscore_support(
        y_true, y_pred, labels=np.arange(len(classes)), zero_division=0
    )
    return {
        c: {
            "precision": float(p[i]),
            "recall": float(r[i]),
            "f1": float(f[i]),
            "support": int(s[i]),
        }
        for i, c in enumerate(classes)
    }


def confusion_table(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str]) -> pd.DataFrame:
    """Counts with one row per true class and one column per predicted class."""
    cm = confusion_matrix(y_true, y_pred, labels=np.arange(len(classes)))
    return pd.DataFrame(cm, index=pd.Index(classes, name="true"), columns=classes)


def leiden_clusters(
    embedding: np.ndarray, *, n_neighbors: int = 15, resolution: float = 1.0, seed: int = 0
) -> np.ndarray:
    """Leiden clusters (scanpy, igraph flavour) of a kNN graph on ``embedding``.

    The kNN graph uses scikit-learn's exact neighbours and scanpy's Gaussian-kernel
    connectivities: the default UMAP connectivities JIT-compile numba code in every fresh
    process (5-30 s), which would dominate small runs; the kernel is the same for every family.
    """
    import scanpy as sc
    from sklearn.neighbors import KNeighborsTransformer

    n = len(embedding)
    k = max(2, min(n_neighbors, n - 1))
    adata = ad.AnnData(np.asarray(embedding, dtype=np.float32))
    sc.pp.neighbors(
        adata,
        use_rep="X",
        n_neighbors=k,
        method="gauss",
        transformer=KNeighborsTransformer(n_neighbors=k),
    )
    sc.tl.leiden(
        adata,
        resolution=resolution,
        flavor="igraph",
        n_iterations=2,
        directed=False,
        random_state=seed,
    )
    return adata.obs["leiden"].astype(int).to_numpy()


def embedding_scores(
    embedding: np.ndarray,
    labels: np.ndarray,
    *,
    n_neighbors: int = 15,
    resolution: float = 1.0,
    seed: int = 0,
) -> dict[str, float]:
    """How well the cell embeddings separate the labels.

    ``leiden_ari``/``leiden_nmi``: agreement of Leiden clusters with the labels;
    ``silhouette_label``: mean silhouette (Euclidean, in [-1, 1]) with the labels as clusters,
    NaN when it is undefined (fewer than 2 labels, or every cell its own label).
    """
    embedding = np.asarray(embedding, dtype=np.float64)
    labels = np.asarray(labels)
    if len(embedding) < 3 or not np.isfinite(embedding).all():
        nan = float("nan")
        return {
            "leiden_ari": nan,
            "leiden_nmi": nan,
            "leiden_n_clusters": 0,
            "silhouette_label": nan,
        }
    clusters = leiden_clusters(embedding, n_neighbors=n_neighbors, resolution=resolution, seed=seed)
    n_labels = len(np.unique(labels))
    sil = float("nan")
    if 2 <= n_labels <= len(labels) - 1:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sil = float(silhouette_score(embedding, labels))
    return {
        "leiden_ari": float(adjusted_rand_score(labels, clusters)),
        "leiden_nmi": float(normalized_mutual_info_score(labels, clusters)),
        "leiden_n_clusters": int(len(np.unique(clusters))),
        "silhouette_label": sil,
    }
