"""Did a model train at all? A collapsed run predicts one class for every cell (annotation),
or the same expression for every perturbation (perturbation), or its training loss never
left its starting plateau. Such runs are marked in metrics.json and runs.csv and kept out
of the claims, which say how many they excluded.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

PLATEAU_TOLERANCE = 0.02  # relative: a loss within 2% of where it started has not moved


def _never_left_plateau(history: list[dict[str, float]] | None) -> bool:
    losses = [h["train_loss"] for h in history or [] if math.isfinite(h.get("train_loss", math.nan))]
    if len(losses) < 2:
        return False
    start = losses[0]
    return all(abs(x - start) <= PLATEAU_TOLERANCE * max(abs(start), 1e-12) for x in losses)


def detect_collapse(task: str, prediction: np.ndarray, *, n_classes: int = 0,
                    ctrl_mean: np.ndarray | None = None,
                    history: list[dict[str, float]] | None = None) -> dict[str, Any]:
    """``{"collapsed": bool, "collapse_reason": str}``.

    annotation: ``prediction`` holds the test class ids; one class for every cell (with
    more than one class to tell apart) is a collapse. perturbation: ``prediction`` holds the
    per-perturbation mean predictions; identical rows for every perturbation (the model
    ignores which gene is perturbed) are a collapse. Either task: a training loss that
    never moved from its first epoch's value."""
    prediction = np.asarray(prediction)
    reason = ""
    if task == "annotation":
        if n_classes > 1 and len(prediction) > 1 and len(np.unique(prediction)) == 1:
            reason = f"every test cell is predicted as class {int(prediction[0])}"
    elif len(prediction) > 1 and np.allclose(prediction, prediction[0], rtol=0, atol=1e-6):
        reason = "the same expression is predicted for every perturbation"
    if not reason and _never_left_plateau(history):
        reason = "the training loss never left its first-epoch value"
    return {"collapsed": bool(reason), "collapse_reason": reason}
