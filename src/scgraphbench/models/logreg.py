"""Logistic regression on the expression vector (scikit-learn), the strong small-data baseline."""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from scgraphbench.models.contract import ArrayEstimator
from scgraphbench.models.registry import ModelContext, register


@register("logreg")
class LogReg(ArrayEstimator):
    """StandardScaler (fit on training cells) + LogisticRegression."""

    def __init__(self, ctx: ModelContext, *, C: float, max_iter: int) -> None:
        self.ctx = ctx
        self.pipeline = make_pipeline(
            StandardScaler(),
            LogisticRegression(
                C=C, max_iter=max_iter, class_weight=ctx.class_weight, random_state=ctx.seed
            ),
        )

    def fit(self, X: np.ndarray, y: np.ndarray) -> LogReg:
        self.pipeline.fit(X, y)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.pipeline.predict(X)

    def embed(self, X: np.ndarray) -> np.ndarray:
        return self.pipeline.decision_function(X)

    def n_parameters(self) -> int:
        lr = self.pipeline[-1]
        return int(lr.coef_.size + lr.intercept_.size)
