wildcard_constraints:
    seed=r"\d+",
    setting=r"default|[a-z]+-[0-9a-z.e+-]+",


rule train:
    input:
        prepared="results/prepared/{dataset}.h5ad",
        graph=graph_input,
        checkpoint=backbone_input,
    output:
        metrics="results/runs/{dataset}/{model}/{graph}/{setting}/seed{seed}/metrics.json",
    params:
        family=lambda wc: model_spec(wc.model)["family"],
        hparams=lambda wc: as_json(backbone_params(wc.model, run_params(wc.model, wc.setting))),
        train=lambda wc: as_json(run_train(wc.model, wc.setting)),
        meta=lambda wc: as_json(
            dict(dataset=wc.dataset, model=wc.model, graph=wc.graph, setting=wc.setting)
        ),
        graph_arg=lambda wc, input: f"--graph {input.graph}" if input.graph else "",
        out_dir=lambda wc, output: os.path.dirname(output.metrics),
    log:
        "logs/train/{dataset}/{model}/{graph}/{setting}/seed{seed}.log",
    benchmark:
        "results/benchmarks/rules/train/{dataset}/{model}/{graph}/{setting}/seed{seed}.tsv"
    conda:
        "../../envs/scgraphbench.yaml"
    threads: 1
    resources:
        mem_mb=scaled(3000, per_input_mb=4),
        runtime=scaled(60, per_input_mb=0.1),
        gpu=train_gpus,
        gpu_model=train_gpu_model,
    shell:
        "{SCGB} train --prepared {input.prepared} {params.graph_arg} "
        "--family {params.family} --params '{params.hparams}' --train '{params.train}' "
        "--seed {wildcards.seed} --meta '{params.meta}' --out-dir {params.out_dir} > {log} 2>&1"
