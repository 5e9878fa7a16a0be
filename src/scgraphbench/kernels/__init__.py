"""Sparse graph attention and diffusion on a gene graph shared by the whole batch."""

from scgraphbench.kernels.graph_attention import (
    CSRGraph,
    diffusion_coefficients,
    graph_attention,
    heat_mass,
    heat_steps_for_tolerance,
    prepare,
)

__all__ = [
    "CSRGraph",
    "diffusion_coefficients",
    "graph_attention",
    "heat_mass",
    "heat_steps_for_tolerance",
    "prepare",
]
