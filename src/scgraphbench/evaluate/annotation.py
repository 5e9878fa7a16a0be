"""Cell-type annotation metrics, as pure functions of label and embedding arrays.

- :func:`annotation_scores`: accuracy and macro-F1 (scikit-learn).
- :func:`per_class_scores`: precision, recall, F1 and support per class.
- :func:`confusion_table`: the confusion matrix as a labelled table (rows: truth).
- :func:`embedding_scores`: Leiden clusters of the cell embeddings vs the labels (ARI, NMI)
  and the label silhouette (ASW) of the embeddings, as scib-metrics defines it.
"""

from __future__ import annotations

import random
import warnings

import numpy as np
import pandas as pd
import scipy.sparse as sp
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


class _IgraphRandom:
    """igraph's random source drawn from ``np.random.RandomState(seed)``: the adapter
    scanpy's ``sc.tl.leiden`` installs, so that a seed gives scanpy's clusters."""

    def __init__(self, seed: int) -> None:
        self._rng = np.random.RandomState(seed)

    def getrandbits(self, k: int) -> int:
        return self._rng.tomaxint() & ((1 << k) - 1)

    def randint(self, a: int, b: int) -> int:
        return self._rng.randint(a, b + 1)

    def random(self) -> float:
        return self._rng.random_sample()

    def gauss(self, mu: float, sigma: float) -> float:
        return self._rng.normal(mu, sigma)


def gauss_knn_connectivities(embedding: np.ndarray, n_neighbors: int) -> sp.csr_matrix:
    """scanpy's ``sc.pp.neighbors(method="gauss", transformer=KNeighborsTransformer(k))``
    connectivities, without scanpy.

    Exact Euclidean neighbours (scikit-learn; each row holds the cell and its k nearest).
    The width of cell i is sigma_i = the median distance to its k - 1 nearest other cells;
    every stored pair gets w_ij = sqrt(2 sigma_i sigma_j / (sigma_i^2 + sigma_j^2)) *
    exp(-d_ij^2 / (sigma_i^2 + sigma_j^2)) (Haghverdi et al. 2016; 1 on the diagonal), and
    w_ji = w_ij wherever j is among the k - 1 nearest of i but i not among those of j.
    """
    from sklearn.neighbors import KNeighborsTransformer

    n = len(embedding)
    d_sq = KNeighborsTransformer(n_neighbors=n_neighbors).fit_transform(embedding).power(2)
    rows = np.repeat(np.arange(n), np.diff(d_sq.indptr))
    per_row = d_sq.indices.reshape(n, -1)[:, :n_neighbors]  # the cell first, by distance
    if not (per_row[:, 0] == np.arange(n)).any():  # a search that left the cell out
        per_row = np.hstack([np.arange(n)[:, None], per_row])[:, :n_neighbors]
        dist_sq = np.hstack([np.zeros((n, 1)), d_sq.data.reshape(n, -1)])[:, 1:n_neighbors]
    else:
        dist_sq = d_sq.data.reshape(n, -1)[:, 1:n_neighbors]
    nearest = per_row[:, 1:]
    sigma_sq = np.median(dist_sq, axis=1)
    sigma = np.sqrt(sigma_sq)
    cols = d_sq.indices
    den = sigma_sq[rows] + sigma_sq[cols]
    w = np.sqrt(2 * sigma[rows] * sigma[cols] / den) * np.exp(-d_sq.data / den)
    W = sp.csr_matrix((w, cols, d_sq.indptr), shape=(n, n)).tolil()
    # symmetrise the pairs that only one side counts among its k - 1 nearest
    is_near = sp.csr_matrix(
        (np.ones(nearest.size, dtype=bool), (np.repeat(np.arange(n), nearest.shape[1]),
                                              nearest.ravel())),
        shape=(n, n),
    )
    one_sided = is_near > is_near.T
    i, j = one_sided.nonzero()
    values = np.asarray(W[i, j].todense()).ravel() if len(i) else np.zeros(0)
    W[j, i] = values
    return W.tocsr()


def leiden_clusters(
    embedding: np.ndarray, *, n_neighbors: int = 15, resolution: float = 1.0, seed: int = 0
) -> np.ndarray:
    """Leiden clusters (igraph's, modularity, 2 iterations) of a Gaussian-kernel kNN graph
    on ``embedding``: scanpy's ``sc.pp.neighbors(method="gauss", transformer=
    KNeighborsTransformer)`` then ``sc.tl.leiden(flavor="igraph", n_iterations=2,
    directed=False, random_state=seed)``, the same clusters for a seed (tested against
    scanpy), without importing scanpy (seconds of a training job).

    The Gaussian kernel rather than scanpy's default UMAP connectivities: those JIT-compile
    numba code in every fresh process (5-30 s), which would dominate small runs; the
    kernel is the same for every family.
    """
    import igraph as ig

    X = np.asarray(embedding, dtype=np.float32)
    k = max(2, min(n_neighbors, len(X) - 1))
    W = gauss_knn_connectivities(X, k)
    sources, targets = W.nonzero()
    graph = ig.Graph(n=len(X), edges=list(zip(sources.tolist(), targets.tolist(), strict=True)))
    graph.es["weight"] = np.asarray(W[sources, targets]).ravel().tolist()
    ig.set_random_number_generator(_IgraphRandom(seed))
    try:
        part = graph.community_leiden(
            objective_function="modularity", weights="weight", resolution=resolution,
            n_iterations=2,
        )
    finally:
        ig.set_random_number_generator(random)
    return np.asarray(part.membership, dtype=np.int64)


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
    ``silhouette_label``: scib-metrics' ``silhouette_label`` (scIB's label ASW): the mean
    over cells of the Euclidean silhouette with the labels as clusters, rescaled from
    [-1, 1] to (s + 1) / 2 in [0, 1] (0.5: no separation; a cell alone in its label counts
    as s = 0); NaN when it is undefined (fewer than 2 labels, or every cell its own label).
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
            sil = (float(silhouette_score(embedding, labels)) + 1) / 2
    return {
        "leiden_ari": float(adjusted_rand_score(labels, clusters)),
        "leiden_nmi": float(normalized_mutual_info_score(labels, clusters)),
        "leiden_n_clusters": int(len(np.unique(clusters))),
        "silhouette_label": sil,
    }
