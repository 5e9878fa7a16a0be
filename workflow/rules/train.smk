wildcard_constraints:
    seed=r"\d+",


rule train:
    input:
        prepared="results/prepared/{dataset}.h5ad",
        graph=graph_input,
    output:
        metrics="results/runs/{dataset}/{model}/{graph}/seed{seed}/metrics.json",
        predictions="results/runs/{dataset}/{model}/{graph}/seed{seed}/predictions.csv",
    params:
        family=lambda wc: model_spec(wc.model)["family"],
        hparams=lambda wc: as_json(model_spec(wc.model)["params"]),
        train=lambda wc: as_json(train_settings(wc.model)),
        meta=lambda wc: as_json(
            dict(dataset=wc.dataset, model=wc.model, graph=wc.graph, study="main")
        ),
        graph_arg=lambda wc, input: f"--graph {input.graph}" if input.graph else "",
        out_dir=lambda wc, output: os.path.dirname(output.metrics),
    log:
        "logs/train/{dataset}/{model}/{graph}/seed{seed}.log",
    benchmark:
        "benchmarks/train/{dataset}/{model}/{graph}/seed{seed}.tsv"
    conda:
        "../../envs/scgraphbench.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    shell:
        "{SCGB} train --prepared {input.prepared} {params.graph_arg} "
        "--family {params.family} --params '{params.hparams}' --train '{params.train}' "
        "--seed {wildcards.seed} --meta '{params.meta}' --out-dir {params.out_dir} > {log} 2>&1"
