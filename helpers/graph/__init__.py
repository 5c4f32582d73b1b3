"""Graph convolution on a fixed graph: operators built from an adjacency matrix, the layers that use
them, and two measures of over-smoothing.

Conventions
-----------
- An adjacency `adj` is a dense `(N, N)` float tensor with non-negative weights; `adj[i, j]` is
  the weight of the edge that carries information from node `j` to node `i` (a metro network is
  undirected, so `adj` is symmetric). The shipped datasets store it with a zero diagonal:
  self-loops are added here.
- A graph *operator* is what a layer multiplies node features by: the normalised adjacency
  `normalized_adjacency(adj)` for `GraphConv`, the scaled Laplacian `scaled_laplacian(adj)` for
  `ChebGraphConv`. Build it once, outside the model, as a dense tensor or, for a large sparse
  graph, as a sparse one with `to_sparse` (COO or CSR); `as_layout(operator, "auto")` picks the
  faster layout (`choose_layout`: sparse COO from `SPARSE_MIN_NODES` nodes when at most
  `SPARSE_MAX_DENSITY` of the entries are non-zero, `benchmarks/graph_scaling.py`). Layers take it
  in `forward(x, operator)`, as PyTorch Geometric layers take `edge_index`, so one model can run on
  several graphs and `DeepGCNBlock` can pass it through. A model with one fixed graph keeps the
  operator as a buffer (it then follows `.to(device)`).
- Node features `x` have the node axis second to last and channels last: `(nodes, channels)`,
  `(batch, nodes, channels)` or `(batch, time, nodes, channels)`. The operator is applied to all
  leading axes at once, with one matrix product (`propagate`): no Python loop over batch, time or
  nodes.
"""

from helpers.graph.layers import BLOCKS, ChebGraphConv, DeepGCNBlock, GCNStack, GraphConv
from helpers.graph.operators import (
    OPERATOR_LAYOUTS,
    SPARSE_MAX_DENSITY,
    SPARSE_MIN_NODES,
    add_self_loops,
    as_layout,
    chebyshev_basis,
    choose_layout,
    degree,
    laplacian,
    normalized_adjacency,
    propagate,
    scaled_laplacian,
    to_sparse,
)
from helpers.graph.smoothing import dirichlet_energy, mean_pairwise_cosine

__all__ = [
    "BLOCKS",
    "add_self_loops",
    "degree",
    "normalized_adjacency",
    "laplacian",
    "scaled_laplacian",
    "chebyshev_basis",
    "to_sparse",
    "OPERATOR_LAYOUTS",
    "SPARSE_MIN_NODES",
    "SPARSE_MAX_DENSITY",
    "choose_layout",
    "as_layout",
    "propagate",
    "GraphConv",
    "ChebGraphConv",
    "DeepGCNBlock",
    "GCNStack",
    "mean_pairwise_cosine",
    "dirichlet_energy",
]

