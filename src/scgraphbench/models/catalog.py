"""The model-family contract, torch-free: what each family is, does and accepts.

One :class:`FamilySpec` per family: its module, the tasks it does, whether it needs a gene
graph, how it is driven (``torch`` modules trained by the Trainer, or ``arrays`` estimators
with ``fit``/``predict`` on numpy arrays), its pretrained-backbone key, its group in the
report, and every parameter it accepts (:class:`Param`: type, default, range, choices).
Snakemake (parse-time validation), the plan, the registry and ``validate-config`` all read
this table, so parameters are declared once and checked for every family before any job
runs; the family's constructor receives the checked, default-filled parameters.

Adding a family: write one module with the class (``@register("name")``) and either add a
row here (built-in families) or, for a family outside the package, put ``FAMILY =
FamilySpec(...)`` in that module and point a config entry at it with ``module:``
(``docs/ARCHITECTURE.md`` shows a whole example).
"""

from __future__ import annotations

import importlib.util
import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scgraphbench.errors import ScgbError

TASKS = ("annotation", "perturbation")
GRAPH_NEEDS = ("none", "optional", "required")
INTERFACES = ("torch", "arrays")
GROUPS = ("baseline", "dense", "efficient", "graph_attention", "gnn", "backbone")

_MISSING = object()


@dataclass(frozen=True)
class Param:
    """One parameter of a family.

    ``kind``: ``int``, ``float`` (ints accepted), ``bool``, ``str``; ``choices`` restricts
    the value; ``also`` lists extra accepted literal values (``"auto"``, None); ``list_of``
    accepts a list of ``kind`` values as well as a single one; bounds are inclusive unless
    ``exclusive``.
    """

    name: str
    kind: str
    default: Any = None
    help: str = ""
    minimum: float | None = None
    maximum: float | None = None
    exclusive: bool = False
    choices: tuple | None = None
    also: tuple = ()
    list_of: bool = False

    def describe(self) -> str:
        """What is accepted, in words (for error messages and docs)."""
        if self.choices is not None:
            text = "one of " + ", ".join(map(repr, self.choices))
        else:
            text = {"int": "an integer", "float": "a number", "bool": "true or false",
                    "str": "a string"}[self.kind]
            lo = "" if self.minimum is None else (">" if self.exclusive else ">=") + f" {self.minimum:g}"
            hi = "" if self.maximum is None else ("<" if self.exclusive else "<=") + f" {self.maximum:g}"
            bounds = " and ".join(b for b in (lo, hi) if b)
            if bounds:
                text += f" {bounds}"
        if self.list_of:
            text += " (or a list of them)"
        if self.also:
            text += ", or " + ", ".join("null" if a is None else repr(a) for a in self.also)
        return text

    def check(self, value: Any, where: str) -> Any:
        if value in self.also and not (isinstance(value, bool) and self.kind != "bool"):
            return value
        if self.list_of and isinstance(value, list):
            if not value:
                self._fail(value, where)
            return [self._check_one(v, where) for v in value]
        return self._check_one(value, where)

    def _check_one(self, value: Any, where: str) -> Any:
        ok = {
            "int": isinstance(value, int) and not isinstance(value, bool),
            "float": isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(value),
            "bool": isinstance(value, bool),
            "str": isinstance(value, str),
        }[self.kind]
        if ok and self.choices is not None:
            ok = value in self.choices
        if ok and self.minimum is not None:
            ok = value > self.minimum if self.exclusive else value >= self.minimum
        if ok and self.maximum is not None:
            ok = value < self.maximum if self.exclusive else value <= self.maximum
        if not ok:
            self._fail(value, where)
        return float(value) if self.kind == "float" else value

    def _fail(self, value: Any, where: str) -> None:
        raise ScgbError(
            f"{self.name} = {value!r} is not accepted",
            field=f"{where}.{self.name}",
            fix=f"set {self.name} to {self.describe()}" + (f" ({self.help})" if self.help else ""),
        )


def _int(name: str, default: Any, help: str = "", minimum: float | None = 1, **kw: Any) -> Param:
    return Param(name, "int", default, help, minimum=minimum, **kw)


