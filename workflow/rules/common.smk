# Config validation and the small functions that turn the config into job lists.
import json

from snakemake.utils import validate

validate(config, schema="../schemas/config.schema.yaml")

SCGB = "python -m scgraphbench"
NO_GRAPH = "none"


def as_json(obj):
    """Config sections go to the CLI as JSON; sorted keys keep params change-tracking stable."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def dataset_spec(name):
    return config["datasets"][name]


def model_spec(name):
    spec = dict(config["models"][name] or {})
    spec.setdefault("family", name)
    spec.setdefault("params", {})
    spec.setdefault("graphs", [])
    return spec


def train_settings(model):
    return {**config["train"], **model_spec(model).get("train", {})}


def model_graphs(model):
    """Graph variants a model runs on; graph-free families run once on 'none'."""
    return model_spec(model)["graphs"] or [NO_GRAPH]


def runs():
    """Every (dataset, model, graph, seed) of the main comparison."""
    for dataset in config["datasets"]:
        for model in config["models"]:
            for graph in model_graphs(model):
                for seed in config["seeds"]:
                    yield dict(dataset=dataset, model=model, graph=graph, seed=seed)


def run_metrics():
    return [
        "results/runs/{dataset}/{model}/{graph}/seed{seed}/metrics.json".format(**r) for r in runs()
    ]


def used_graphs():
    return sorted({g for m in config["models"] for g in model_graphs(m)} - {NO_GRAPH})


def graph_input(wildcards):
    if wildcards.graph == NO_GRAPH:
        return []
    return f"results/graphs/{wildcards.dataset}/{wildcards.graph}.npz"


def final_outputs():
    return [
        "results/tables/annotation.csv",
        "results/tables/graphs.csv",
        "results/figures/macro_f1_by_model.png",
        "results/figures/macro_f1_vs_cost.png",
    ]
