"""Exercises of notebook 07 (graph convolution)."""

import torch

from helpers.exercises import exercise
from helpers.exercises.hints import close_hint, shape_hint
from helpers.graph import add_self_loops, laplacian, normalized_adjacency


def _graph(seed: int, n: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    weights = (torch.rand(n, n, generator=g) < 0.35) * (0.2 + torch.rand(n, n, generator=g))
    adj = torch.triu(weights, diagonal=1)
    return adj + adj.T


def _close(got, truth: torch.Tensor, what: str) -> str | None:
    """`close_hint` for an answer that may be sparse or of another dtype; a boolean mask must match
    exactly."""
    if not isinstance(got, torch.Tensor):
        return shape_hint(got, truth.shape, what)
    got = got.to_dense() if got.layout != torch.strided else got
    if hint := shape_hint(got, truth.shape, what):
        return hint
    if torch.bool in (got.dtype, truth.dtype):
        wrong = int((got.bool() != truth.bool()).sum())
        return f"{what}: {wrong} entries are wrong" if wrong else None
    return close_hint(got.to(truth.dtype), truth, what)


@exercise("07.1", "weighted degree from an edge list")
def check_degree_from_edges(answer):
    for seed, n in [(0, 6), (1, 12), (2, 3)]:
        adj = _graph(seed, n)
        target, source = adj.nonzero(as_tuple=True)
        edge_index, edge_weight = torch.stack([source, target]), adj[target, source]
        got = answer(edge_index, edge_weight, n)
        if hint := _close(got, adj.sum(dim=1), f"a graph of {n} nodes"):
            return hint + (" (add each edge's weight to the degree of its target node, e.g. with "
                           "index_add_)")
    return None


@exercise("07.2", "random-walk normalisation")
def check_random_walk_operator(answer):
    for seed, n in [(3, 7), (4, 15)]:
        adj = _graph(seed, n)
        adj[0, :] = adj[:, 0] = 0.0  # an isolated node still has its self-loop
        a = add_self_loops(adj)
        if hint := _close(answer(adj), a / a.sum(dim=1, keepdim=True), f"a graph of {n} nodes"):
            return hint + (" (D^-1 (A + I): each row of A + I divided by its sum, so each row sums "
                           "to 1)")
    return None


@exercise("07.3", "k-hop neighbourhoods")
def check_k_hop(answer):
    for seed, n, k in [(5, 10, 1), (6, 10, 2), (7, 14, 3), (8, 5, 0)]:
        adj = _graph(seed, n)
        step = ((adj > 0) | torch.eye(n, dtype=torch.bool)).double()
        truth = torch.linalg.matrix_power(step, k) > 0
        if hint := _close(answer(adj, k), truth, f"k={k} on a graph of {n} nodes"):
            return hint + (" (node j is within k hops of i when (A + I)^k has a non-zero (i, j) "
                           "entry)")
    return None


@exercise("07.4", "SGC propagation")
def check_sgc(answer):
    for seed, n, k in [(9, 8, 1), (10, 12, 3), (11, 6, 0)]:
        adj = _graph(seed, n)
        x = torch.randn(n, 4, generator=torch.Generator().manual_seed(seed))
        truth = torch.linalg.matrix_power(normalized_adjacency(adj), k) @ x
        if hint := _close(answer(x, adj, k), truth, f"k={k}"):
            return hint + " (apply the GCN operator D^-1/2 (A+I) D^-1/2 to x, k times)"
    return None


@exercise("07.5", "Dirichlet energy by edges")
def check_dirichlet_by_edges(answer):
    for seed, n in [(12, 6), (13, 11)]:
        adj = _graph(seed, n).double()
        x = torch.randn(n, 3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        truth = torch.trace(x.T @ laplacian(adj, normalized=False) @ x).item()
        got = answer(x, adj)
        got = got.item() if isinstance(got, torch.Tensor) else got
        if not isinstance(got, float) or abs(got - truth) > 1e-8 * max(1.0, abs(truth)):
            return (f"a graph of {n} nodes: expected {truth:.4f}, got {got!r} (1/2 sum over i, j "
                    "of adj[i, j] * ||x_i - x_j||^2; each undirected edge appears twice)")
    return None