def _float(name: str, default: Any, help: str = "", **kw: Any) -> Param:
    return Param(name, "float", default, help, **kw)


def _bool(name: str, default: bool, help: str = "") -> Param:
    return Param(name, "bool", default, help)


def _choice(name: str, default: Any, choices: tuple, help: str = "", **kw: Any) -> Param:
    return Param(name, "str", default, help, choices=choices, **kw)


@dataclass(frozen=True)
class FamilySpec:
    """The contract of one family (see the module docstring)."""

    name: str
    module: str  # importable module path, or a file path for families outside the package
    tasks: tuple[str, ...] = TASKS
    graph: str = "none"  # none | optional | required
    interface: str = "torch"  # torch | arrays
    group: str = "dense"
    backbone: str | None = None  # default checkpoint key of a pretrained backbone
    params: tuple[Param, ...] = ()
    summary: str = ""
    learned: bool = True  # False: a non-learned baseline (constant predictions by design)

    def __post_init__(self) -> None:
        if not set(self.tasks) <= set(TASKS) or not self.tasks:
            raise ValueError(f"{self.name}: tasks {self.tasks} not within {TASKS}")
        for value, allowed, what in ((self.graph, GRAPH_NEEDS, "graph"),
                                     (self.interface, INTERFACES, "interface"),
                                     (self.group, GROUPS, "group")):
            if value not in allowed:
                raise ValueError(f"{self.name}: {what} '{value}' not in {allowed}")
        names = [p.name for p in self.params]
        if len(names) != len(set(names)):
            raise ValueError(f"{self.name}: a parameter is declared twice in {names}")

    @property
    def needs_graph(self) -> bool:
        return self.graph == "required"

    @property
    def uses_graph(self) -> bool:
        return self.graph != "none"

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)

    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.params}

    def check_params(self, params: Mapping[str, Any] | None, where: str = "") -> dict[str, Any]:
        """``params`` checked against the declarations and completed with the defaults.

        ``where`` is the config key path of the params block (for the error message)."""
        where = where or f"models.{self.name}.params"
        params = dict(params or {})
        known = {p.name: p for p in self.params}
        unknown = sorted(set(params) - set(known))
        if unknown:
            raise ScgbError(
                f"family '{self.name}' has no parameter(s) {unknown}",
                field=where,
                fix="use only: " + (", ".join(sorted(known)) or "(this family takes none)"),
            )
        out = {}
        for name, p in known.items():
            out[name] = p.check(params[name], where) if name in params else p.default
        return out


# -- shared parameter groups ---------------------------------------------------------------
TOKEN_PARAMS: tuple[Param, ...] = (
    _int("d_model", 32, "token width"),
    _int("n_layers", 2, "blocks"),
    _int("n_heads", 4, "attention heads; must divide d_model"),
    _float("dropout", 0.1, "on residual branches and the FFN", minimum=0.0, maximum=0.99),
    _float("attn_dropout", 0.0, "on attention weights (0 keeps the fused kernels)",
           minimum=0.0, maximum=0.99),
    _int("ff_mult", 4, "FFN width multiple"),
    _choice("value_encoding", "continuous", ("continuous", "binned")),
    _int("n_bins", 51, "value bins (binned encoding)", minimum=3),
    _bool("positional", False, "sinusoidal encoding of the dataset's gene order"),
    _choice("pooling", None, ("cls", "mean", "attention"), "None: the family's default",
            also=(None,)),
    _choice("value_coupling", "multiply", ("multiply", "add"),
            "how a gene's value meets its identity: scaled gene embedding, or a sum"),
    _choice("pool_norm", "batch", ("batch", "layer", "none"),
            "normalisation of the pooled cell embedding before the head"),
    _bool("standardise", True, "standardise each gene with training-cell mean and std"),
    _bool("value_norm", False, "LayerNorm on the continuous value encoding (scGPT's layout; "
          "off: it blows small values up to unit norm, docs/training.md)"),
    _float("layer_scale", 0.0, "initial per-channel scale of every residual branch "
           "(LayerScale; 0: each block starts as the identity, 1: a plain pre-LN block)",
           minimum=0.0),
)
DIFFUSION_PARAMS: tuple[Param, ...] = (
    _float("alpha", 0.25, "PPR teleport probability", minimum=0.0, maximum=1.0),
    _float("t", 5.0, "heat-kernel diffusion time", minimum=0.0, exclusive=True),
    _int("steps", 6, "diffusion steps K", minimum=0),
    _bool("normalise_heat", False, "divide the heat series by its kept mass"),
    Param("checkpoint", "bool", None, "recompute diffusion states in the backward (None: the "
          "kernel's choice: the fused kernels recompute, torch.sparse keeps them)",
          also=(None,)),
)
PATTERN_PARAMS: tuple[Param, ...] = (
    _choice("order", "dataset", ("dataset", "random", "graph"), "gene ordering of the pattern"),
    _int("pattern_seed", None, "random keys / order seed (None: the run seed)", minimum=0,
         also=(None,)),
    _int("n_global", 2, "global genes (plus CLS)", minimum=0),
)


