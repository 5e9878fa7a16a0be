# Config validation and the small functions that turn the config into job lists.
import json
import sys

from snakemake.utils import validate

validate(config, schema="../schemas/config.schema.yaml")

SCGB = "python -m scgraphbench"
NO_GRAPH = "none"
DEFAULT_SETTING = "default"
# a run setting is "default" or "<key>-<value>": one override of the model's defaults
SETTING_KEYS = {
    "frac": ("train", "train_fraction"),
    "alpha": ("params", "alpha"),
    "steps": ("params", "steps"),
    "t": ("params", "t"),
    "pe": ("params", "positional"),
}


def as_json(obj):
    """Config sections go to the CLI as JSON; sorted keys keep params change-tracking stable."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def dataset_spec(name):
    return all_datasets()[name]


def model_spec(name):
    spec = dict(config["models"][name] or {})
    spec.setdefault("family", name)
    spec.setdefault("params", {})
    spec.setdefault("graphs", [])
    return spec


def model_tasks(model):
    from scgraphbench.models.tasks import family_tasks

    return model_spec(model).get("tasks") or family_tasks(model_spec(model)["family"])


def dataset_task(name):
    return dataset_spec(name).get("task", "annotation")


def model_graphs(model):
    """Graph variants a model runs on; graph-free families run once on 'none'."""
    return model_spec(model)["graphs"] or [NO_GRAPH]


def setting_name(key, value):
    if isinstance(value, bool):
        value = "on" if value else "off"
    return f"{key}-{value}"


def setting_overrides(setting):
    """'alpha-0.1' -> ('params', 'alpha', 0.1); 'default' -> None."""
    if setting == DEFAULT_SETTING:
        return None
    key, _, raw = setting.partition("-")
    section, field = SETTING_KEYS[key]
    value = {"on": True, "off": False}.get(raw)
    if value is None:
        value = float(raw) if any(c in raw for c in ".e") else int(raw)
    return section, field, value


def run_params(model, setting):
    params = dict(model_spec(model)["params"])
    over = setting_overrides(setting)
    if over and over[0] == "params":
        params[over[1]] = over[2]
    return params


def run_train(model, setting):
    train = {**config["train"], **model_spec(model).get("train", {})}
    over = setting_overrides(setting)
    if over and over[0] == "train":
        train[over[1]] = over[2]
    return train


def study(name):
    """A study's config section, or None when it is off."""
    section = config.get("studies", {}).get(name)
    if not section or not section.get("enabled", True):
        return None
    return section


def study_models(section):
    return [m for m in section.get("models", config["models"]) if m in config["models"]]


def datasets_for(section=None, task=None):
    names = (section or {}).get("datasets") or list(config["datasets"])
    return [d for d in names if task is None or dataset_task(d) == task]


def study_datasets():
    """Datasets that exist only for a study (the synthetic positional-relevance data)."""
    section = study("positional")
    return dict(section["datasets"]) if section else {}


def all_datasets():
    return {**config["datasets"], **study_datasets()}


SKIP_MESSAGES = set()


def runs():
    """Every (dataset, model, graph, setting, seed) that some enabled study needs, deduplicated.

    Backbone models without a configured checkpoint are left out, with a message."""
    seen = set()
    out = []

    def add(dataset, model, graph, setting=DEFAULT_SETTING, seeds=None):
        if dataset_task(dataset) not in model_tasks(model):
            return
        reason = backbone_skip_reason(model)
        if reason:
            if reason not in SKIP_MESSAGES:
                SKIP_MESSAGES.add(reason)
                print(reason, file=sys.stderr)
            return
        for seed in seeds or config["seeds"]:
            key = (dataset, model, graph, setting, seed)
            if key not in seen:
                seen.add(key)
                out.append(dict(dataset=dataset, model=model, graph=graph, setting=setting, seed=seed))

    # main comparison: every dataset x model x graph x seed
    for dataset in config["datasets"]:
        for model in config["models"]:
            for graph in model_graphs(model):
                add(dataset, model, graph)
    section = study("few_shot")
    if section:
        for dataset in datasets_for(section, "annotation"):
            for model in study_models(section):
                for frac in section["fractions"]:
                    setting = DEFAULT_SETTING if frac == 1 else setting_name("frac", frac)
                    add(dataset, model, model_graphs(model)[0], setting, section.get("seeds"))
    section = study("sensitivity")
    if section:
        for dataset in datasets_for(section):
            for model, grid in section["grid"].items():
                for key, values in grid.items():
                    for value in values:
                        add(dataset, model, model_graphs(model)[0], setting_name(key, value),
                            section.get("seeds"))
    section = study("ablation")
    if section:
        for dataset in datasets_for(section):
            for arm in section["arms"].values():
                add(dataset, arm["model"], arm["graph"], DEFAULT_SETTING, section.get("seeds"))
    section = study("positional")
    if section:
        for dataset in section["datasets"]:
            for model in section["models"]:
                # the synthetic genes are independent: co-expression finds no edges there,
                # so graph models use the study's own graph (e.g. knn)
                graph = section.get("graph", model_graphs(model)[0])
                graph = graph if model_spec(model)["graphs"] else NO_GRAPH
                for pe in (False, True):
                    add(dataset, model, graph, setting_name("pe", pe), section.get("seeds"))
    return out


