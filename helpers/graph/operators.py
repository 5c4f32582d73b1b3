"""Graph operators built from an adjacency matrix, their dense or sparse layout, and `propagate`, the
one product every graph layer uses. The conventions are in the package docstring (`helpers.graph`)."""

from __future__ import annotations

import warnings

import torch
from torch import Tensor

from helpers.checks import check_choice, check_int, check_number


# --- input checks --------------------------------------------------------------------------------
def _check_adjacency(adj: Tensor, name: str = "adj") -> None:
    """Raise a ValueError (TypeError for a non-tensor) unless `adj` is a dense, square, finite,
    non-negative matrix."""
    if not isinstance(adj, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (N, N), got {type(adj).__name__}")
    if adj.layout != torch.strided:
        raise ValueError(f"{name} must be a dense tensor (build the operator densely, then call "
                         f"to_sparse), got layout {adj.layout}")
    if adj.dim() != 2 or adj.size(0) != adj.size(1):
        raise ValueError(f"{name} must be a square matrix of shape (N, N), "
                         f"got shape {tuple(adj.shape)}")
    if not adj.is_floating_point():
        raise ValueError(f"{name} must have a floating-point dtype, got {adj.dtype}")
    if not torch.isfinite(adj).all():
        bad = int((~torch.isfinite(adj)).sum())
        raise ValueError(f"{name} must be finite, got {bad} NaN or infinite entries")
    if (adj < 0).any():
        raise ValueError(f"{name} must have non-negative edge weights, "
                         f"got minimum {adj.min().item():.4g}")


def _check_symmetric(adj: Tensor, name: str = "adj") -> None:
    if not torch.allclose(adj, adj.T, rtol=1e-5, atol=1e-6):
        gap = (adj - adj.T).abs().max().item()
        raise ValueError(f"{name} must be symmetric (an undirected graph) for a Laplacian, "
                         f"got max |adj - adj.T| = {gap:.4g}")


def _check_operator(operator: Tensor, x: Tensor, in_channels: int | None = None) -> None:
    """Check that `operator` is an (N, N) matrix and `x` is (..., N, C) with 2 to 4 axes, and
    C == in_channels when that is given."""
    if not isinstance(operator, Tensor) or not isinstance(x, Tensor):
        raise TypeError(f"expected tensors for x and operator, "
                        f"got {type(x).__name__} and {type(operator).__name__}")
    if operator.dim() != 2 or operator.size(0) != operator.size(1):
        raise ValueError(f"the graph operator must have shape (N, N), got {tuple(operator.shape)}")
    if not 2 <= x.dim() <= 4:
        raise ValueError("x must have shape (nodes, channels), (batch, nodes, channels) or "
                         f"(batch, time, nodes, channels), got {x.dim()} axes: {tuple(x.shape)}")
    if x.size(-2) != operator.size(0):
        raise ValueError(f"x has {x.size(-2)} nodes on axis -2 (shape {tuple(x.shape)}) but the "
                         f"graph operator has {operator.size(0)} nodes")
    if in_channels is not None and x.size(-1) != in_channels:
        raise ValueError(f"x must have {in_channels} channels on its last axis, "
                         f"got shape {tuple(x.shape)}")


# --- operators -----------------------------------------------------------------------------------
def add_self_loops(adj: Tensor, weight: float = 1.0) -> Tensor:
    """A + weight * I: every node also keeps its own features. adj: (N, N) -> (N, N)."""
    _check_adjacency(adj)
    return adj + weight * torch.eye(adj.size(0), dtype=adj.dtype, device=adj.device)


def degree(adj: Tensor) -> Tensor:
    """Weighted degree of each node, d_i = sum_j adj[i, j] (the row sums). adj: (N, N) -> (N,)."""
    _check_adjacency(adj)
    return adj.sum(dim=1)


def _sym_normalize(adj: Tensor) -> Tensor:
    """D^-1/2 adj D^-1/2, D the row sums; an isolated node (degree 0) gets a zero row and column."""
    d_inv_sqrt = adj.sum(dim=1).pow(-0.5)
    d_inv_sqrt = d_inv_sqrt.masked_fill(torch.isinf(d_inv_sqrt), 0.0)
    return d_inv_sqrt[:, None] * adj * d_inv_sqrt[None, :]


def normalized_adjacency(adj: Tensor, add_self_loops: bool = True) -> Tensor:
    """The GCN operator Â = D^-1/2 (A + I) D^-1/2, with D the degree matrix of A + I.

    adj: (N, N) non-negative weights -> (N, N). With `add_self_loops=False`, D^-1/2 A D^-1/2.
    This is what PyTorch Geometric's `GCNConv(normalize=True, add_self_loops=True)` applies for a
    graph with no self-loops of its own.
    """
    _check_adjacency(adj)
    if add_self_loops:
        adj = adj + torch.eye(adj.size(0), dtype=adj.dtype, device=adj.device)
    return _sym_normalize(adj)


def laplacian(adj: Tensor, normalized: bool = True) -> Tensor:
    """Graph Laplacian of an undirected graph: L = I - D^-1/2 A D^-1/2 (normalized) or L = D - A.

    adj: (N, N) symmetric, non-negative -> (N, N). Self-loops are not added. The normalised
    Laplacian's eigenvalues lie in [0, 2]; its eigenvectors are the graph's "frequencies".
    """
    _check_adjacency(adj)
    _check_symmetric(adj)
    eye = torch.eye(adj.size(0), dtype=adj.dtype, device=adj.device)
    if normalized:
        return eye - _sym_normalize(adj)
    return torch.diag(adj.sum(dim=1)) - adj


def scaled_laplacian(adj: Tensor, lambda_max: float | None = None,
                     normalized: bool = True) -> Tensor:
    """The Chebyshev operator L~ = 2 L / lambda_max - I, whose eigenvalues lie in [-1, 1].

    adj: (N, N) symmetric, non-negative -> (N, N). `L = laplacian(adj, normalized)`; `lambda_max` is
    its largest eigenvalue, computed when not given. PyTorch Geometric's
    `ChebConv(normalization="sym")` uses `lambda_max=2.0` by default (the upper bound for the
    normalised Laplacian); the STGCN paper computes it.
    """
    lap = laplacian(adj, normalized=normalized)
    if lambda_max is None:
        lambda_max = torch.linalg.eigvalsh(lap).max().item()
    check_number("lambda_max", lambda_max, low=0, low_open=True)
    eye = torch.eye(adj.size(0), dtype=adj.dtype, device=adj.device)
    return 2.0 * lap / lambda_max - eye


def chebyshev_basis(L_tilde: Tensor, K: int) -> Tensor:
    """The first K Chebyshev polynomials of a matrix: T_0 = I, T_1 = L~,
    T_k = 2 L~ T_{k-1} - T_{k-2}.

    L_tilde: (N, N) dense -> (K, N, N). T_k(L~)[i, j] is zero when j is more than k hops from i, so
    a filter of order K mixes information from at most K - 1 hops.
    """
    check_int("K", K)
    if not isinstance(L_tilde, Tensor) or L_tilde.dim() != 2 or L_tilde.size(0) != L_tilde.size(1):
        shape = tuple(L_tilde.shape) if isinstance(L_tilde, Tensor) else type(L_tilde).__name__
        raise ValueError(f"L_tilde must be a square matrix of shape (N, N), got {shape}")
    basis = [torch.eye(L_tilde.size(0), dtype=L_tilde.dtype, device=L_tilde.device), L_tilde]
    for _ in range(2, K):
        basis.append(2 * L_tilde @ basis[-1] - basis[-2])
    return torch.stack(basis[:K])


def to_sparse(operator: Tensor, layout: str = "coo") -> Tensor:
    """A dense (N, N) operator as a torch sparse tensor, `layout` "coo" (coalesced) or "csr".

    Worth it when most entries are zero and N is large (a city-scale network); for a few hundred
    nodes a dense matrix product is usually faster.
    """
    check_choice("layout", layout, ("coo", "csr"))
    if not isinstance(operator, Tensor) or operator.dim() != 2 or operator.layout != torch.strided:
        given = (f"{operator.layout} tensor of shape {tuple(operator.shape)}"
                 if isinstance(operator, Tensor) else type(operator).__name__)
        raise ValueError(f"to_sparse expects a dense (N, N) tensor, got {given}")
    if layout == "coo":
        return operator.to_sparse().coalesce()
    with warnings.catch_warnings():  # "Sparse CSR tensor support is in beta state"
        warnings.simplefilter("ignore", UserWarning)
        return operator.to_sparse_csr()


#: Layouts of `as_layout` (and of the STGCN's `graph_operator` and `--graph-operator`).
OPERATOR_LAYOUTS = ("auto", "dense", "sparse")
#: "auto" keeps an operator dense below this many nodes. In benchmarks/results/graph_scaling.json
#: sparse STGCN training steps cost 4% and 2% less CPU than dense ones at 51 and 100 nodes, 9% less
#: at 207, 13% at 400 and 21% at 675: 400 is the first measured size where the gain exceeds a tenth,
#: and the notebooks' networks (51, 207 nodes) keep the dense operator their outputs were made with
#: (sparse sums round differently).
SPARSE_MIN_NODES = 400
#: ... or when more than this fraction of its entries is non-zero: a cautious bound, as the
#: benchmark's networks have at most 7% (Los-loop).
SPARSE_MAX_DENSITY = 0.05


def choose_layout(operator: Tensor) -> str:
    """"sparse" for an (N, N) operator with N >= SPARSE_MIN_NODES and at most SPARSE_MAX_DENSITY of
    its entries non-zero, else "dense": the faster layout for training (forward and backward)."""
    if not isinstance(operator, Tensor) or operator.dim() != 2:
        given = tuple(operator.shape) if isinstance(operator, Tensor) else type(operator).__name__
        raise ValueError(f"expected an (N, N) graph operator, got {given}")
    n = operator.size(0)
    nonzero = int(torch.count_nonzero(operator)) if operator.layout == torch.strided else operator._nnz()
    return "sparse" if n >= SPARSE_MIN_NODES and nonzero <= SPARSE_MAX_DENSITY * n * n else "dense"


def as_layout(operator: Tensor, layout: str = "auto") -> Tensor:
    """The (N, N) operator dense ("dense"), as a coalesced sparse COO tensor ("sparse"; CSR was faster
    at some sizes and slower at others in benchmarks/results/graph_scaling.json), or as
    `choose_layout` says ("auto"). Products with either give the same results up to rounding."""
    check_choice("layout", layout, OPERATOR_LAYOUTS)
    layout = choose_layout(operator) if layout == "auto" else layout
    if operator.layout == torch.sparse_coo and layout == "sparse":
        return operator.coalesce()
    dense = operator if operator.layout == torch.strided else operator.to_dense()
    return dense if layout == "dense" else to_sparse(dense, "coo")


def propagate(operator: Tensor, x: Tensor) -> Tensor:
    """Apply a graph operator to features: out[..., i, :] = sum_j operator[i, j] * x[..., j, :].

    operator: (N, N), dense or sparse (COO or CSR); x: (..., N, C) -> (..., N, C). All leading
    axes (batch, time) are folded into one matrix product `(N, N) @ (N, batch * time * C)`.
    """
    _check_operator(operator, x)
    moved = x.movedim(-2, 0)  # (N, ..., C)
    out = operator @ moved.reshape(x.size(-2), -1)  # (N, batch * time * C)
    return out.reshape(moved.shape).movedim(0, -2)