def _window(default: Any) -> Param:
    return _int("window", default, "sliding-window half-width; auto = the graph's mean degree",
                minimum=0, also=("auto",))


def _n_random(default: int) -> Param:
    return _int("n_random", default, "random keys per gene", minimum=0)


BACKBONE_PARAMS: tuple[Param, ...] = (
    Param("checkpoint", "str", None, "checkpoint folder (resolved by the workflow)", also=(None,)),
    Param("backbone", "str", None, "key under backbones: in the config", also=(None,)),
    _choice("attention", "dense", ("dense", "masked", "diffusion_ppr", "diffusion_heat"),
            "attention injected into the backbone"),
    _float("alpha", 0.25, "PPR teleport probability", minimum=0.0, maximum=1.0),
    _float("t", 5.0, "heat-kernel diffusion time", minimum=0.0, exclusive=True),
    _int("freeze_layers", 0, "lowest layers kept frozen", minimum=0),
    _bool("freeze_embeddings", False),
)

def _token_family(name: str, module: str, group: str, graph: str, extra: tuple[Param, ...] = (),
                  summary: str = "", tasks: tuple[str, ...] = TASKS) -> FamilySpec:
    return FamilySpec(name, module, tasks=tasks, graph=graph, group=group,
                      params=TOKEN_PARAMS + extra, summary=summary)


