"""Cell-type annotation metrics."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, f1_score


def annotation_scores(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> dict[str, float]:
    """Accuracy and macro-F1 over all training classes (absent classes count as F1 = 0
    only if predicted; scikit-learn's ``labels`` keeps the class set fixed across seeds)."""
    labels = np.arange(n_classes)
    present = np.union1d(np.unique(y_true), np.unique(y_pred))
    return {"accuracy": float(accuracy_score(y_true, y_pred)),
            "macro_f1": float(f1_score(y_true, y_pred, labels=labels[np.isin(labels, present)],
                                       average="macro", zero_division=0))}
