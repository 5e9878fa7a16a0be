"""What a dataset entry of the config is, without loading anything (torch- and
anndata-free: the workflow and the plan read it while parsing)."""

from __future__ import annotations

from typing import Any

from scgraphbench.data.registry import REGISTRY
from scgraphbench.errors import ScgbError

LOADER_KINDS = ("scanpy_pbmc68k_reduced", "h5ad", "10x", "gears", "synthetic_perturbation",
                "synthetic_positional", "synthetic_planted")
DEFAULT_ROOT = "resources/datasets"


def known_sources() -> list[str]:
    return [*LOADER_KINDS, *REGISTRY]


def default_task(spec: dict[str, Any]) -> str:
    """The task an entry means when it names none."""
    source = spec.get("source")
    if source in REGISTRY:
        return REGISTRY[source].task
    return "perturbation" if source in ("gears", "synthetic_perturbation") else "annotation"


def lookup(datasets: dict[str, Any], name: str) -> dict[str, Any]:
    """The config entry of dataset ``name``, or an error listing the configured ones."""
    if name not in datasets:
        raise ScgbError(
            f"dataset '{name}' is not in the config; configured: {sorted(datasets)}",
            field=f"datasets.{name}",
            fix="add it under 'datasets:' or fix the name",
        )
    return datasets[name]


def local_inputs(spec: dict[str, Any]) -> list[str]:
    """Local files the entry names (offline overrides / bring-your-own), for Snakemake input."""
    return [str(spec[k]) for k in ("path", "train_path", "test_path", "labels") if spec.get(k)]


def needs_download(spec: dict[str, Any]) -> bool:
    """A registry dataset with no local copy named: the download rule must run first."""
    return spec.get("source") in REGISTRY and not local_inputs(spec)


