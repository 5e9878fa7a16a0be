"""Expand a (schema-valid) config into the :class:`Plan`: datasets with their replicates,
models checked against their family contracts, every run, and the comparisons each table
and claim makes. Pure and torch-free; Snakemake's input functions, ``validate-config`` and
the report all read the same plan, so nothing re-derives runs from files or strings.

Every semantic check of the config happens here, before any job runs: unknown families,
parameters and graph variants, models or datasets a study names that do not exist, the
baselines every comparison must carry. Each error names the key path, the bad value and
what is accepted.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from scgraphbench.data.sources import default_task
from scgraphbench.errors import ScgbError
from scgraphbench.graphs.spec import check_graphs, variant_dependencies
from scgraphbench.models.catalog import ResolvedModel, resolve_model
from scgraphbench.plan.runs import (
    DEFAULT,
    NO_GRAPH,
    Run,
    Setting,
    apply_setting,
    graph_datasets,
    graph_kind,
    random_controls,
    setting_name,
    tuning_settings,
)

# a study's varied key -> where it lives in a run's settings
STUDY_KEYS = {"frac": ("train", "train_fraction"), "alpha": ("params", "alpha"),
              "steps": ("params", "steps"), "t": ("params", "t"),
              "pe": ("params", "positional")}
ANNOTATION_BASELINE, PERTURBATION_BASELINE = "logreg", "mean_baseline"
CHECKPOINT_ROOT = "resources/checkpoints"


@dataclass
class Plan:
    config: dict[str, Any]
    datasets: dict[str, dict[str, Any]]  # every dataset, study-only ones included
    main_datasets: list[str]
    models: dict[str, ResolvedModel]
    graphs: dict[str, dict[str, Any]]
    settings: dict[tuple[str, str], Setting]  # (model, setting name) -> overrides
    runs: list[Run]
    skipped: list[str] = field(default_factory=list)  # messages: models left out, and why
    comparisons: list[Any] = field(default_factory=list)

    # -- lookups -----------------------------------------------------------------------
    def replicates(self, dataset: str) -> int:
        return int(self.datasets[dataset]["replicates"])

    def task(self, dataset: str) -> str:
        return self.datasets[dataset]["task"]

    def family(self, model: str) -> str:
        return self.models[model].spec.name

    def run_settings(self, run: Run) -> tuple[dict[str, Any], dict[str, Any]]:
        """(params, train) of a run: the model's, under the run's setting."""
        model = self.models[run.model]
        params, train = apply_setting(model, self.config["train"],
                                      self.settings[(run.model, run.setting)])
        return backbone_params(self.config, model, params), train

    def find_run(self, dataset: str, replicate: int, model: str, graph: str, setting: str,
                 seed: int) -> Run:
        key = (dataset, int(replicate), model, graph, setting, int(seed))
        for r in self.runs:
            if r.key == key:
                return r
        raise KeyError(key)

    def graph_builds(self) -> list[tuple[str, int, str]]:
        """(dataset, replicate, variant) of every graph some run uses, bases included."""
        need = {(r.dataset, r.replicate, r.graph) for r in self.runs if r.graph != NO_GRAPH}
        todo = list(need)
        while todo:
            d, rep, g = todo.pop()
            _, base = variant_dependencies(g, self.graphs[g])
            if base and (d, rep, base) not in need:
                need.add((d, rep, base))
                todo.append((d, rep, base))
        return sorted(need)

    def prepared(self) -> list[tuple[str, int]]:
        return sorted({(r.dataset, r.replicate) for r in self.runs})

    def databases_used(self) -> list[str]:
        dbs = set()
        for _, _, g in self.graph_builds():
            dbs |= set(variant_dependencies(g, self.graphs[g])[0])
        return sorted(dbs)

    def random_controls(self) -> dict[str, str]:
        return random_controls(self.graphs)

    def runs_on(self, dataset: str, model: str, graph: str = NO_GRAPH) -> bool:
        """Whether ``model`` on ``graph`` runs on ``dataset``: the model's tasks, the
        dataset's ``models:`` list and the graph's ``datasets:`` list allow it."""
        if model not in self.models or self.task(dataset) not in self.models[model].tasks:
            return False
        only = self.datasets[dataset].get("models")
        if only and model not in only:
            return False
        allowed = graph_datasets(self.graphs, graph)
        return allowed is None or dataset in allowed

    def graph_kind(self, graph: str) -> str:
        return graph_kind(self.graphs, graph)

    def graph_spec(self, graph: str, replicate: int) -> dict[str, Any]:
        """What ``build-graph`` is given for ``graph`` on one replicate: the variant's entry
        without its ``datasets:`` list; a random control draws a fresh seed per replicate
        (its ``seed`` plus the replicate)."""
        spec = dict(self.graphs[graph] or {})
        if self.graph_kind(graph) == "random":
            spec["seed"] = int(spec.get("seed", 0)) + int(replicate)
        spec.pop("datasets", None)
        return spec

    def study(self, name: str) -> dict[str, Any] | None:
        return study_section(self.config, name)

    def to_json(self) -> dict[str, Any]:
        """What the report stage reads (results/plan.json)."""
        return {
            "datasets": {d: {"task": s["task"], "replicates": s["replicates"],
                             "main": d in self.main_datasets} for d, s in self.datasets.items()},
            "models": {m: {"family": r.spec.name, "group": r.spec.group,
                           "interface": r.spec.interface, "graph": r.spec.graph,
                           "params": r.params, "graphs": r.graphs, "tasks": list(r.tasks)}
                       for m, r in self.models.items()},
            "graphs": {g: {"kind": self.graph_kind(g)} for g in self.graphs},
            "random_controls": self.random_controls(),
            "settings": {f"{m}/{n}": s.as_dict() for (m, n), s in self.settings.items()},
            "runs": [r.as_dict() for r in self.runs],
            "comparisons": [c.as_dict() for c in self.comparisons],
            "report": report_section(self.config),
            "studies": self.config.get("studies") or {},
            "skipped": self.skipped,
        }


def study_section(config: dict[str, Any], name: str) -> dict[str, Any] | None:
    section = (config.get("studies") or {}).get(name)
    if not section or not section.get("enabled", True):
        return None
    return section


def report_section(config: dict[str, Any]) -> dict[str, Any]:
    rep = dict(config.get("report") or {})
    rep.setdefault("baseline", "transformer")
    rep.setdefault("alpha", 0.05)
    rep.setdefault("equivalence_margin", 0.02)
    return rep


# -- backbones ---------------------------------------------------------------------------
def model_backbone(config: dict[str, Any], model: ResolvedModel) -> tuple[str, str | None, bool] | None:
    """(key, checkpoint folder, fetched by the workflow) of a backbone model, else None.

    Folder precedence: params.checkpoint, backbones.<key>.checkpoint, the folder fetched from
    backbones.<key>.files; None when nothing is configured (the model is then skipped)."""
    if model.spec.backbone is None:
        return None
    key = model.params.get("backbone") or model.spec.backbone
    entry = (config.get("backbones") or {}).get(key) or {}
    if model.params.get("checkpoint"):
        return key, str(model.params["checkpoint"]), False
    if entry.get("checkpoint"):
        return key, str(entry["checkpoint"]), False
    if entry.get("files"):
        return key, f"{CHECKPOINT_ROOT}/{key}", True
    return key, None, False


def backbone_params(config: dict[str, Any], model: ResolvedModel, params: dict[str, Any]
                    ) -> dict[str, Any]:
    source = model_backbone(config, model)
    if source is None or source[1] is None:
        return params
    return {**params, "checkpoint": source[1]}


# -- building ----------------------------------------------------------------------------
def _datasets(config: dict[str, Any]) -> tuple[dict[str, dict[str, Any]], list[str]]:
    default_reps = int(config.get("replicates", 1))
    out = {}
    for name, spec in (config.get("datasets") or {}).items():
        spec = dict(spec)
        spec.setdefault("task", default_task(spec))
        spec.setdefault("replicates", default_reps)
        out[name] = spec
    main = list(out)
    positional = study_section(config, "positional")
    for name, spec in ((positional or {}).get("datasets") or {}).items():
        if name in out:
            raise ScgbError(f"positional dataset '{name}' is also a main dataset",
                            field=f"studies.positional.datasets.{name}",
                            fix="give the study's dataset its own name")
        spec = dict(spec)
        spec.setdefault("task", "annotation")
        spec.setdefault("replicates", default_reps)
        out[name] = spec
    return out, main


def _check_names(kind: str, names: list[str], known: dict | list, where: str) -> None:
    bad = [n for n in names if n not in known]
    if bad:
        raise ScgbError(f"{kind} {bad} not defined", field=where,
                        fix=f"use one of: {', '.join(sorted(known)) or '(none defined)'}")


def _study_replicates(section: dict[str, Any], n: int) -> list[int]:
    return list(range(min(int(section.get("replicates", n)), n)))


class _Runs:
    """Collects runs, deduplicated, in the order the studies ask for them."""

    def __init__(self, plan: Plan) -> None:
        self.plan, self.seen, self.out = plan, set(), []

    def add(self, dataset: str, model: str, graph: str, setting: str = DEFAULT,
            replicates: list[int] | None = None) -> None:
        plan = self.plan
        if not plan.runs_on(dataset, model, graph):
            return
        task = plan.task(dataset)
        reps = range(plan.replicates(dataset)) if replicates is None else replicates
        for rep in reps:
            for seed in plan.config["seeds"]:
                run = Run(dataset, rep, model, graph, setting, int(seed), task,
                          plan.family(model))
                if run.key not in self.seen:
                    self.seen.add(run.key)
                    self.out.append(run)


def _study_setting(plan: Plan, model: str, key: str, value: Any, study: str) -> str:
    name = setting_name(key, value)
    section, field_ = STUDY_KEYS[key]
    spec = plan.models[model].spec
    if section == "params":
        # checked now: a grid value a family does not accept fails before any job runs
        spec.check_params({**plan.models[model].params, field_: value},
                          where=f"studies.{study}.grid.{model}")
    plan.settings[(model, name)] = Setting(name, ((section, field_, value),), study)
    return name


def _expand_runs(plan: Plan) -> list[Run]:
    runs = _Runs(plan)
    tuned = {m: [s.name for (owner, _), s in plan.settings.items()
                 if owner == m and s.study == "tuning"] for m in plan.models}
    for dataset in plan.main_datasets:
        for model, resolved in plan.models.items():
            for graph in resolved.graphs or [NO_GRAPH]:
                runs.add(dataset, model, graph)
                for setting in tuned[model]:
                    runs.add(dataset, model, graph, setting)

    def datasets_of(section: dict[str, Any], where: str, task: str | None = None) -> list[str]:
        names = section.get("datasets") or plan.main_datasets
        _check_names("datasets", names, plan.main_datasets, f"{where}.datasets")
        return [d for d in names if task is None or plan.task(d) == task]

    def models_of(section: dict[str, Any], where: str) -> list[str]:
        names = section.get("models") or list(plan.models)
        _check_names("models", names, plan.models, f"{where}.models")
        return names

    def first_graph(model: str) -> str:
        return (plan.models[model].graphs or [NO_GRAPH])[0]

    section = plan.study("few_shot")
    if section:
        for dataset in datasets_of(section, "studies.few_shot", "annotation"):
            reps = _study_replicates(section, plan.replicates(dataset))
            for model in models_of(section, "studies.few_shot"):
                for frac in section["fractions"]:
                    setting = (DEFAULT if frac == 1 else
                               _study_setting(plan, model, "frac", frac, "few_shot"))
                    runs.add(dataset, model, first_graph(model), setting, reps)
    section = plan.study("sensitivity")
    if section:
        _check_names("models", list(section["grid"]), plan.models, "studies.sensitivity.grid")
        for dataset in datasets_of(section, "studies.sensitivity"):
            reps = _study_replicates(section, plan.replicates(dataset))
            for model, grid in section["grid"].items():
                for key, values in grid.items():
                    for value in values:
                        setting = _study_setting(plan, model, key, value, "sensitivity")
                        runs.add(dataset, model, first_graph(model), setting, reps)
    section = plan.study("ablation")
    if section:
        for label, arm in section["arms"].items():
            where = f"studies.ablation.arms.{label}"
            _check_names("models", [arm["model"]], plan.models, f"{where}.model")
            _check_names("graphs", [arm["graph"]], [*plan.graphs, NO_GRAPH], f"{where}.graph")
        for dataset in datasets_of(section, "studies.ablation"):
            reps = _study_replicates(section, plan.replicates(dataset))
            for arm in section["arms"].values():
                runs.add(dataset, arm["model"], arm["graph"], DEFAULT, reps)
    section = plan.study("positional")
    if section:
        models = models_of(section, "studies.positional")
        graph = section.get("graph")
        if graph:
            _check_names("graphs", [graph], plan.graphs, "studies.positional.graph")
        for dataset in section["datasets"]:
            reps = _study_replicates(section, plan.replicates(dataset))
            for model in models:
                g = (graph or first_graph(model)) if plan.models[model].spec.uses_graph \
                    else NO_GRAPH
                if g == NO_GRAPH and plan.models[model].spec.needs_graph:
                    continue
                for pe in (False, True):
                    setting = _study_setting(plan, model, "pe", pe, "positional")
                    runs.add(dataset, model, g, setting, reps)
    return runs.out


def _check_baselines(plan: Plan) -> None:
    """Every main comparison carries the simple baselines (logistic regression, train-mean)."""
    for dataset in plan.main_datasets:
        task = plan.task(dataset)
        family = ANNOTATION_BASELINE if task == "annotation" else PERTURBATION_BASELINE
        if not any(m.spec.name == family and plan.runs_on(dataset, name)
                   for name, m in plan.models.items()):
            raise ScgbError(
                f"the {task} dataset '{dataset}' has no '{family}' model to compare with",
                field="models",
                fix=f"add `{family}: {{}}` under models (every comparison carries the simple "
                    "baselines)",
            )
    baseline = (plan.config.get("report") or {}).get("baseline")
    if baseline is not None and baseline not in plan.models:  # the default may be absent:
        # its comparisons are then "not testable"; a named one must exist
        raise ScgbError(f"report.baseline '{baseline}' is not a configured model",
                        field="report.baseline", fix=f"use one of {sorted(plan.models)}")


def _resolve_models(config: dict[str, Any], skipped: list[str]) -> dict[str, ResolvedModel]:
    graphs = config.get("graphs") or {}
    models = {}
    for name, entry in (config.get("models") or {}).items():
        resolved = resolve_model(name, entry)
        _check_names("graph variants", resolved.graphs, graphs, f"models.{name}.graphs")
        source = model_backbone(config, resolved)
        if source is not None and source[1] is None:
            key = source[0]
            skipped.append(
                f"model '{name}' skipped: no checkpoint for backbone '{key}'; set "
                f"backbones.{key}.checkpoint to a local folder, or backbones.{key}.files to "
                "fetch one (docs/backbones.md)")
            continue
        models[name] = resolved
    return models


def build_plan(config: dict[str, Any]) -> Plan:
    """The plan of a schema-valid config (a deep copy is kept; the input is not changed)."""
    config = copy.deepcopy(config)
    config.setdefault("seeds", [0])
    check_graphs(config.get("graphs") or {}, config.get("databases") or {})
    datasets, main = _datasets(config)
    for name, g in (config.get("graphs") or {}).items():
        _check_names("datasets", list((g or {}).get("datasets") or []), datasets,
                     f"graphs.{name}.datasets")
    skipped: list[str] = []
    models = _resolve_models(config, skipped)
    for name, spec in datasets.items():
        _check_names("models", list(spec.get("models") or []), config.get("models") or {},
                     f"datasets.{name}.models")
    plan = Plan(config, datasets, main, models, dict(config.get("graphs") or {}), {}, [],
                skipped)
    for name, model in models.items():
        plan.settings[(name, DEFAULT)] = Setting(DEFAULT)
        default = apply_setting(model, config["train"], plan.settings[(name, DEFAULT)])
        for s in tuning_settings(config.get("tuning"), model):
            # grid values are checked now; a point equal to the default is the default run
            if apply_setting(model, config["train"], s) != default:
                plan.settings[(name, s.name)] = s
    _check_baselines(plan)
    plan.runs = _expand_runs(plan)
    from scgraphbench.plan.comparisons import declare_comparisons

    plan.comparisons = declare_comparisons(plan)
    return plan


@lru_cache(maxsize=8)
def _cached(blob: str) -> Plan:
    return build_plan(json.loads(blob))


def cached_plan(config: dict[str, Any]) -> Plan:
    """``build_plan`` memoised on the config's content (Snakemake calls it per job)."""
    return _cached(json.dumps(config, sort_keys=True, default=str))
