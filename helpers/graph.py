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

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from helpers.checks import check_choice, check_int, check_number

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

#: The skip connections of `DeepGCNBlock` and `GCNStack`.
BLOCKS = ("res+", "res", "dense", "plain")


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
#: sparse STGCN training steps cost as much as dense ones at 51 and 100 nodes, 18% less CPU at 207
#: and 35% less at 400: the switch comes where the gain is large, and the notebooks' networks (51,
#: 207 nodes) keep the dense operator their outputs were made with (sparse sums round differently).
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
    """The (N, N) operator dense ("dense"), as a coalesced sparse COO tensor ("sparse"; CSR was no
    faster in benchmarks/results/graph_scaling.json), or as `choose_layout` says ("auto"). Products
    with either give the same results up to rounding."""
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


# --- layers --------------------------------------------------------------------------------------
class GraphConv(nn.Module):
    """First-order graph convolution (Kipf and Welling's GCN rule): H' = Â H W + b.

    forward(x, operator): x (..., N, in_channels) with 0 to 2 leading axes, e.g. (batch, time,
    nodes, channels); operator Â (N, N), dense or sparse, usually `normalized_adjacency(adj)`.
    Returns (..., N, out_channels). Parameters: `weight` (in_channels, out_channels), `bias`
    (out_channels,). The activation is not part of the layer.
    """

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True):
        super().__init__()
        self.in_channels = check_int("in_channels", in_channels)
        self.out_channels = check_int("out_channels", out_channels)
        self.weight = nn.Parameter(torch.empty(in_channels, out_channels))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Glorot-uniform weight and zero bias, as PyTorch Geometric's GCNConv."""
        nn.init.xavier_uniform_(self.weight)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(self, x: Tensor, operator: Tensor) -> Tensor:
        _check_operator(operator, x, self.in_channels)
        # Multiply by W first when it shrinks the channels: the graph product moves fewer numbers.
        if self.out_channels <= self.in_channels:
            out = propagate(operator, x @ self.weight)
        else:
            out = propagate(operator, x) @ self.weight
        return out if self.bias is None else out + self.bias

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, bias={self.bias is not None}"


class ChebGraphConv(nn.Module):
    """Chebyshev graph convolution of order K (Defferrard et al.): H' = sum_k T_k(L~) H W_k + b.

    forward(x, operator): x (..., N, in_channels) with 0 to 2 leading axes, e.g. (batch, time,
    nodes, channels); operator L~ (N, N), dense or sparse, usually `scaled_laplacian(adj)`.
    Returns (..., N, out_channels). The terms Z_k = T_k(L~) H come from the recursion Z_0 = H,
    Z_1 = L~ H, Z_k = 2 L~ Z_{k-1} - Z_{k-2}, so only products with L~ are needed (K - 1 of them),
    never T_k itself.
    K = 1 ignores the graph; K = 2 mixes 1-hop neighbours; order K reaches K - 1 hops.
    Parameters: `weight` (K, in_channels, out_channels), `bias` (out_channels,).
    """

    def __init__(self, in_channels: int, out_channels: int, K: int, bias: bool = True):
        super().__init__()
        self.in_channels = check_int("in_channels", in_channels)
        self.out_channels = check_int("out_channels", out_channels)
        self.K = check_int("K", K)
        self.weight = nn.Parameter(torch.empty(K, in_channels, out_channels))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Glorot-uniform W_k for each k and zero bias, as PyTorch Geometric's ChebConv."""
        for w in self.weight:
            nn.init.xavier_uniform_(w)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(self, x: Tensor, operator: Tensor) -> Tensor:
        _check_operator(operator, x, self.in_channels)
        z_prev, z = x, x
        out = x @ self.weight[0]
        for k in range(1, self.K):
            z_next = propagate(operator, z) if k == 1 else 2 * propagate(operator, z) - z_prev
            z_prev, z = z, z_next
            out = out + z @ self.weight[k]
        return out if self.bias is None else out + self.bias

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, K={self.K}, bias={self.bias is not None}"


