"""Does the planted data reward its GRN at all? A value-only GCN on the engine check's data.

The token GNNs (gnn_gcn, ...) do as well on config/engine_check.yaml's planted GRN as on its
degree-matched random control (docs/verdicts.md, "Engine checks"). This probe asks whether
the data, rather than the model, is the reason: one scalar feature per gene (its value,
standardised on training cells), one PyG GCNConv to 8 channels, ReLU, and a gene-wise linear
readout, trained on the planted GRN and on its random control, on the same splits the
workflow draws (the package's prepare and graph stages). Not a model family: a diagnostic.

    python benchmarks/planted_prior_probe.py --replicates 3 --out-dir benchmarks/results
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
import yaml
from torch import nn

REPO = Path(__file__).resolve().parents[1]


def value_gcn_macro_f1(Z: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray,
                       A, seed: int = 0, epochs: int = 40) -> float:
    from sklearn.metrics import f1_score
    from torch_geometric.nn import GCNConv

    from scgraphbench.models.gnn import edge_index_from_scipy

    edge_index = edge_index_from_scipy(A)
    torch.manual_seed(seed)
    conv, readout = GCNConv(1, 8), nn.Linear(8 * Z.shape[1], int(y.max()) + 1)
    params = list(conv.parameters()) + list(readout.parameters())
    opt = torch.optim.AdamW(params, lr=3e-3, weight_decay=0.05)

    def forward(x: torch.Tensor) -> torch.Tensor:
        return readout(torch.relu(conv(x.unsqueeze(-1), edge_index)).flatten(1))

    Zt, yt = torch.tensor(Z), torch.tensor(y).long()
    idx = np.flatnonzero(train)
    for epoch in range(epochs):
        np.random.default_rng(epoch).shuffle(idx)
        for i in range(0, len(idx), 32):
            b = idx[i : i + 32]
            opt.zero_grad()
            nn.functional.cross_entropy(forward(Zt[b]), yt[b]).backward()
            opt.step()
    with torch.no_grad():
        pred = forward(Zt[test]).argmax(1).numpy()
    return float(f1_score(y[test], pred, average="macro"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(REPO / "config" / "engine_check.yaml"))
    ap.add_argument("--replicates", type=int, default=3)
    ap.add_argument("--out-dir", default=str(REPO / "benchmarks" / "results"))
    a = ap.parse_args()
    torch.set_num_threads(1)

    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score

    from scgraphbench.data.datasets import prepare_dataset
    from scgraphbench.graphs.build import build_variant
    from scgraphbench.graphs.databases import fetch_database
    from scgraphbench.graphs.io import save_graph
    from scgraphbench.models.base import gene_scaling
    from scgraphbench.plan import build_plan

    cfg = yaml.safe_load(Path(a.config).read_text())
    cfg["replicates"] = a.replicates
    plan = build_plan(cfg)
    out = Path(a.out_dir)
    work = out / "planted_prior_probe"
    table = work / "planted.csv.gz"
    fetch_database("planted", cfg["databases"]["planted"], table, cache_dir=work / "raw")
    rows = []
    for rep in range(a.replicates):
        adata = prepare_dataset("planted", {**plan.datasets["planted"], "replicate": rep})
        X = adata.X.toarray() if hasattr(adata.X, "toarray") else np.asarray(adata.X)
        y = adata.obs["label"].cat.codes.to_numpy()
        split = adata.obs["split"].to_numpy()
        train, test = split == "train", split == "test"
        scaling = gene_scaling(X[train])  # the token families' own standardisation
        Z = ((X - scaling["gene_mean"]) / scaling["gene_std"]).astype(np.float32)
        grn = build_variant(adata, "planted_grn", plan.graph_spec("planted_grn", rep),
                            databases={"planted": table})
        base = work / f"planted_grn_rep{rep}.npz"
        save_graph(base, grn.adjacency, grn.genes, meta=grn.meta)
        rnd = build_variant(adata, "random_planted_grn",
                            plan.graph_spec("random_planted_grn", rep), base=base)
        logreg = LogisticRegression(C=0.1, max_iter=2000).fit(Z[train], y[train])
        row = {"replicate": rep,
               "logreg": float(f1_score(y[test], logreg.predict(Z[test]), average="macro")),
               "value_gcn_planted": value_gcn_macro_f1(Z, y, train, test, grn.adjacency),
               "value_gcn_random": value_gcn_macro_f1(Z, y, train, test, rnd.adjacency)}
        row["planted_minus_random"] = row["value_gcn_planted"] - row["value_gcn_random"]
        rows.append(row)
        print(json.dumps({k: round(v, 3) if isinstance(v, float) else v
                          for k, v in row.items()}), flush=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / "planted_prior_probe.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
