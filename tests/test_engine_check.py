"""The engine finds a planted effect and does not invent one (issue 12).

config/engine_check.yaml's planted data (cell types written into TF modules) is run through
the plan, every stage function the workflow's rules call, and the claims: the planted GRN
must beat its degree-matched random control (`supported`), the same GRN with its targets
shuffled must not (`inconclusive` or `contradicted`). The workflow itself runs that config
with ``snakemake --configfile config/engine_check.yaml``; here the same stages run in this
process (and two workers) to keep the suite fast, with the config's value-passing GNN arm
only (the token families do not find the planted GRN: docs/verdicts.md)."""

from __future__ import annotations

import json
import multiprocessing as mp
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pandas as pd
import pytest
import yaml

from scgraphbench.plan import NO_GRAPH, build_plan

REPO = Path(__file__).resolve().parents[1]
ENGINE_MODELS = ("logreg", "gnn_value")

pytestmark = pytest.mark.usefixtures("one_thread")


def engine_config() -> dict:
    cfg = yaml.safe_load((REPO / "config" / "engine_check.yaml").read_text())
    cfg["models"] = {m: cfg["models"][m] for m in ENGINE_MODELS}
    return cfg


def _train(job: tuple) -> str:
    import torch

    from scgraphbench.train.run import run

    prepared, graph, family, params, train, seed, out, meta = job
    torch.set_num_threads(1)
    run(prepared, graph, family, params, train, seed, out, meta=meta)
    return str(Path(out) / "metrics.json")


def run_plan_in_process(cfg: dict, root: Path) -> pd.DataFrame:
    """Every stage of the plan's runs, in dependency order, as the workflow's rules call
    them: databases, prepared replicates, graphs (bases before their random controls),
    training, then the claims table."""
    import anndata as ad

    from scgraphbench.data.datasets import prepare_dataset
    from scgraphbench.graphs.build import build_variant
    from scgraphbench.graphs.databases import fetch_database
    from scgraphbench.graphs.spec import variant_dependencies
    from scgraphbench.report.aggregate import load_runs
    from scgraphbench.report.claims import compute_claims

    plan = build_plan(cfg)
    tables = {}
    for db in plan.databases_used():
        tables[db] = root / "databases" / f"{db}.csv.gz"
        fetch_database(db, cfg["databases"][db], tables[db], cache_dir=root / "databases/raw")
    prepared: dict[tuple, Path] = {}
    adatas: dict[tuple, ad.AnnData] = {}
    for dataset, rep in plan.prepared():
        adatas[dataset, rep] = prepare_dataset(dataset,
                                               {**plan.datasets[dataset], "replicate": rep})
        prepared[dataset, rep] = path = root / "prepared" / dataset / f"rep{rep}.h5ad"
        path.parent.mkdir(parents=True, exist_ok=True)
        adatas[dataset, rep].write_h5ad(path)
    graphs: dict[tuple, Path] = {}
    todo = plan.graph_builds()
    while todo:  # bases first: a random control reads its base graph
        for d, rep, g in list(todo):
            dbs, base = variant_dependencies(g, plan.graphs[g])
            if base and (d, rep, base) not in graphs:
                continue
            built = build_variant(adatas[d, rep], g, plan.graph_spec(g, rep),
                                  databases={db: tables[db] for db in dbs} or None,
                                  base=str(graphs[d, rep, base]) if base else None)
            graphs[d, rep, g] = path = root / "graphs" / d / f"rep{rep}" / f"{g}.npz"
            path.parent.mkdir(parents=True, exist_ok=True)
            built.save(path)
            todo.remove((d, rep, g))
    jobs = []
    for r in plan.runs:
        params, train = plan.run_settings(r)
        graph = None if r.graph == NO_GRAPH else str(graphs[r.dataset, r.replicate, r.graph])
        meta = {**r.as_dict(), "effective_seed": r.effective_seed}
        jobs.append((str(prepared[r.dataset, r.replicate]), graph, r.family, params, train,
                     r.effective_seed, str(root / Path(r.path()).parent), meta))
    with ProcessPoolExecutor(2, mp_context=mp.get_context("spawn")) as pool:
        metrics = list(pool.map(_train, jobs))
    plan_json = json.loads(json.dumps(plan.to_json()))
    runs = load_runs(metrics, plan_json)
    runs.to_csv(root / "runs.csv", index=False)
    return compute_claims(runs, plan_json)


@pytest.fixture(scope="module")
def engine_claims(tmp_path_factory) -> pd.DataFrame:
    claims = run_plan_in_process(engine_config(), tmp_path_factory.mktemp("engine"))
    return claims[claims["table"] == "engine_check"]


def _verdicts(claims: pd.DataFrame, role: str) -> pd.DataFrame:
    rows = claims[claims["family"].str.startswith(f"engine_{role}:")]
    assert not rows.empty, f"no {role} engine-check rows"
    return rows


@pytest.mark.slow
def test_planted_grn_beats_its_random_control(engine_claims):
    rows = _verdicts(engine_claims, "positive")
    print(rows.to_string())
    arm = rows[rows["comparison"].str.contains(":gnn_value:")]
    assert len(arm) == 1 and arm["n_pairs"].iloc[0] == engine_config()["replicates"]
    assert (arm["verdict"] == "supported").all(), arm.to_string()
    assert (arm["estimate"] > 0).all()


@pytest.mark.slow
def test_shuffled_grn_is_never_supported(engine_claims):
    rows = _verdicts(engine_claims, "negative")
    print(rows.to_string())
    assert rows["verdict"].isin(["inconclusive", "contradicted"]).all(), rows.to_string()


def test_random_controls_draw_a_fresh_seed_per_replicate():
    plan = build_plan(engine_config())
    specs = [plan.graph_spec("random_planted_grn", rep) for rep in range(3)]
    assert [s["seed"] for s in specs] == [0, 1, 2]
    assert "datasets" not in plan.graph_spec("planted_grn", 0)
