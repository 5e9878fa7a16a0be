"""scgraphbench: gene-graph models versus dense Transformers on single-cell data."""

__version__ = "0.1.0"
