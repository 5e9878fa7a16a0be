# Config validation and the small input functions of the rules. The config is checked in
# full here, at parse time, before any job runs: the schema (types, ranges, known keys),
# then the plan (families, parameters, graph variants, studies, baselines); the plan also
# lists every run, so the rules below only look things up in it.
import json
import re
import sys

from snakemake.utils import validate

from scgraphbench.errors import ScgbError
from scgraphbench.plan import NO_GRAPH, cached_plan

validate(config, schema="../schemas/config.schema.yaml")

try:
    PLAN = cached_plan(config)
except ScgbError as _error:
    raise WorkflowError(f"invalid config: {_error}") from None
for _message in PLAN.skipped:
    print(_message, file=sys.stderr)


def as_json(obj):
    """Config sections go to the CLI as JSON; sorted keys keep params change-tracking stable."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def names_pattern(names):
    """A wildcard constraint matching exactly the given names."""
    return "|".join(re.escape(str(n)) for n in sorted(names)) or "(?!)"


# -- runs (workflow/rules/train.smk) ------------------------------------------------------
def find_run(wc):
    return PLAN.find_run(wc.dataset, wc.replicate, wc.model, wc.graph, wc.setting, wc.seed)


def run_metrics():
    return [r.path() for r in PLAN.runs]


def graph_input(wc):
    if wc.graph == NO_GRAPH:
        return []
    return f"results/graphs/{wc.dataset}/rep{wc.replicate}/{wc.graph}.npz"


def run_command_args(wc):
    """--params/--train/--seed/--meta of one run, from the plan."""
    run = find_run(wc)
    params, train = PLAN.run_settings(run)
    meta = {**run.as_dict(), "effective_seed": run.effective_seed}
    family_module = (config["models"][run.model] or {}).get("module")
    return (f"--params '{as_json(params)}' --train '{as_json(train)}' "
            f"--seed {run.effective_seed} --meta '{as_json(meta)}'"
            + (f" --family-module {family_module}" if family_module else ""))


# -- datasets (workflow/rules/data.smk) ---------------------------------------------------
def dataset_spec(name):
    return PLAN.datasets[name]


def dataset_inputs(wc):
    """What prepare_dataset reads: the download manifest of a registry dataset that names no
    local copy, else the local files its entry names (none for built-in/synthetic sources)."""
    from scgraphbench.data.sources import local_inputs, needs_download

    spec = dataset_spec(wc.dataset)
    if needs_download(spec):
        return f"resources/datasets/{wc.dataset}/manifest.json"
    return local_inputs(spec)


# -- graphs (workflow/rules/graphs.smk) ---------------------------------------------------
def database_table(db):
    return f"resources/databases/{db}.csv.gz"


def database_local_input(wc):
    """A database's local override file, so that editing it reruns the fetch."""
    path = (config.get("databases", {}).get(wc.db) or {}).get("path")
    return [path] if path else []


def graph_spec(wc):
    """The variant's entry for one replicate (the plan's rule: a fresh control seed each)."""
    return PLAN.graph_spec(wc.graph, wc.replicate)


def graph_build_inputs(wc):
    """The prepared dataset, plus the database tables (grn, both) or the base graph (random)."""
    from scgraphbench.graphs.spec import variant_dependencies

    dbs, base = variant_dependencies(wc.graph, config["graphs"][wc.graph])
    inputs = {"prepared": f"results/prepared/{wc.dataset}/rep{wc.replicate}.h5ad"}
    if dbs:
        inputs["databases"] = [database_table(db) for db in dbs]
    if base:
        inputs["base"] = f"results/graphs/{wc.dataset}/rep{wc.replicate}/{base}.npz"
    return inputs


def graph_build_args(wc, input):
    args = []
    if input.get("databases"):
        args.append("--databases " + " ".join(input.databases))
    if input.get("base"):
        args.append(f"--base {input.base}")
    return " ".join(args)


def graph_files(suffix):
    return [f"results/graphs/{d}/rep{r}/{g}{suffix}" for d, r, g in PLAN.graph_builds()]


# -- backbones (workflow/rules/backbones.smk) ---------------------------------------------
def backbone_input(wc):
    """Input of a train job: the fetched checkpoint's manifest when the workflow fetches one."""
    from scgraphbench.plan.build import CHECKPOINT_ROOT, model_backbone

    source = model_backbone(config, PLAN.models[wc.model])
    if source and source[2]:
        return [f"{CHECKPOINT_ROOT}/{source[0]}/MANIFEST.json"]
    return []