_PKG = "scgraphbench.models."
BUILTIN: dict[str, FamilySpec] = {
    spec.name: spec
    for spec in (
        FamilySpec(
            "logreg", _PKG + "logreg", tasks=("annotation",), interface="arrays",
            group="baseline", summary="StandardScaler + logistic regression (scikit-learn)",
            params=(
                _float("C", 1.0, "inverse regularisation strength", minimum=0.0, exclusive=True),
                _int("max_iter", 1000),
            ),
        ),
        FamilySpec(
            "mean_baseline", _PKG + "perturbation_baselines", tasks=("perturbation",),
            interface="arrays", group="baseline", learned=False,
            summary="predicts the mean of the training perturbed cells",
        ),
        FamilySpec(
            "control_baseline", _PKG + "perturbation_baselines", tasks=("perturbation",),
            interface="arrays", group="baseline", learned=False,
            summary="predicts the mean of the training control cells (no effect)",
        ),
        FamilySpec(
            "additive_baseline", _PKG + "additive_baseline", tasks=("perturbation",),
            interface="arrays", group="baseline",
            summary="control mean + the single perturbations' effects (Ahlmann-Eltze 2025)",
        ),
        FamilySpec(
            "linear_baseline", _PKG + "linear_baseline", tasks=("perturbation",),
            interface="arrays", group="baseline",
            summary="change = G W Pᵀ + b on PCA gene embeddings, ridge (Ahlmann-Eltze 2025)",
            params=(
                _int("n_components", 10, "PCA dimensions K of the gene embedding"),
                _float("ridge", 0.1, "ridge penalty λ on both sides", minimum=0.0),
            ),
        ),
        FamilySpec(
            "mlp", _PKG + "mlp", group="baseline", summary="MLP on the expression vector",
            params=(
                _int("d_model", 32, "embedding width"),
                _int("hidden", 256, "hidden width(s)", list_of=True),
                _int("n_layers", 2, "hidden layers when hidden is one width"),
                _float("dropout", 0.1, minimum=0.0, maximum=0.99),
            ),
        ),
        _token_family("transformer", _PKG + "transformer", "dense", "none",
                      summary="dense self-attention over gene tokens (SDPA)"),
        _token_family(
            "performer", _PKG + "performer", "efficient", "none",
            (_int("n_features", 64, "FAVOR+ random features"),
             _int("redraw_interval", 1000, "steps between feature redraws (0: fixed)",
                  minimum=0),
             _int("feature_seed", None, "None: the run seed", minimum=0, also=(None,))),
            summary="FAVOR+ random-feature attention (performer-pytorch)",
        ),
        _token_family("longformer", _PKG + "longformer", "efficient", "none",
                      (_window(64),) + PATTERN_PARAMS[:2]
                      + (_int("n_global", 0, "global genes (plus CLS)", minimum=0),),
                      summary="sliding window + global tokens over a gene ordering"),
        _token_family("bigbird", _PKG + "bigbird", "efficient", "optional",
                      (_window("auto"), _n_random(3)) + PATTERN_PARAMS,
                      summary="window + global + random keys over a gene ordering"),
        _token_family("diffuser", _PKG + "diffuser", "efficient", "optional",
                      (_window("auto"), _n_random(3)) + PATTERN_PARAMS + DIFFUSION_PARAMS,
                      summary="BigBird's pattern + attention diffusion"),
        _token_family("masked_attention", _PKG + "genohoption", "graph_attention", "required",
                      summary="attention restricted to gene-graph neighbours"),
        _token_family("genohoption_ppr", _PKG + "genohoption", "graph_attention", "required",
                      DIFFUSION_PARAMS, summary="GenoHoption graph-diffusion attention, PPR"),
        _token_family("genohoption_heat", _PKG + "genohoption", "graph_attention", "required",
                      DIFFUSION_PARAMS, summary="GenoHoption graph-diffusion attention, heat"),
        _token_family("gnn_gcn", _PKG + "gnn", "gnn", "required",
                      summary="GCN over the gene graph (PyG)"),
        _token_family("gnn_sage", _PKG + "gnn", "gnn", "required",
                      summary="GraphSAGE over the gene graph (PyG)"),
        _token_family("gnn_gat", _PKG + "gnn", "gnn", "required",
                      summary="GAT over the gene graph (PyG)"),
        FamilySpec(
            "gnn_value", _PKG + "gnn_value", group="gnn", graph="required",
            summary="GCN whose node features are the genes' values, not gene embeddings "
                    "(Dutil et al. 2018)",
            params=(
                _int("channels", 8, "features per gene node after each convolution"),
                _int("n_layers", 1, "GCNConv layers"),
                _int("d_model", 32, "cell-embedding width"),
                _float("dropout", 0.1, "on the flattened gene states and before the head",
                       minimum=0.0, maximum=0.99),
            ),
        ),
        FamilySpec(
            "backbone_scgpt", _PKG + "backbone_scgpt", group="backbone", backbone="scgpt",
            graph="optional", summary="pretrained scGPT, dense or with graph attention",
            params=BACKBONE_PARAMS + (
                _int("steps", 6, "diffusion steps K", minimum=0),
                Param("include_zero_genes", "bool", None, "None: the checkpoint's setting",
                      also=(None,)),
                _float("dropout", None, "None: the checkpoint's dropout", minimum=0.0,
                       maximum=0.99, also=(None,)),
                _bool("load_heads", False, "load the checkpoint's task heads too"),
            ),
        ),
        FamilySpec(
            "backbone_geneformer", _PKG + "backbone_geneformer", tasks=("annotation",),
            group="backbone", backbone="geneformer", graph="optional",
            summary="pretrained Geneformer, dense or with graph attention",
            params=BACKBONE_PARAMS + (
                _int("steps", 1, "diffusion steps K (GenoHoption's Geneformer runs: 1)",
                     minimum=0),
                _choice("pooling", None, ("cls", "mean"), also=(None,)),
                _int("max_len", None, "tokens per cell (None: the checkpoint's)", also=(None,)),
                Param("token_dictionary", "str", None, also=(None,)),
                Param("gene_median_dictionary", "str", None, also=(None,)),
                Param("gene_name_id_dictionary", "str", None, also=(None,)),
            ),
        ),
    )
}

