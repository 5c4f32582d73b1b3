"""Two measures of over-smoothing: how alike the nodes' embeddings have become."""

from __future__ import annotations

from torch import Tensor

from helpers.graph.operators import _check_operator, normalized_adjacency, propagate


def mean_pairwise_cosine(x: Tensor, eps: float = 1e-8) -> Tensor:
    """Mean cosine similarity between the embeddings of every pair of distinct nodes.

    x: (..., N, C) -> (...). Near 1 when all nodes point the same way (over-smoothed); a zero
    embedding counts as similarity 0 with every node. Needs N >= 2.
    """
    if not isinstance(x, Tensor) or x.dim() < 2 or x.size(-2) < 2:
        given = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"x must have shape (..., N, C) with N >= 2 nodes, got {given}")
    unit = x / x.norm(dim=-1, keepdim=True).clamp_min(eps)
    sims = unit @ unit.transpose(-1, -2)  # (..., N, N)
    n = x.size(-2)
    off_diagonal = sims.sum(dim=(-1, -2)) - sims.diagonal(dim1=-2, dim2=-1).sum(-1)
    return off_diagonal / (n * (n - 1))


def dirichlet_energy(x: Tensor, adj: Tensor, relative: bool = False) -> Tensor:
    """Dirichlet energy of node embeddings: E(X) = trace(X^T (I - Â) X), Â the GCN operator
    `normalized_adjacency(adj)`.

    Equals 1/2 sum_ij (A+I)_ij || x_i / sqrt(d~_i) - x_j / sqrt(d~_j) ||^2 (Cai and Wang, 2020),
    with d~ the degrees of A + I: zero exactly when the embeddings are what repeated GCN
    propagation converges to.
    x: (..., N, C), adj: (N, N) -> (...). `relative=True` divides by ||X||_F^2, giving a scale-free
    number in [0, 2) (0: perfectly smooth over the graph).
    """
    op = normalized_adjacency(adj)
    _check_operator(op, x)
    energy = (x * (x - propagate(op, x))).sum(dim=(-1, -2))
    if relative:
        energy = energy / (x * x).sum(dim=(-1, -2)).clamp_min(1e-12)
    return energy