# -- report (workflow/rules/report.smk) ---------------------------------------------------
REPORT_STUDIES = ["main", "cost", "few_shot", "sensitivity", "ablation", "positional",
                  "scaling", "perturbation"]


def enabled_studies():
    """'main' and 'cost' always (main: with annotation data; perturbation: with
    perturbation data); the others when switched on in config['studies']."""
    tasks = {PLAN.task(d) for d in PLAN.main_datasets}
    names = [s for s in REPORT_STUDIES[2:-1] if PLAN.study(s)]
    if "scaling" in names and not scaling_models():
        names.remove("scaling")
    return (["main"] if "annotation" in tasks else []) + ["cost"] + names + (
        ["perturbation"] if "perturbation" in tasks else [])


def scaling_models():
    """{model: {family, params}} of the scaling study (default: every configured model)."""
    names = PLAN.study("scaling").get("models") or list(PLAN.models)
    return {m: {"family": PLAN.family(m), "params": PLAN.models[m].params}
            for m in names if m in PLAN.models}


def bench_setting(key, default):
    return (config.get("benchmarks", {}).get("attention") or {}).get(key, default)


def final_outputs():
    outputs = ["results/tables/runs.csv", "results/tables/graphs.csv",
               "results/tables/claims.csv", "results/summary.md",
               "results/figures/frontier.png"]
    for name in enabled_studies():
        outputs += [f"results/tables/{name}.csv", f"results/figures/{name}.png"]
    if bench_setting("enabled", False):
        outputs.append("results/figures/attention_cost.png")
    return outputs


# -- cluster resources (profiles/slurm; docs/cluster.md) --------------------------------
def cluster_settings():
    """The config's `cluster:` section with its defaults: no GPU unless a family is listed."""
    return {"gpu_families": [], "gpu": 1, "gpu_model": None, **(config.get("cluster") or {})}


def train_gpus(wc):
    """GPUs a training job requests: cluster.gpu for families in cluster.gpu_families, else 0."""
    settings = cluster_settings()
    return int(settings["gpu"]) if PLAN.family(wc.model) in settings["gpu_families"] else 0


def train_gpu_model(wc):
    """GPU model for `--gpus=<model>:<n>`; None (resource left out) for CPU jobs or any model."""
    return cluster_settings()["gpu_model"] if train_gpus(wc) else None


def scaled(base, per_input_mb=0.0):
    """A resource callable: base + per_input_mb * (input size in MB), times the attempt, so a
    job retried after running out of memory or time asks for more."""

    def resource(wildcards, input, attempt):
        return int((base + per_input_mb * input.size_mb) * attempt)

    return resource


# -- the fork server (scgraphbench.forkserver; docs/ARCHITECTURE.md) -----------------------
FORKSERVER = []


def start_forkserver():
    """Local runs without software deployment: jobs fork from one process that has done the
    heavy imports. SLURM jobs, --sdm runs and GPU machines start their own processes."""
    from scgraphbench.forkserver import start

    if workflow.local_exec and not workflow.deployment_settings.deployment_method:
        FORKSERVER.append(start("logs/forkserver.log"))


def stop_forkserver():
    from scgraphbench.forkserver import stop

    while FORKSERVER:
        stop(FORKSERVER.pop())


# -- compute estimate (config `estimate:`; printed by every run, dry runs included) ---------
def print_compute_estimate():
    est = config.get("estimate")
    if not est:
        return
    from scgraphbench.report.estimate import estimate_jobs, summary_text

    jobs = []
    for r in PLAN.runs:
        spec = dataset_spec(r.dataset)
        _, train = PLAN.run_settings(r)
        cells = est.get("train_cells", {}).get(r.dataset, est.get("default_train_cells", 1000))
        jobs.append(
            dict(
                family=r.family,
                n_genes=spec.get("n_top_genes") or est.get("default_genes", 3000),
                n_train_cells=cells * train.get("train_fraction", 1.0),
                epochs=train.get("epochs", 20),
                batch_size=train.get("batch_size", 32),
            )
        )
    table = estimate_jobs(jobs, est.get("families", {}), est.get("default_family"))
    print(summary_text(table, est.get("device", "device")), file=sys.stderr)