class DeepGCNBlock(nn.Module):
    """One deep-GCN layer: a graph convolution with normalisation, activation, dropout and a skip.

    In the spirit of PyTorch Geometric's `DeepGCNLayer` (Li et al., DeepGCNs and DeeperGCN), with
    the same orders:
      - "res+":  x + conv(dropout(act(norm(x))))            (pre-activation residual)
      - "res":   dropout(x + act(norm(conv(x))))
      - "dense": dropout(cat([x, act(norm(conv(x)))], -1))  (channels grow by conv.out_channels)
      - "plain": dropout(act(norm(conv(x))))                 (no skip: an ordinary deep stack)
    `conv` is any module called as `conv(x, *args)`, e.g. `GraphConv` with `args = (operator,)`;
    `norm` and `act` act on the last (channel) axis (`nn.LayerNorm`, `nn.ReLU`), or are None.
    forward(x, *args): x (..., N, C) -> (..., N, C') with C' = C except for "dense".

    ckpt_grad=True checkpoints the branch (everything but the skip) with `torch.utils.checkpoint`
    (use_reentrant=False): its activations are recomputed during backward instead of being stored,
    trading compute for memory. It is refused with a norm that tracks running statistics
    (BatchNorm), which the recomputation would update twice.
    """

    def __init__(self, conv: nn.Module, norm: nn.Module | None = None, act: nn.Module | None = None,
                 block: str = "res+", dropout: float = 0.0, ckpt_grad: bool = False):
        super().__init__()
        _check_block_parts(conv, norm, ckpt_grad)
        self.conv, self.norm, self.act = conv, norm, act
        block = block.lower() if isinstance(block, str) else block
        self.block = check_choice("block", block, BLOCKS)
        self.dropout = float(check_number("dropout", dropout, 0, 1, high_open=True))
        self.ckpt_grad = bool(ckpt_grad)

    def reset_parameters(self) -> None:
        for module in (self.conv, self.norm):
            if module is not None and hasattr(module, "reset_parameters"):
                module.reset_parameters()

    def _norm_act(self, h: Tensor) -> Tensor:
        if self.norm is not None:
            h = self.norm(h)
        return h if self.act is None else self.act(h)

    def _branch(self, x: Tensor, *args) -> Tensor:
        if self.block == "res+":
            h = F.dropout(self._norm_act(x), p=self.dropout, training=self.training)
            return self.conv(h, *args)
        return self._norm_act(self.conv(x, *args))

    def forward(self, x: Tensor, *args) -> Tensor:
        if self.ckpt_grad and torch.is_grad_enabled():
            h = checkpoint(self._branch, x, *args, use_reentrant=False)
        else:
            h = self._branch(x, *args)
        if self.block == "res+":
            return x + h
        if self.block == "res":
            h = x + h
        elif self.block == "dense":
            h = torch.cat([x, h], dim=-1)
        return F.dropout(h, p=self.dropout, training=self.training)

    def extra_repr(self) -> str:
        return f"block={self.block!r}, dropout={self.dropout}, ckpt_grad={self.ckpt_grad}"


def _check_block_parts(conv: nn.Module, norm: nn.Module | None, ckpt_grad: bool) -> None:
    if not isinstance(conv, nn.Module):
        raise TypeError(f"conv must be an nn.Module, got {type(conv).__name__}")
    if ckpt_grad and getattr(norm, "track_running_stats", False):
        raise ValueError(f"ckpt_grad=True would update the running statistics of "
                         f"{type(norm).__name__} twice (forward and recomputation); expected a "
                         "norm without running statistics (e.g. nn.LayerNorm, or BatchNorm with "
                         "track_running_stats=False)")


class GCNStack(nn.Module):
    """A deep GCN for node-level tasks: Linear encoder -> `num_layers` DeepGCNBlocks -> Linear head.

    Each block wraps `GraphConv(hidden, hidden)` (or its dense-growth equivalent) with LayerNorm
    (when `norm=True`), ReLU and the skip `block` ("plain", "res", "res+", "dense"). A "res+" stack
    ends with norm and ReLU before the head, as in DeeperGCN.
    forward(x, operator): x (..., N, in_channels), operator (N, N) -> (..., N, out_channels).
    embed(x, operator) returns the node embeddings the head sees, (..., N, hidden) (wider for
    "dense"): the thing to measure over-smoothing on; layer_outputs(x, operator) the features after
    every layer.
    """

    def __init__(self, in_channels: int, hidden_channels: int, out_channels: int, num_layers: int,
                 block: str = "plain", norm: bool = True, dropout: float = 0.0,
                 ckpt_grad: bool = False):
        super().__init__()
        for name, value in (("in_channels", in_channels), ("hidden_channels", hidden_channels),
                            ("out_channels", out_channels)):
            check_int(name, value)
        self.num_layers = check_int("num_layers", num_layers, minimum=0)
        self.block = check_choice("block", block, BLOCKS)
        self.encoder = nn.Linear(in_channels, hidden_channels)
        self.blocks = nn.ModuleList()
        width = hidden_channels
        for _ in range(num_layers):
            conv = GraphConv(width, hidden_channels)
            norm_width = width if block == "res+" else hidden_channels
            layer_norm = nn.LayerNorm(norm_width) if norm else None
            self.blocks.append(DeepGCNBlock(conv, layer_norm, nn.ReLU(), block=block,
                                            dropout=dropout, ckpt_grad=ckpt_grad))
            width = width + hidden_channels if block == "dense" else hidden_channels
        self.final_norm = nn.LayerNorm(width) if (norm and block == "res+") else None
        self.head = nn.Linear(width, out_channels)

    def reset_parameters(self) -> None:
        for module in (self.encoder, self.head, self.final_norm, *self.blocks):
            if module is not None:
                module.reset_parameters()

    def layer_outputs(self, x: Tensor, operator: Tensor) -> list[Tensor]:
        """The node features after the encoder and after each block: num_layers + 1 tensors
        (..., N, width)."""
        outputs = [self.encoder(x)]
        for block in self.blocks:
            outputs.append(block(outputs[-1], operator))
        return outputs

    def embed(self, x: Tensor, operator: Tensor) -> Tensor:
        h = self.layer_outputs(x, operator)[-1]
        if self.block == "res+":  # the last block ends with a conv: normalise, activate its output
            h = torch.relu(self.final_norm(h) if self.final_norm is not None else h)
        return h

    def forward(self, x: Tensor, operator: Tensor) -> Tensor:
        return self.head(self.embed(x, operator))

    def extra_repr(self) -> str:
        return f"num_layers={self.num_layers}, block={self.block!r}"


# --- smoothness of node embeddings ---------------------------------------------------------------
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