def run_path(r, name="metrics.json"):
    return "results/runs/{dataset}/{model}/{graph}/{setting}/seed{seed}/".format(**r) + name


def run_metrics():
    return [run_path(r) for r in runs()]


def used_graphs(dataset=None):
    """Graph variants some run needs (on one dataset, or anywhere)."""
    return sorted({r["graph"] for r in runs() if dataset in (None, r["dataset"])} - {NO_GRAPH})


def graph_stats_files():
    datasets = sorted({r["dataset"] for r in runs()})
    return [f"results/graphs/{d}/{g}.stats.json" for d in datasets for g in used_graphs(d)]


def graph_input(wildcards):
    if wildcards.graph == NO_GRAPH:
        return []
    return f"results/graphs/{wildcards.dataset}/{wildcards.graph}.npz"


STUDIES = ["main", "cost", "few_shot", "sensitivity", "ablation", "positional", "scaling"]


def enabled_studies():
    """'main' and 'cost' always; the others when switched on in config['studies']."""
    tasks = {dataset_task(d) for d in config["datasets"]}
    names = ["main", "cost"] + [s for s in STUDIES[2:] if study(s)]
    if "perturbation" in tasks:
        names.append("perturbation")
    if "annotation" not in tasks:
        names.remove("main")
    return names


def report_settings():
    """What the report needs to know of the config: studies, baselines, random controls."""
    graphs = config["graphs"]
    random_of = {
        g["base"]: name for name, g in graphs.items() if g and g.get("kind") == "random" and "base" in g
    }
    return {
        "studies": config.get("studies", {}),
        "baseline": config.get("report", {}).get("baseline", "transformer"),
        "alpha": config.get("report", {}).get("alpha", 0.05),
        "random_control": random_of,
        "families": {m: model_spec(m)["family"] for m in config["models"]},
    }


def bench_setting(key, default):
    return (config.get("benchmarks", {}).get("attention") or {}).get(key, default)


def final_outputs():
    outputs = ["results/tables/runs.csv", "results/tables/graphs.csv", "results/tables/claims.csv"]
    for name in enabled_studies():
        outputs += [f"results/tables/{name}.csv", f"results/figures/{name}.png"]
    if bench_setting("enabled", False):
        outputs.append("results/figures/attention_cost.png")
    return outputs


# -- cluster resources (profiles/slurm; docs/cluster.md) --------------------------------
def cluster_settings():
    """The config's `cluster:` section with its defaults: no GPU unless a family is listed."""
    return {"gpu_families": [], "gpu": 1, "gpu_model": None, **(config.get("cluster") or {})}


def train_gpus(wildcards):
    """GPUs a training job requests: cluster.gpu for families in cluster.gpu_families, else 0."""
    settings = cluster_settings()
    family = model_spec(wildcards.model)["family"]
    return int(settings["gpu"]) if family in settings["gpu_families"] else 0


def train_gpu_model(wildcards):
    """GPU model for `--gpus=<model>:<n>`; None (resource left out) for CPU jobs or any model."""
    return cluster_settings()["gpu_model"] if train_gpus(wildcards) else None


def scaled(base, per_input_mb=0.0):
    """A resource callable: base + per_input_mb * (input size in MB), times the attempt, so a
    job retried after running out of memory or time asks for more."""

    def resource(wildcards, input, attempt):
        return int((base + per_input_mb * input.size_mb) * attempt)

    return resource


# -- dataset inputs (workflow/rules/data.smk) -------------------------------------------
def dataset_inputs(wildcards):
    """What prepare_dataset reads: the download manifest of a registry dataset that names no
    local copy, else the local files its entry names (none for built-in/synthetic sources)."""
    from scgraphbench.data.datasets import local_inputs, needs_download

    spec = dataset_spec(wildcards.dataset)
    if needs_download(spec):
        return f"resources/datasets/{wildcards.dataset}/manifest.json"
    return local_inputs(spec)


def _fill_dataset_tasks():
    """Each dataset entry's task from its source when the config leaves it out (the schema
    cannot: a registry dataset such as norman is a perturbation dataset)."""
    from scgraphbench.data.datasets import default_task

    for spec in all_datasets().values():
        if isinstance(spec, dict):
            spec.setdefault("task", default_task(spec))


_fill_dataset_tasks()


# -- compute estimate (config `estimate:`; printed by every run, dry runs included) ---------
def print_compute_estimate():
    est = config.get("estimate")
    if not est:
        return
    from scgraphbench.report.estimate import estimate_jobs, summary_text

    jobs = []
    for r in runs():
        spec = dataset_spec(r["dataset"])
        train = run_train(r["model"], r["setting"])
        cells = est.get("train_cells", {}).get(r["dataset"], est.get("default_train_cells", 1000))
        jobs.append(
            dict(
                family=model_spec(r["model"])["family"],
                n_genes=spec.get("n_top_genes") or est.get("default_genes", 3000),
                n_train_cells=cells * train.get("train_fraction", 1.0),
                epochs=train.get("epochs", 20),
                batch_size=train.get("batch_size", 32),
            )
        )
    table = estimate_jobs(jobs, est.get("families", {}), est.get("default_family"))
    print(summary_text(table, est.get("device", "device")), file=sys.stderr)
