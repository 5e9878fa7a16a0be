"""Family name -> class. The catalog (:mod:`.catalog`) says which module defines a family;
the module's ``@register(name)`` binds the class to the name. Building a family checks its
parameters against the catalog first, so every family (torch or array estimators) rejects
a mistyped or unknown parameter with the key path before any work starts.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from scgraphbench.errors import ScgbError
from scgraphbench.models.catalog import FamilySpec, families, get_spec

if TYPE_CHECKING:
    import scipy.sparse as sp

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
    seed: int = 0  # the run's effective seed (patterns, random features, estimators)
    class_weight: str | None = None  # "balanced" or None: one setting for every family


def register(name: str | FamilySpec) -> Callable[[type], type]:
    """Bind a class to a family the catalog declares (its name), or to the ``FamilySpec``
    a module outside the package declares for itself."""
    if isinstance(name, FamilySpec):
        from scgraphbench.models.catalog import add_plugin

        name = add_plugin(name).name

    def deco(cls: type) -> type:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"model family '{name}' registered twice")
        cls.family = name
        cls.spec = get_spec(name)
        _REGISTRY[name] = cls
        return cls

    return deco


def available() -> list[str]:
    return sorted(families())


def get_family(name: str) -> type:
    spec = get_spec(name)
    if name not in _REGISTRY:
        _import(spec)
    if name not in _REGISTRY:
        raise ScgbError(f"module '{spec.module}' defines no class registered as '{name}'",
                        field="models", fix=f"decorate the family's class with @register('{name}')")
    return _REGISTRY[name]


def _import(spec: FamilySpec) -> None:
    if spec.module.endswith(".py"):
        from scgraphbench.models.catalog import register_module

        register_module(spec.module)  # executes the file, whose @register binds the class
    else:
        importlib.import_module(spec.module)


def build_family(name: str, ctx: ModelContext, params: dict[str, Any] | None,
                 where: str | None = None) -> Any:
    """``Family(ctx, **checked params)``; user mistakes (the other task, unknown or
    mistyped parameters, a missing graph) as ScgbError before anything is built."""
    spec = get_spec(name)
    where = where or f"models.{name}.params"
    if ctx.task not in spec.tasks:
        raise ScgbError(
            f"family '{name}' does not do the {ctx.task} task (only {list(spec.tasks)})",
            field="models", fix=f"drop '{name}' from the {ctx.task} datasets' models",
        )
    if spec.needs_graph and ctx.graph is None:
        raise ScgbError(
            f"family '{name}' needs a gene graph and none was given",
            field="graphs", fix=f"list graph variants under models.{name}.graphs",
        )
    checked = spec.check_params(params, where=where)
    return get_family(name)(ctx, **checked)
