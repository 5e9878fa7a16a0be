"""Sparse graph attention and diffusion on a gene graph shared by the whole batch."""

from scgraphbench.kernels.graph_attention import CSRGraph, graph_attention

__all__ = ["CSRGraph", "graph_attention"]
