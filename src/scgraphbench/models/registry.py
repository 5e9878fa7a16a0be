"""Model families, registered by name: adding a family is one file plus a config entry."""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
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


def _import_defining_module(name: str) -> None:
    """Import only the module whose source registers ``name``: a job that trains one family
    should not pay for importing every family's libraries (seconds per job)."""
    import scgraphbench.models as pkg

    pattern = re.compile(rf"""@register\(\s*["']{re.escape(name)}["']\s*\)""")
    for folder in pkg.__path__:
        for path in sorted(Path(folder).glob("*.py")):
            if pattern.search(path.read_text()):
                importlib.import_module(f"scgraphbench.models.{path.stem}")
                return


def get_family(name: str) -> type:
    if name not in _REGISTRY:
        _import_defining_module(name)
    if name not in _REGISTRY:
        _import_all()
    if name not in _REGISTRY:
        raise ScgbError(f"unknown model family '{name}'", field="models",
                        fix=f"use one of: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]
