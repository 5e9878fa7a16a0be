"""Adding a family is one file and one config entry: the file declares its contract
(``FAMILY = FamilySpec(...)``) and its class; ``models.<name>.module`` points at it."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]

TOY = textwrap.dedent('''
    """A toy family: every gene token is mixed with the mean of all tokens."""
    import torch

    from scgraphbench.models.base import GeneTokenModel, TokenMixer
    from scgraphbench.models.catalog import TOKEN_PARAMS, FamilySpec, Param
    from scgraphbench.models.registry import register

    FAMILY = FamilySpec(
        "toy_meanmix", module=__file__, tasks=("annotation",), group="efficient",
        params=TOKEN_PARAMS + (Param("mix", "float", 0.5, "share of the mean", minimum=0.0,
                                     maximum=1.0),),
    )


    class MeanMixer(TokenMixer):
        def __init__(self, d_model, n_heads, dropout, ctx, graph, *, mix, **params):
            super().__init__(d_model, n_heads, dropout, ctx, graph, **params)
            self.mix = mix
            self.proj = torch.nn.Linear(d_model, d_model)

        def forward(self, x):
            return self.proj((1 - self.mix) * x + self.mix * x.mean(1, keepdim=True))


    @register(FAMILY)
    class ToyMeanMix(GeneTokenModel):
        mixer_cls = MeanMixer
''')


@pytest.mark.slow
def test_a_family_from_one_file_and_one_config_entry_runs_through_the_workflow(tmp_path):
    (tmp_path / "toy_family.py").write_text(TOY)
    config = yaml.safe_load((REPO / "tests/configs/tiny.yaml").read_text())
    config["models"] = {
        "logreg": {"params": {"C": 0.1}},
        "toy": {"family": "toy_meanmix", "module": "toy_family.py",
                "params": {"d_model": 16, "n_layers": 1, "n_heads": 2, "mix": 0.3}},
    }
    config["studies"] = {}
    config["report"] = {"baseline": "toy"}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    res = subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--configfile",
         "config.yaml", "--cores", "2", "results/tables/runs.csv"],
        cwd=tmp_path, capture_output=True, text=True, timeout=900,
    )
    assert res.returncode == 0, (res.stdout + res.stderr)[-4000:]
    runs = pd.read_csv(tmp_path / "results/tables/runs.csv")
    toy = runs[runs["model"] == "toy"]
    assert len(toy) == 2 and set(toy["family"]) == {"toy_meanmix"}
    assert toy["macro_f1"].between(0, 1).all() and (toy["attention_flops_per_cell"] > 0).all()

    # its parameters are checked like any built-in family's, before any job runs
    config["models"]["toy"]["params"]["mix"] = 2.0
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    res = subprocess.run([sys.executable, "-m", "scgraphbench", "validate-config",
                          "config.yaml"], cwd=tmp_path, capture_output=True, text=True)
    assert res.returncode == 2 and "models.toy.params.mix" in res.stderr
