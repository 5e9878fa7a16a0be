"""Matching a dataset's genes to a backbone's vocabulary, and the coverage report (how many
genes the backbone can see; the rest are dropped from its input)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from scgraphbench.errors import ScgbError

log = logging.getLogger("scgraphbench.models.backbones")


@dataclass
class GeneCoverage:
    """How many of a dataset's genes a backbone's vocabulary covers."""

    backbone: str
    n_genes: int
    n_matched: int
    unmatched: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)  # mapped to a token already taken

    @property
    def n_unmatched(self) -> int:
        return len(self.unmatched)

    @property
    def n_duplicates(self) -> int:
        return len(self.duplicates)

    @property
    def fraction(self) -> float:
        return self.n_matched / self.n_genes if self.n_genes else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "backbone": self.backbone,
            "n_genes": self.n_genes,
            "n_matched": self.n_matched,
            "n_unmatched": self.n_unmatched,
            "n_duplicates": self.n_duplicates,
            "fraction": self.fraction,
            "unmatched_examples": self.unmatched[:10],
        }

    def report(self) -> str:
        text = (
            f"{self.backbone}: {self.n_matched}/{self.n_genes} genes "
            f"({100 * self.fraction:.1f}%) matched the vocabulary; "
            f"{self.n_unmatched} unmatched genes dropped"
        )
        if self.unmatched:
            text += f" (e.g. {', '.join(self.unmatched[:5])})"
        if self.duplicates:
            text += f"; {self.n_duplicates} genes dropped as duplicates of a matched token"
        return text


def match_genes(
    gene_names: list[str], lookup: Callable[[str], int | None], backbone: str
) -> tuple[np.ndarray, np.ndarray, GeneCoverage]:
    """Dataset positions and token ids of the genes ``lookup`` knows, in dataset order.

    A token claimed by an earlier gene is not used twice (the later gene counts as a
    duplicate). Logs the coverage report; raises when no gene matches.
    """
    idx, tokens, unmatched, duplicates, taken = [], [], [], [], set()
    for i, name in enumerate(gene_names):
        token = lookup(name)
        if token is None:
            unmatched.append(name)
        elif token in taken:
            duplicates.append(name)
        else:
            taken.add(token)
            idx.append(i)
            tokens.append(token)
    coverage = GeneCoverage(backbone, len(gene_names), len(idx), unmatched, duplicates)
    log.info(coverage.report())
    if not idx:
        raise ScgbError(
            f"{backbone}: none of the dataset's {len(gene_names)} genes is in the "
            f"checkpoint's vocabulary (e.g. {', '.join(gene_names[:3])})",
            field="params.checkpoint",
            fix="check that the dataset's gene names and the checkpoint use the same "
            "identifiers (symbols for scGPT; Ensembl IDs or a symbol-to-ID "
            "dictionary for Geneformer)",
        )
    return np.asarray(idx, dtype=np.int64), np.asarray(tokens, dtype=np.int64), coverage
