"""Exercises of notebook 07 (graph convolution)."""

import torch

from helpers.exercises import exercise
from helpers.exercises.hints import close_hint, shape_hint
from helpers.graph import laplacian, normalized_adjacency


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


def _directed(seed: int, n: int) -> torch.Tensor:
    """A weighted directed graph: adj[i, j] > 0 is an edge from j (source) to i (target); most
    edges have no reverse, so in- and out-degrees differ."""
    g = torch.Generator().manual_seed(seed)
    adj = (torch.rand(n, n, generator=g) < 0.3) * (0.2 + torch.rand(n, n, generator=g))
    return adj.fill_diagonal_(0.0)


@exercise("07.1", "weighted degree from an edge list")
def check_degree_from_edges(answer):
    for seed, n in [(0, 6), (1, 12), (2, 3)]:
        adj = _directed(seed, n)
        target, source = adj.nonzero(as_tuple=True)
        edge_index, edge_weight = torch.stack([source, target]), adj[target, source]
        got = answer(edge_index, edge_weight, n)
        if hint := shape_hint(got, (n,), f"a graph of {n} nodes"):
            return hint + " (one degree per node: num_nodes values)"
        got = got.to_dense().float() if got.layout != torch.strided else got.float()
        if torch.allclose(got, adj.sum(dim=1), atol=1e-5):
            continue
        if torch.allclose(got, adj.sum(dim=0), atol=1e-5):
            return (f"a graph of {n} nodes: you summed the edges that leave each node (row 0 of "
                    "edge_index, the source); the degree here is the weight arriving at a node: "
                    "index by the target, row 1")
        if torch.allclose(got, (adj > 0).sum(dim=1).float()):
            return (f"a graph of {n} nodes: you counted the edges; sum their weights (edge_weight) "
                    "instead")
        return close_hint(got, adj.sum(dim=1), f"a graph of {n} nodes") + (
            " (add each edge's weight to the degree of its target node, e.g. with index_add_)")
    return None


def _reference_propagate(operator: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return torch.einsum("ij,btjc->btic", operator, x)


def _reshape_bug(operator: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    batch, steps, n, c = x.shape
    return (operator @ x.reshape(n, -1)).reshape(batch, steps, n, c)


@exercise("07.2", "debug a propagation")
def check_propagate(answer):
    # the first cases have batch and time axes (a reshape bug shows), the last has none
    for seed, (batch, steps, n, c) in [(15, (3, 4, 6, 2)), (16, (2, 5, 7, 3)), (14, (1, 1, 5, 2))]:
        operator = _directed(seed, n) + torch.eye(n)
        x = torch.randn(batch, steps, n, c, generator=torch.Generator().manual_seed(seed))
        got = answer(operator, x)
        truth = _reference_propagate(operator, x)
        what = f"x of shape {(batch, steps, n, c)}, a directed graph"
        if hint := shape_hint(got, truth.shape, what):
            return hint
        if torch.allclose(got, truth, atol=1e-5):
            continue
        mixed = ("the node axis is not first when x is reshaped to (N, -1), so the rows mix stations "
                 "with batches and time steps: move the node axis first (movedim or permute) or use "
                 "einsum")
        transposed = ("the operator is applied transposed, out[i] = sum_j operator[j, i] x[j]; on the "
                      "metro's symmetric A_hat the two agree, which hides the bug, but not on a "
                      "directed graph")
        candidates = [(_reshape_bug(operator.T, x), f"{mixed}; and {transposed}"),
                      (_reshape_bug(operator, x), mixed),
                      (_reference_propagate(operator.T, x), transposed)]
        for wrong, note in candidates:
            if torch.allclose(got, wrong, atol=1e-5):
                return f"{what}: {note}"
        return close_hint(got, truth, what) + " (out[..., i, :] = sum_j operator[i, j] x[..., j, :])"
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


VERDICTS = ("no problem", "over-smoothing", "hard to train")


@exercise("07.6", "over-smoothing or hard to train?")
def check_diagnose(answer):
    # (shallow graph, deep graph, shallow control, deep control): test MAE over three seeds
    cases = [
        ([13.4, 13.6, 13.5], [18.1, 18.9, 20.8], [16.7, 16.9, 16.8], [17.4, 21.2, 20.7], "hard to train",
         "the no-graph control gets worse with depth too; with no edges there is nothing to smooth, so "
         "the deep stack itself is the problem"),
        ([13.4, 13.6, 13.5], [18.1, 18.9, 20.8], [16.7, 16.9, 16.8], [16.6, 16.9, 16.8], "over-smoothing",
         "only the stack with the graph gets worse with depth; the same network without edges does not"),
        ([13.4, 13.6, 13.5], [13.3, 13.5, 13.4], [16.7, 16.9, 16.8], [16.6, 17.0, 16.9], "no problem",
         "the deep stack with the graph is as good as the shallow one"),
        ([13.0, 14.0, 15.0], [14.2, 14.9, 15.6], [16.0, 17.0, 18.0], [16.5, 17.5, 18.5], "no problem",
         "the deep runs are worse on average but inside the seed-to-seed range of the shallow ones: "
         "a difference within the spread over seeds is no difference"),
        ([13.0, 14.0, 15.0], [14.2, 14.9, 15.6], [16.0, 16.5, 16.4], [18.0, 19.0, 20.0], "no problem",
         "the stack with the graph does not get worse (its ranges overlap); the control failing alone is "
         "not over-smoothing"),
        ([13.4, 13.6, 13.5], [12.0, 12.5, 12.2], [16.7, 16.9, 16.8], [18.0, 19.0, 20.0], "no problem",
         "deeper is better here: only a deep stack that is worse than the shallow one is a problem"),
        ([13.4, 13.6, 13.5], [18.1, 18.9, 20.8], [16.7, 17.5, 16.9], [17.4, 21.2, 20.7], "hard to train",
         "the deep control's mean (19.77) is above every shallow control run, so it got worse, even though "
         "one deep run (17.4) falls inside the shallow range: compare the deep mean with the highest "
         "shallow run"),
    ]
    for shallow, deep, shallow_control, deep_control, truth, why in cases:
        got = answer(shallow, deep, shallow_control, deep_control)
        if got not in VERDICTS:
            return f"return one of {VERDICTS}, got {got!r}"
        if got != truth:
            return (f"for graph {shallow} -> {deep} and no-graph control {shallow_control} -> "
                    f"{deep_control}: expected {truth!r}, got {got!r}: {why}")
    return None
