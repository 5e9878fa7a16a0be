"""Dispatch a dataset entry of the config to the loader for its source."""

from __future__ import annotations

from typing import Any

import anndata as ad

from scgraphbench.data.builtin import pbmc68k_reduced_counts
from scgraphbench.data.prepare import prepare_annotation
from scgraphbench.errors import ScgbError


def prepare_dataset(name: str, spec: dict[str, Any], inputs: list[str] | None = None) -> ad.AnnData:
    """Prepared AnnData for the dataset ``name`` described by its config entry ``spec``."""
    source = spec.get("source")
    common = dict(dataset=name, seed=int(spec.get("seed", 0)),
                  n_top_genes=spec.get("n_top_genes"),
                  val_fraction=float(spec.get("val_fraction", 0.15)),
                  test_fraction=float(spec.get("test_fraction", 0.15)))
    if source == "scanpy_pbmc68k_reduced":
        return prepare_annotation(pbmc68k_reduced_counts(), label_key=spec.get("label_key", "bulk_labels"),
                                  source="scanpy.datasets.pbmc68k_reduced", **common)
    raise ScgbError(f"unknown source '{source}' for dataset '{name}'",
                    field=f"datasets.{name}.source", fix="use scanpy_pbmc68k_reduced")
