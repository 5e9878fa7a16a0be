# Pretrained backbones (scGPT, Geneformer): a model of family backbone_* loads a checkpoint
# folder, given by params.checkpoint or backbones.<key>.checkpoint, or fetched once from
# backbones.<key>.files into resources/checkpoints/<key>/ (checksummed where the config pins
# a sha256; MANIFEST.json records every file's sha256 as downloaded so that it can be pinned).
# <key> is the model's params.backbone, else "scgpt" / "geneformer" by family.
import os

from scgraphbench.models._backbone_common import CHECKPOINT_ROOT, backbone_source


def model_backbone(model):
    """BackboneSource of a model (key, folder, fetch), or None for other families."""
    return backbone_source(model_spec(model), config.get("backbones"))


def backbone_skip_reason(model):
    """A message when a backbone model has no checkpoint configured (skip it), else None."""
    source = model_backbone(model)
    return source.skip_reason(model) if source else None


def backbone_input(wildcards):
    """Train-rule input: the fetched checkpoint's manifest when the workflow downloads it."""
    source = model_backbone(wildcards.model)
    if source and source.fetch:
        return [f"{CHECKPOINT_ROOT}/{source.key}/MANIFEST.json"]
    return []


def backbone_params(model, params):
    """A model's params with params.checkpoint set to its resolved checkpoint folder."""
    source = model_backbone(model)
    if source is None or source.folder is None:
        return params
    return {**params, "checkpoint": source.folder}


rule fetch_checkpoint:
    output:
        f"{CHECKPOINT_ROOT}/{{backbone}}/MANIFEST.json",
    params:
        spec=lambda wc: as_json(config["backbones"][wc.backbone]),
        folder=lambda wc, output: os.path.dirname(output[0]),
    log:
        "logs/checkpoints/{backbone}.log",
    benchmark:
        "benchmarks/checkpoints/{backbone}.tsv"
    conda:
        "../../envs/scgraphbench.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=240,
    shell:
        "{SCGB} fetch-checkpoint --name {wildcards.backbone} --spec '{params.spec}' "
        "--out {params.folder} > {log} 2>&1"
