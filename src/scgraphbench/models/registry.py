"""Model families, registered by name: adding a family is one file plus a config entry."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import scipy.sparse as sp

from scgraphbench.errors import ScgbError

_REGISTRY: dict[str, type] = {}


@dataclass
class ModelContext:
    """What a family may know about the data it is built for (never the test cells)."""

    task: str  # "annotation" | "perturbation"
    n_genes: int
    gene_names: list[str]
    n_classes: int = 0
    graph: sp.csr_matrix | None = None  # gene graph in dataset gene order, no self-loops needed
    extra: dict[str, Any] = field(default_factory=dict)


def register(name: str) -> Callable[[type], type]:
    def deco(cls: type) -> type:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"model family '{name}' registered twice")
        cls.family = name
        _REGISTRY[name] = cls
        return cls

    return deco


def _import_all() -> None:
    import scgraphbench.models as pkg

    for mod in pkgutil.iter_modules(pkg.__path__):
        if mod.name not in {"registry", "base"}:
            importlib.import_module(f"scgraphbench.models.{mod.name}")


def available() -> list[str]:
    _import_all()
    return sorted(_REGISTRY)


def get_family(name: str) -> type:
    _import_all()
    if name not in _REGISTRY:
        raise ScgbError(f"unknown model family '{name}'", field="models",
                        fix=f"use one of: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]
