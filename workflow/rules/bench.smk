# Cost measurements: real training steps against sequence length (the scaling study) and the
# attention-kernel benchmark (off by default, on in config/paper.yaml).


rule scaling:
    output:
        "results/benchmarks/scaling.csv",
    params:
        models=lambda wc: as_json(scaling_models()),
        settings=lambda wc: as_json(PLAN.study("scaling")),
    log:
        "logs/benchmarks/scaling.log",
    benchmark:
        "results/benchmarks/rules/benchmarks/scaling.tsv"
    conda:
        "../../envs/scgraphbench.yaml"
    threads: 2
    resources:
        mem_mb=16000,
        runtime=240,
    shell:
        "python -m scgraphbench scaling --models '{params.models}' --settings '{params.settings}' "
        "--out {output} > {log} 2>&1"


rule bench_attention:
    output:
        csv="results/benchmarks/attention_cost.csv",
        figure=report(
            "results/figures/attention_cost.png",
            caption="../report/attention_cost.rst",
            category="Figures",
        ),
    params:
        sizes=lambda wc: " ".join(map(str, bench_setting("sizes", [500, 1000, 2000, 4000, 8000]))),
        degrees=lambda wc: " ".join(map(str, bench_setting("degrees", [13, 20, 33]))),
        reps=lambda wc: bench_setting("reps", 5),
        device=lambda wc: bench_setting("device", "auto"),
        script=os.path.join(workflow.basedir, "benchmarks", "attention_cost.py"),
    log:
        "logs/benchmarks/attention_cost.log",
    benchmark:
        "results/benchmarks/rules/benchmarks/attention_cost.tsv"
    conda:
        "../../envs/scgraphbench.yaml"
    threads: 2
    resources:
        mem_mb=20000,
        runtime=360,
    shell:
        "(python {params.script} --sizes {params.sizes} "
        "--degrees {params.degrees} --reps {params.reps} --device {params.device} "
        "--out-dir results/benchmarks/attention && "
        "cp results/benchmarks/attention/attention_cost.csv {output.csv} && "
        "cp results/benchmarks/attention/attention_cost.png {output.figure}) > {log} 2>&1"
