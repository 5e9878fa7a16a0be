"""The comparisons each table and claim makes, declared once, before any run exists.

A :class:`Comparison` names two arms, the metric, the datasets whose replicates are the
paired units, the hypothesis (what is claimed and how it is tested) and the family of
comparisons it is corrected with (Holm). An :class:`Arm` lists its candidate (model, graph)
pairs; with more than one, the report picks the candidate with the best mean *validation*
score per dataset and reports its *test* metric, so that nothing is chosen on test. With
``tuning:`` on, each candidate's setting is the tuning point chosen on validation per
replicate.

Claims compare exactly their arms: a graph model "on its prior" means the variants of kind
coexpr/grn/both/knn it runs on, never a random control; "prior beats random" pairs each model
on each prior graph with the same model on that graph's own degree-matched random control.
Datasets with an ``engine_check`` entry (planted positive/negative controls) are kept out of
the paper claims and feed the engine-check rows only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from scgraphbench.plan.runs import NO_GRAPH

GRAPH_MODEL_GROUPS = ("gnn", "graph_attention")
METRIC_OF_TASK = {"annotation": "macro_f1", "perturbation": "pearson_delta"}


@dataclass(frozen=True)
class Arm:
    label: str
    candidates: tuple[tuple[str, str], ...]  # (model, graph); > 1: chosen on validation

    @property
    def testable(self) -> bool:
        return bool(self.candidates)


@dataclass(frozen=True)
class Comparison:
    id: str
    table: str  # claims | main | perturbation | ablation | engine_check
    family: str  # Holm family
    claim: str
    source: str
    task: str
    datasets: tuple[str, ...]
    metric: str
    a: Arm
    b: Arm
    hypothesis: dict[str, Any]  # kind, direction, margin, paper_value (inference.Hypothesis)
    paper: str = ""  # the paper's statement of the size, in words

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["a"]["candidates"] = [list(c) for c in self.a.candidates]
        d["b"]["candidates"] = [list(c) for c in self.b.candidates]
        return d


def comparison_from_dict(d: dict[str, Any]) -> Comparison:
    d = dict(d)
    for key in ("a", "b"):
        arm = d[key]
        d[key] = Arm(arm["label"], tuple(tuple(c) for c in arm["candidates"]))
    d["datasets"] = tuple(d["datasets"])
    return Comparison(**d)


def _label(model: str, graph: str) -> str:
    return model if graph == NO_GRAPH else f"{model} · {graph}"


def declare_comparisons(plan: Any) -> list[Comparison]:
    rep = plan.config.get("report") or {}
    baseline = rep.get("baseline", "transformer")
    margin = float(rep.get("equivalence_margin", 0.02))
    controls = plan.random_controls()
    checks = {d: s["engine_check"] for d, s in plan.datasets.items() if s.get("engine_check")}
    benchmark = [d for d in plan.main_datasets if d not in checks]

    def on_task(task: str, datasets: list[str] | None = None) -> tuple[str, ...]:
        return tuple(d for d in (datasets if datasets is not None else benchmark)
                     if plan.task(d) == task)

    def is_prior(graph: str) -> bool:
        return graph != NO_GRAPH and plan.graph_kind(graph) != "random"

    def pairs(task: str, groups: tuple[str, ...] | None = None,
              families: tuple[str, ...] | None = None, prior_only: bool = True
              ) -> tuple[tuple[str, str], ...]:
        out = []
        for name, m in plan.models.items():
            if task not in m.tasks:
                continue
            if groups is not None and m.spec.group not in groups:
                continue
            if families is not None and m.spec.name not in families:
                continue
            for g in m.graphs or [NO_GRAPH]:
                if not prior_only or g == NO_GRAPH or is_prior(g):
                    if g != NO_GRAPH or not m.spec.needs_graph:
                        out.append((name, g))
        return tuple(out)

    def family_arm(label: str, family: str, task: str) -> Arm:
        return Arm(label, pairs(task, families=(family,)))

    def base_arm(task: str) -> Arm:
        m = plan.models.get(baseline)
        ok = m is not None and task in m.tasks
        return Arm(baseline, ((baseline, NO_GRAPH),) if ok else ())

    out: list[Comparison] = []

    def claim(id_: str, claim_: str, source: str, task: str, metric: str, a: Arm, b: Arm,
              hyp: dict[str, Any], paper: str = "", table: str = "claims",
              datasets: tuple[str, ...] | None = None, family: str | None = None) -> None:
        datasets = datasets if datasets is not None else on_task(task)
        if not datasets:  # no dataset of the claim's task: nothing to claim about
            return
        out.append(Comparison(id_, table, family or id_, claim_, source, task, datasets,
                              metric, a, b, {"alpha": float(rep.get("alpha", 0.05)), **hyp},
                              paper))

    gnn = Arm("best GNN on a prior graph", pairs("annotation", groups=("gnn",)))
    tf = base_arm("annotation")
    claim("gnn_competitive", "GNNs are competitive with dense Transformers on annotation",
          "arXiv 2507.04125", "annotation", "macro_f1", gnn, tf,
          {"kind": "equivalence", "margin": margin}, f"comparable accuracy (±{margin:g})")
    claim("gnn_compute", "GNNs need 1/4–1/2 of the Transformer's compute", "arXiv 2507.04125",
          "annotation", "time_per_step_s", gnn, tf,
          {"kind": "ratio", "direction": "less", "paper_value": [0.25, 0.5]}, "0.25–0.5×")
    claim("gnn_memory", "GNNs need 1/8 of the Transformer's memory", "arXiv 2507.04125",
          "annotation", "peak_memory_mb", gnn, tf,
          {"kind": "ratio", "direction": "less", "paper_value": 0.125}, "0.125×")
    geno = ("genohoption_ppr", "genohoption_heat")
    claim("genohoption_annotation", "GenoHoption improves annotation accuracy by 1.27%",
          "GenoHoption", "annotation", "accuracy",
          Arm("best GenoHoption on its prior graph", pairs("annotation", families=geno)), tf,
          {"kind": "superiority", "direction": "greater", "paper_value": 0.0127}, "+0.0127")
    claim("genohoption_perturbation", "GenoHoption improves perturbation prediction by 3.86%",
          "GenoHoption", "perturbation", "pearson_delta",
          Arm("best GenoHoption on its prior graph", pairs("perturbation", families=geno)),
          base_arm("perturbation"),
          {"kind": "superiority", "direction": "greater", "paper_value": 0.0386}, "+0.0386")

    def prior_vs_random(id_: str, claim_: str, task: str, datasets: tuple[str, ...],
                        graphs: list[str] | None, table: str, source: str) -> None:
        metric = METRIC_OF_TASK[task]
        for model, graph in pairs(task, groups=GRAPH_MODEL_GROUPS):
            if graph == NO_GRAPH or (graphs is not None and graph not in graphs):
                continue
            rnd = controls.get(graph)
            ok = rnd is not None and rnd in plan.models[model].graphs
            claim(f"{id_}:{model}:{graph}", claim_, source, task, metric,
                  Arm(_label(model, graph), ((model, graph),)),
                  Arm(_label(model, rnd or f"random {graph}"), ((model, rnd),) if ok else ()),
                  {"kind": "superiority", "direction": "greater"}, "prior > random",
                  table=table, datasets=datasets, family=id_)

    for task in ("annotation", "perturbation"):
        if on_task(task):
            prior_vs_random(f"prior_vs_random_{task}",
                            f"A gene-graph prior beats a degree-matched random graph ({task})",
                            task, on_task(task), None, "claims",
                            "scTransformer referee; GenoHoption")
    claim("logreg_vs_transformer", "Logistic regression beats Transformers on small data",
          "scrna_longformer baseline", "annotation", "macro_f1",
          family_arm("logreg", "logreg", "annotation"), tf,
          {"kind": "superiority", "direction": "greater"}, "logreg > Transformer")
    graph_ann = Arm("best graph model on a prior graph",
                    pairs("annotation", groups=GRAPH_MODEL_GROUPS))
    claim("graph_vs_logreg", "The best graph model beats logistic regression", "this benchmark",
          "annotation", "macro_f1", graph_ann, family_arm("logreg", "logreg", "annotation"),
          {"kind": "superiority", "direction": "greater"}, "graph model > logreg")
    graph_pert = Arm("best graph model on a prior graph",
                     pairs("perturbation", groups=GRAPH_MODEL_GROUPS))
    claim("graph_vs_mean", "The best graph model beats the train-mean baseline",
          "this benchmark", "perturbation", "pearson_delta", graph_pert,
          family_arm("mean_baseline", "mean_baseline", "perturbation"),
          {"kind": "superiority", "direction": "greater"}, "graph model > train mean")
    claim("graph_vs_additive",
          "The best graph model beats the additive baseline on combinations whose single "
          "perturbations both have training cells", "Ahlmann-Eltze et al. 2025", "perturbation",
          "subgroups/combo_singles_trained/pearson_delta", graph_pert,
          family_arm("additive_baseline", "additive_baseline", "perturbation"),
          {"kind": "superiority", "direction": "greater"}, "graph model > additive")
    claim("graph_vs_linear", "The best graph model beats the linear baseline on unseen singles",
          "Ahlmann-Eltze et al. 2025", "perturbation", "subgroups/unseen_single/pearson_delta",
          graph_pert, family_arm("linear_baseline", "linear_baseline", "perturbation"),
          {"kind": "superiority", "direction": "greater"}, "graph model > linear")

    # engine checks: a planted prior must be found, a shuffled one must not be
    for dataset, check in checks.items():
        task = plan.task(dataset)
        for role in ("positive", "negative"):
            graph = check.get(role)
            if graph:
                prior_vs_random(
                    f"engine_{role}:{dataset}",
                    f"Engine check ({role} control): the {'planted' if role == 'positive' else 'shuffled'} "
                    f"graph '{graph}' beats its degree-matched random control on '{dataset}'",
                    task, (dataset,), [graph], "engine_check", "planted data")

    # the tables' comparisons: every model vs the baseline and vs its random control
    for dataset in plan.main_datasets:
        task = plan.task(dataset)
        table = "main" if task == "annotation" else "perturbation"
        metric = METRIC_OF_TASK[task]
        for model, graph in pairs(task, prior_only=False):
            if not plan.runs_on(dataset, model, graph):
                continue
            a = Arm(_label(model, graph), ((model, graph),))
            if (model, graph) != (baseline, NO_GRAPH) and plan.runs_on(dataset, baseline):
                claim(f"{table}:{dataset}:{model}:{graph}:vs_baseline",
                      f"{_label(model, graph)} vs {baseline}", "", task, metric, a,
                      base_arm(task), {"kind": "two_sided"}, table=table,
                      datasets=(dataset,), family=f"{table}:{dataset}:vs_baseline")
            rnd = controls.get(graph)
            if rnd and rnd in plan.models[model].graphs and plan.runs_on(dataset, model, rnd):
                claim(f"{table}:{dataset}:{model}:{graph}:vs_random",
                      f"{_label(model, graph)} vs {rnd}", "", task, metric, a,
                      Arm(_label(model, rnd), ((model, rnd),)), {"kind": "two_sided"},
                      table=table, datasets=(dataset,), family=f"{table}:{dataset}:vs_random")
    section = plan.study("ablation")
    if section:
        arms = section["arms"]
        full_label = next(iter(arms))
        full = arms[full_label]
        for dataset in section.get("datasets") or plan.main_datasets:
            task = plan.task(dataset)
            for label, arm in list(arms.items())[1:]:
                claim(f"ablation:{dataset}:{label}", f"{label} vs {full_label}", "", task,
                      METRIC_OF_TASK[task], Arm(label, ((arm["model"], arm["graph"]),)),
                      Arm(full_label, ((full["model"], full["graph"]),)),
                      {"kind": "two_sided"}, table="ablation", datasets=(dataset,),
                      family=f"ablation:{dataset}")
    return out
