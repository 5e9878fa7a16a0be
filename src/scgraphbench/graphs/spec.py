"""Graph-variant config: each ``graphs.<name>`` entry has a ``kind`` and its parameters.

Kept free of heavy imports: ``workflow/rules/graphs.smk`` imports it to wire inputs.

=========  =====================================================  ===========================
kind       what                                                   parameters (defaults)
=========  =====================================================  ===========================
coexpr     top-H |Pearson| per gene above sigma, training cells   top_h (20), sigma (0.4)
grn        union of regulatory databases, dataset genes only      databases (required)
both       coexpr ∪ grn (the GenoHoption default)                 top_h, sigma, databases
knn        cosine kNN over gene profiles of training cells        k (16)
random     degree-preserving random graph matching ``base``       base (required), seed (0)
=========  =====================================================  ===========================

Options for every kind: ``self_loops`` (False; True for knn; random inherits its base's),
``symmetrise`` (True), ``global_node`` (False: recorded for models that add a CLS node
linked to every gene), ``max_degree`` (None: no cap; not for random, whose degrees are its
base's). A variant without ``kind`` takes its name as kind (``coexpr: {top_h: 20}``).
``datasets`` restricts a variant to some datasets (a planted GRN fits only its own data).
"""

from __future__ import annotations

from typing import Any

from scgraphbench.errors import ScgbError

KINDS = ("coexpr", "grn", "both", "knn", "random")
COMMON = {"self_loops": False, "symmetrise": True, "global_node": False, "max_degree": None}
KIND_DEFAULTS: dict[str, dict[str, Any]] = {
    "coexpr": {"top_h": 20, "sigma": 0.4},
    "grn": {"databases": None},
    "both": {"top_h": 20, "sigma": 0.4, "databases": None},
    "knn": {"k": 16, "self_loops": True},
    "random": {"base": None, "seed": 0, "self_loops": None},
}
REQUIRED = {"grn": ("databases",), "both": ("databases",), "random": ("base",)}


def resolve_variant(name: str, spec: dict[str, Any] | None) -> dict[str, Any]:
    """The variant's full parameters: kind, defaults filled in, unknown keys rejected."""
    spec = dict(spec or {})
    kind = spec.pop("kind", name)
    spec.pop("datasets", None)  # which datasets the variant is built for: the plan's concern
    if kind not in KINDS:
        raise ScgbError(
            f"graph variant '{name}' has no known kind ({kind!r})",
            field=f"graphs.{name}.kind",
            fix=f"set kind to one of {list(KINDS)}",
        )
    allowed = {**COMMON, **KIND_DEFAULTS[kind]}
    unknown = sorted(set(spec) - set(allowed))
    if unknown:
        raise ScgbError(
            f"unknown parameters {unknown} for a {kind} graph",
            field=f"graphs.{name}",
            fix=f"allowed: {sorted(allowed)}",
        )
    out = {"kind": kind, **allowed, **spec}
    for key in REQUIRED.get(kind, ()):
        if not out.get(key):
            raise ScgbError(
                f"a {kind} graph needs '{key}'",
                field=f"graphs.{name}.{key}",
                fix="e.g. databases: [pathwaycommons]"
                if key == "databases"
                else "e.g. base: coexpr",
            )
    if kind == "random" and out.get("max_degree"):
        raise ScgbError(
            "a random graph copies its base's degrees; max_degree does not apply",
            field=f"graphs.{name}.max_degree",
            fix="cap the base variant instead",
        )
    if out.get("databases") is not None and isinstance(out["databases"], str):
        out["databases"] = [out["databases"]]
    return out


def check_graphs(graphs: dict[str, Any], databases: dict[str, Any] | None) -> None:
    """Every referenced database and base variant exists, and random bases do not loop."""
    databases = databases or {}
    resolved = {name: resolve_variant(name, spec) for name, spec in (graphs or {}).items()}
    for name, v in resolved.items():
        for db in v.get("databases") or []:
            if db not in databases:
                raise ScgbError(
                    f"graph '{name}' uses database '{db}', which is not configured",
                    field=f"graphs.{name}.databases",
                    fix=f"add databases.{db} or use one of {sorted(databases)}",
                )
        if v["kind"] == "random":
            seen, cur = {name}, v["base"]
            while True:
                if cur not in resolved:
                    raise ScgbError(
                        f"random graph '{name}' has base '{cur}', which is not a configured graph",
                        field=f"graphs.{name}.base",
                        fix=f"use one of {sorted(set(resolved) - {name})}",
                    )
                if cur in seen:
                    raise ScgbError(
                        f"random graph '{name}': bases form a loop through '{cur}'",
                        field=f"graphs.{name}.base",
                        fix="point base at a non-random variant",
                    )
                seen.add(cur)
                if resolved[cur]["kind"] != "random":
                    break
                cur = resolved[cur]["base"]


def variant_dependencies(name: str, spec: dict[str, Any] | None) -> tuple[list[str], str | None]:
    """(database names, base variant) a variant's build needs as inputs."""
    v = resolve_variant(name, spec)
    return list(v.get("databases") or []), v.get("base")
