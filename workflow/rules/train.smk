# One job per run of the plan: (dataset, replicate, model, graph, setting, seed).


rule train:
    input:
        prepared="results/prepared/{dataset}/rep{replicate}.h5ad",
        graph=graph_input,
        checkpoint=backbone_input,
    output:
        metrics="results/runs/{dataset}/rep{replicate}/{model}/{graph}/{setting}/seed{seed}/metrics.json",
    params:
        family=lambda wc: PLAN.family(wc.model),
        run=run_command_args,
        graph_arg=lambda wc, input: f"--graph {input.graph}" if input.graph else "",
        out_dir=lambda wc, output: os.path.dirname(output.metrics),
    log:
        "logs/train/{dataset}/rep{replicate}/{model}/{graph}/{setting}/seed{seed}.log",
    benchmark:
        "results/benchmarks/rules/train/{dataset}/rep{replicate}/{model}/{graph}/{setting}/seed{seed}.tsv"
    conda:
        "../../envs/scgraphbench.yaml"
    threads: 1
    resources:
        mem_mb=scaled(3000, per_input_mb=4),
        runtime=scaled(60, per_input_mb=0.1),
        gpu=train_gpus,
        gpu_model=train_gpu_model,
    shell:
        "python -m scgraphbench train --prepared {input.prepared} {params.graph_arg} "
        "--family {params.family} {params.run} --out-dir {params.out_dir} > {log} 2>&1"
