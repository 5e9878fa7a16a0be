"""Did a trained model learn anything? Pure functions of its predictions and training history.

A neural run can end without having trained: its loss sat on the plateau a constant
predictor reaches and early stopping (or the epoch budget) ended it there. Its scores then
look like a weak model rather than no model, and a table of means would say so silently.
These checks mark such runs ``collapsed`` so that tables count them and claims leave them out.

Annotation (:func:`detect_collapse`), collapsed when either holds:

- ``single_class``: every test prediction is the same class while the test cells hold more
  than one class (a majority-class predictor);
- ``loss_at_prior``: the training loss never went below ``(1 - tol)`` times the class-prior
  loss, the cross-entropy of the best constant predictor: the entropy of the training labels
  (``ln C`` when classes are balanced or class-weighted).

Perturbation (:func:`detect_perturbation_collapse`): the analogue of predicting one class is
predicting one response whatever the perturbation. With per-perturbation mean predictions P,
true means T and the control mean c, collapsed when either holds:

- ``predicts_control``: the predicted shifts from control are negligible,
  ``||P - c|| <= tol * ||T - c||`` (the model returns its input);
- ``ignores_perturbation``: the predictions do not vary across perturbations,
  ``spread(P) <= tol * spread(T)`` with spread = root mean square deviation from the mean
  over perturbations (every perturbation gets the same shift, as the mean baseline by design).

Both are meant for learned families; the non-learned perturbation baselines predict one
response by construction and are not checked.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

PRIOR_TOLERANCE = 0.05  # "at the prior": within 5% of the constant predictor's loss
PERTURBATION_TOLERANCE = 0.01


def prior_loss(y_train: np.ndarray, n_classes: int, class_weighted: bool = False) -> float:
    """Cross-entropy of the best constant predictor on the training labels: the entropy of
    their class frequencies, or ``ln C`` under balanced class weights (whose weighted loss
    is minimised by the uniform prediction)."""
    if n_classes < 2:
        return 0.0
    if class_weighted:
        return math.log(n_classes)
    counts = np.bincount(np.asarray(y_train, dtype=np.int64), minlength=n_classes)
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def at_prior(train_loss: float, prior: float, tol: float = PRIOR_TOLERANCE) -> bool:
    """Whether one epoch's training loss is still on the class-prior plateau."""
    return prior > 0 and train_loss >= (1.0 - tol) * prior


def detect_collapse(
    y_pred: np.ndarray,
    n_classes: int,
    history: Sequence[dict[str, Any]] | None = None,
    *,
    y_true: np.ndarray | None = None,
    prior: float | None = None,
    tol: float = PRIOR_TOLERANCE,
) -> dict[str, Any]:
    """Collapse verdict of an annotation run.

    ``y_pred``: test predictions (class ids); ``y_true``: test labels (when given, a single
    predicted class counts only if the test cells hold several classes); ``history``: the
    trainer's per-epoch records with ``train_loss``; ``prior``: the class-prior loss
    (:func:`prior_loss`; ``ln n_classes`` when not given). Returns ``collapsed``,
    ``collapse_reason`` (``single_class``, ``loss_at_prior``, both joined by ``+``, or None),
    ``n_predicted_classes``, ``epochs_at_prior`` and ``min_train_loss``.
    """
    y_pred = np.asarray(y_pred)
    n_pred = int(len(np.unique(y_pred)))
    n_true = int(len(np.unique(y_true))) if y_true is not None else n_classes
    prior = math.log(n_classes) if prior is None and n_classes > 1 else (prior or 0.0)
    losses = [float(h["train_loss"]) for h in (history or []) if "train_loss" in h]
    reasons = []
    if n_pred <= 1 and n_true > 1 and len(y_pred) > 1:
        reasons.append("single_class")
    if losses and prior > 0 and all(at_prior(v, prior, tol) for v in losses):
        reasons.append("loss_at_prior")
    return {
        "collapsed": bool(reasons),
        "collapse_reason": "+".join(reasons) if reasons else None,
        "n_predicted_classes": n_pred,
        "epochs_at_prior": int(sum(at_prior(v, prior, tol) for v in losses)),
        "min_train_loss": float(min(losses)) if losses else None,
        "prior_loss": float(prior),
    }


def _spread(M: np.ndarray) -> float:
    """Root mean square deviation of the rows from their mean."""
    return float(np.sqrt(np.mean((M - M.mean(0, keepdims=True)) ** 2))) if len(M) > 1 else 0.0


def detect_perturbation_collapse(
    pred_mean: np.ndarray,
    true_mean: np.ndarray,
    ctrl_mean: np.ndarray,
    *,
    tol: float = PERTURBATION_TOLERANCE,
) -> dict[str, Any]:
    """Collapse verdict of a perturbation run from its per-perturbation mean predictions
    ``pred_mean`` and truths ``true_mean`` (perturbations x genes) and the control mean
    (genes,). Returns ``collapsed``, ``collapse_reason`` (``predicts_control``,
    ``ignores_perturbation``, both joined by ``+``, or None) and the two ratios."""
    P = np.asarray(pred_mean, dtype=np.float64)
    T = np.asarray(true_mean, dtype=np.float64)
    c = np.asarray(ctrl_mean, dtype=np.float64)[None, :]
    true_shift = float(np.linalg.norm(T - c))
    shift_ratio = float(np.linalg.norm(P - c) / true_shift) if true_shift > 0 else float("nan")
    true_spread = _spread(T)
    spread_ratio = _spread(P) / true_spread if true_spread > 0 else float("nan")
    reasons = []
    if np.isfinite(shift_ratio) and shift_ratio <= tol:
        reasons.append("predicts_control")
    if np.isfinite(spread_ratio) and len(P) > 1 and spread_ratio <= tol:
        reasons.append("ignores_perturbation")
    return {
        "collapsed": bool(reasons),
        "collapse_reason": "+".join(reasons) if reasons else None,
        "shift_ratio": shift_ratio,
        "spread_ratio": float(spread_ratio),
    }