_PLUGINS: dict[str, FamilySpec] = {}


def _load_plugin(module: str) -> FamilySpec:
    """``FAMILY`` of a family module outside the package: a file path or a dotted name."""
    path = Path(module)
    if path.suffix == ".py":
        if not path.is_file():
            raise ScgbError("family module not found", path=module, field="models.*.module",
                            fix="give the path of the .py file that defines FAMILY")
        name = f"scgraphbench_plugin_{path.stem}"
        if name not in sys.modules:
            spec = importlib.util.spec_from_file_location(name, path.resolve())
            mod = importlib.util.module_from_spec(spec)
            sys.modules[name] = mod
            spec.loader.exec_module(mod)
        mod = sys.modules[name]
    else:
        try:
            mod = importlib.import_module(module)
        except ImportError as e:
            raise ScgbError(f"cannot import family module ({e})", path=module,
                            field="models.*.module", fix="check the module name") from None
    family = getattr(mod, "FAMILY", None)
    if not isinstance(family, FamilySpec):
        raise ScgbError("the module defines no FAMILY = FamilySpec(...)", path=module,
                        field="models.*.module",
                        fix="add FAMILY = FamilySpec(name, module=__file__, ...) to it")
    return family


def add_plugin(family: FamilySpec) -> FamilySpec:
    if family.name in BUILTIN:
        raise ScgbError(f"family '{family.name}' is a built-in family", path=family.module,
                        field="FAMILY.name", fix="give your family another name")
    _PLUGINS[family.name] = family
    return family


def register_module(module: str) -> FamilySpec:
    """Make the family a module outside the package defines known (config ``module:``)."""
    return add_plugin(_load_plugin(module))


def families() -> dict[str, FamilySpec]:
    return {**BUILTIN, **_PLUGINS}


def get_spec(name: str, where: str = "models") -> FamilySpec:
    try:
        return families()[name]
    except KeyError:
        raise ScgbError(
            f"unknown model family '{name}'",
            field=where,
            fix=f"use one of: {', '.join(sorted(families()))} (or add your own with module:)",
        ) from None


@dataclass
class ResolvedModel:
    """A config ``models:`` entry with its family and checked parameters."""

    name: str
    spec: FamilySpec
    params: dict[str, Any]
    graphs: list[str] = field(default_factory=list)
    tasks: tuple[str, ...] = TASKS
    train: dict[str, Any] = field(default_factory=dict)


def resolve_model(name: str, entry: Mapping[str, Any] | None) -> ResolvedModel:
    """A ``models.<name>`` config entry checked against its family's contract."""
    entry = dict(entry or {})
    if entry.get("module"):
        register_module(str(entry["module"]))
    spec = get_spec(entry.get("family", name), where=f"models.{name}.family")
    params = spec.check_params(entry.get("params"), where=f"models.{name}.params")
    graphs = list(entry.get("graphs") or [])
    if spec.needs_graph and not graphs:
        raise ScgbError(
            f"family '{spec.name}' needs a gene graph and models.{name}.graphs is empty",
            field=f"models.{name}.graphs",
            fix="list one or more variants from graphs:",
        )
    if graphs and not spec.uses_graph:
        raise ScgbError(
            f"family '{spec.name}' uses no gene graph, but graphs {graphs} are listed",
            field=f"models.{name}.graphs",
            fix="remove the graphs list",
        )
    tasks = tuple(entry.get("tasks") or spec.tasks)
    other = sorted(set(tasks) - set(spec.tasks))
    if other:
        raise ScgbError(
            f"family '{spec.name}' does not do the {other} task(s)",
            field=f"models.{name}.tasks",
            fix=f"use a subset of {list(spec.tasks)}",
        )
    return ResolvedModel(name, spec, params, graphs, tasks, dict(entry.get("train") or {}))


def family_tasks(family: str) -> tuple[str, ...]:
    return get_spec(family).tasks
