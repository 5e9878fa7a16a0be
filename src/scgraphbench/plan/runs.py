"""Config -> the runs every table and study needs, each declared once.

A run is (dataset, replicate, model, graph, setting, seed):
- ``replicate`` r is one train/val/test split of the dataset, drawn with seed
  ``datasets.<d>.seed + r`` (stratified for annotation, the GEARS simulation split for
  perturbation; a source-given test set is kept and only train/val vary); HVGs, graphs fit
  on training cells and random controls are refit per replicate.
- ``seed`` is an initialisation seed inside a replicate (``seeds:``); the run's effective
  seed is ``1000 * replicate + seed``.
- ``setting`` is ``default`` or a named set of overrides of the model's params/train
  settings (a study's varied value, or a point of the ``tuning:`` grid); the plan maps each
  name to its overrides, so nothing downstream parses setting names.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from scgraphbench.errors import ScgbError
from scgraphbench.graphs.spec import resolve_variant
from scgraphbench.models.catalog import ResolvedModel

NO_GRAPH = "none"
DEFAULT = "default"
TUNED = "tuned"  # arm setting: the tuning point chosen on validation, per replicate
SEED_STRIDE = 1000  # effective seed = SEED_STRIDE * replicate + seed


@dataclass(frozen=True)
class Setting:
    """A named set of overrides: ``{("params" | "train", key): value}``."""

    name: str
    overrides: tuple[tuple[str, str, Any], ...] = ()
    study: str = "main"

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "study": self.study,
                "overrides": [list(o) for o in self.overrides]}


@dataclass(frozen=True)
class Run:
    dataset: str
    replicate: int
    model: str
    graph: str
    setting: str
    seed: int
    task: str = field(compare=False, default="annotation")
    family: str = field(compare=False, default="")

    @property
    def key(self) -> tuple:
        return (self.dataset, self.replicate, self.model, self.graph, self.setting, self.seed)

    @property
    def effective_seed(self) -> int:
        return SEED_STRIDE * self.replicate + self.seed

    def path(self, name: str = "metrics.json") -> str:
        return (f"results/runs/{self.dataset}/rep{self.replicate}/{self.model}/{self.graph}/"
                f"{self.setting}/seed{self.seed}/{name}")

    def as_dict(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "replicate": self.replicate, "model": self.model,
                "graph": self.graph, "setting": self.setting, "seed": self.seed,
                "task": self.task, "family": self.family}


def setting_name(key: str, value: Any) -> str:
    if isinstance(value, bool):
        value = "on" if value else "off"
    return f"{key}-{value}"


def tuning_settings(tuning: dict[str, Any] | None, model: ResolvedModel) -> list[Setting]:
    """The ``tuning:`` grid points that apply to a model: the shared ``train`` grid (torch
    families) crossed with the model's own ``params`` grid."""
    if not tuning or not tuning.get("enabled", True):
        return []
    axes: list[tuple[str, str, list[Any]]] = []
    if model.spec.interface == "torch":
        axes += [("train", k, list(v)) for k, v in (tuning.get("train") or {}).items()]
    axes += [("params", k, list(v))
             for k, v in ((tuning.get("params") or {}).get(model.name) or {}).items()]
    if not axes:
        return []
    points = itertools.product(*[values for _, _, values in axes])
    return [
        Setting(f"tune{i}", tuple((s, k, v) for (s, k, _), v in zip(axes, point, strict=True)),
                study="tuning")
        for i, point in enumerate(points)
    ]


def apply_setting(model: ResolvedModel, base_train: dict[str, Any], setting: Setting
                  ) -> tuple[dict[str, Any], dict[str, Any]]:
    """(params, train) of a model under a setting, checked against the family's contract."""
    params = dict(model.params)
    train = {**base_train, **model.train}
    for section, key, value in setting.overrides:
        (params if section == "params" else train)[key] = value
    params = model.spec.check_params(params, where=f"models.{model.name}.params")
    return params, train


def graph_kind(graphs: dict[str, Any], name: str) -> str:
    return resolve_variant(name, graphs[name])["kind"] if name != NO_GRAPH else NO_GRAPH


def random_controls(graphs: dict[str, Any]) -> dict[str, str]:
    """Prior variant -> its degree-matched random control (a ``random`` variant on it)."""
    out = {}
    for name, spec in graphs.items():
        v = resolve_variant(name, spec)
        if v["kind"] == "random" and v.get("base"):
            if v["base"] in out:
                raise ScgbError(
                    f"graph '{v['base']}' has two random controls ('{out[v['base']]}' and "
                    f"'{name}')",
                    field=f"graphs.{name}.base",
                    fix="keep one random variant per base graph (vary the seed by replicate)",
                )
            out[v["base"]] = name
    return out


def graph_datasets(graphs: dict[str, Any], name: str) -> list[str] | None:
    """Datasets a variant is restricted to (``graphs.<g>.datasets``), None for all."""
    if name == NO_GRAPH:
        return None
    spec = graphs.get(name) or {}
    if spec.get("datasets"):
        return list(spec["datasets"])
    if spec.get("kind") == "random" and spec.get("base") in graphs:
        return graph_datasets(graphs, spec["base"])  # a control goes where its base goes
    return None
