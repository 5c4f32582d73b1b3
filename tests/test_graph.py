"""helpers.graph against references no one here wrote: PyTorch Geometric's GCNConv, ChebConv and
DeepGCNLayer (with copied weights), dense linear algebra, and explicit per-edge sums."""

import pytest
import torch
import torch_geometric.nn as pyg_nn  # a test dependency (pyproject's [test] extra): the reference layers
from torch import nn

from helpers.graph import (
    ChebGraphConv,
    DeepGCNBlock,
    GCNStack,
    GraphConv,
    add_self_loops,
    chebyshev_basis,
    degree,
    dirichlet_energy,
    laplacian,
    mean_pairwise_cosine,
    normalized_adjacency,
    propagate,
    scaled_laplacian,
    to_sparse,
)

TOL = 1e-5


def random_graph(n: int, p: float = 0.3, seed: int = 0, isolated: bool = False) -> torch.Tensor:
    """A symmetric weighted adjacency with zero diagonal (weights in [0.1, 2]); optionally node 0 isolated."""
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(n, n, generator=g) < p
    weights = 0.1 + 1.9 * torch.rand(n, n, generator=g)
    adj = torch.triu(weights * mask, diagonal=1)
    adj = adj + adj.T
    if isolated:
        adj[0, :] = adj[:, 0] = 0.0
    return adj


def small_graph() -> torch.Tensor:
    """Five stations on a line 0-1-2-3 with a branch 2-4, one edge weighted 2; hand-checkable."""
    adj = torch.zeros(5, 5)
    for i, j, w in [(0, 1, 1.0), (1, 2, 1.0), (2, 3, 2.0), (2, 4, 1.0)]:
        adj[i, j] = adj[j, i] = w
    return adj


def directed_graph(n: int = 9, seed: int = 4) -> torch.Tensor:
    """A directed weighted adjacency (adj[i, j]: the edge from j to i), far from symmetric, zero diagonal."""
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(n, n, generator=g) < 0.35
    adj = (0.1 + 1.9 * torch.rand(n, n, generator=g)) * mask * (1 - torch.eye(n))
    adj[0, 1], adj[1, 0] = 2.0, 0.0  # at least one one-way edge
    return adj


def edge_list(adj: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """PyG's edge_index (2, E) and edge_weight (E,): adj[i, j] is the edge from source j to target i."""
    target, source = adj.nonzero(as_tuple=True)
    return torch.stack([source, target]), adj[target, source]


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


GRAPHS = [
    pytest.param(small_graph(), id="small-deterministic"),
    pytest.param(random_graph(12, seed=1), id="random-12"),
    pytest.param(random_graph(20, p=0.15, seed=2, isolated=True), id="random-20-isolated-node"),
]


# --- operators -----------------------------------------------------------------------------------
def test_operators_on_the_small_graph_by_hand():
    adj = small_graph()
    assert degree(adj).tolist() == [1.0, 2.0, 4.0, 2.0, 1.0]
    assert torch.equal(add_self_loops(adj).diagonal(), torch.ones(5))
    a_hat = normalized_adjacency(adj)
    d = torch.tensor([2.0, 3.0, 5.0, 3.0, 2.0])  # degrees with self-loops
    assert a_hat[2, 3].item() == pytest.approx(2.0 / (5.0 * 3.0) ** 0.5)
    assert a_hat[0, 0].item() == pytest.approx(1.0 / 2.0)
    assert a_hat[0, 4].item() == 0.0
    assert torch.allclose(a_hat @ d.sqrt(), d.sqrt())  # D~^1/2 1 is the eigenvector of eigenvalue 1
    assert torch.allclose(laplacian(adj, normalized=False), torch.diag(degree(adj)) - adj)
    lap = laplacian(adj)
    assert torch.allclose(lap.diagonal(), torch.ones(5))
    eig = torch.linalg.eigvalsh(lap)
    assert eig.min().item() == pytest.approx(0.0, abs=1e-6) and eig.max().item() <= 2.0 + 1e-6
    assert torch.allclose(normalized_adjacency(adj, add_self_loops=False), torch.eye(5) - lap, atol=1e-7)


@pytest.mark.parametrize("adj", GRAPHS)
def test_scaled_laplacian_spectrum_is_in_minus_one_one(adj):
    lam = torch.linalg.eigvalsh(laplacian(adj)).max().item()
    eig = torch.linalg.eigvalsh(scaled_laplacian(adj))
    assert eig.max().item() == pytest.approx(1.0, abs=1e-5) and eig.min().item() >= -1.0 - 1e-5
    assert torch.allclose(scaled_laplacian(adj, lambda_max=lam), scaled_laplacian(adj), atol=1e-6)
    assert torch.allclose(scaled_laplacian(adj, lambda_max=2.0), laplacian(adj) - torch.eye(len(adj)), atol=1e-6)


def test_chebyshev_basis_matches_the_cosine_formula_and_is_k_hop_local():
    adj = small_graph()
    lt = scaled_laplacian(adj).double()
    basis = chebyshev_basis(lt, 5)
    assert basis.shape == (5, 5, 5)
    # T_k(L~) = U diag(cos(k arccos(lambda))) U^T for the symmetric L~
    lam, u = torch.linalg.eigh(lt)
    theta = torch.arccos(lam.clamp(-1, 1))
    for k in range(5):
        expected = u @ torch.diag(torch.cos(k * theta)) @ u.T
        assert max_diff(basis[k], expected) < 1e-10
    # T_k(L~)[i, j] = 0 when j is more than k hops from i; node 0 first reaches node 3 (3 hops) at T_3
    reach = torch.eye(5, dtype=torch.bool)
    for k in range(5):
        assert not basis[k][~reach].any()
        reach = reach | ((reach.double() @ (adj > 0).double()) > 0)
    assert [bool(basis[k, 0, 3] != 0) for k in range(4)] == [False, False, False, True]
    assert chebyshev_basis(lt, 1).shape == (1, 5, 5)


@pytest.mark.parametrize("layout", ["coo", "csr"])
def test_propagate_dense_equals_sparse_and_explicit_neighbour_sums(layout):
    adj = random_graph(10, seed=3)
    op = normalized_adjacency(adj)
    x = torch.randn(2, 3, 10, 4)
    dense = propagate(op, x)
    sparse = propagate(to_sparse(op, layout), x)
    assert max_diff(dense, sparse) < 1e-6
    i = 4  # node i receives the weighted sum of its neighbours' (and its own) features
    expected = sum(op[i, j] * x[:, :, j, :] for j in range(10))
    assert max_diff(dense[:, :, i, :], expected) < 1e-6
    directed = directed_graph(10)  # not symmetric: operator[i, j] weighs what flows from j into i
    assert max_diff(directed, directed.T) > 0.5
    expected = torch.stack([sum(directed[i, j] * x[:, :, j, :] for j in range(10)) for i in range(10)], dim=2)
    for operator in (directed, to_sparse(directed, layout)):
        assert max_diff(propagate(operator, x), expected) < 1e-5


# --- layers against PyTorch Geometric --------------------------------------------------------------
@pytest.mark.parametrize("adj", [*GRAPHS, pytest.param(directed_graph(), id="directed-9")])
def test_graph_conv_matches_pyg_gcnconv(adj):
    torch.manual_seed(0)
    n = adj.size(0)
    ours = GraphConv(6, 3)
    nn.init.normal_(ours.bias)
    ref = pyg_nn.GCNConv(6, 3, normalize=True, add_self_loops=True)
    with torch.no_grad():
        ref.lin.weight.copy_(ours.weight.T)
        ref.bias.copy_(ours.bias)
    x = torch.randn(n, 6)
    edge_index, edge_weight = edge_list(adj)
    expected = ref(x, edge_index, edge_weight)
    op = normalized_adjacency(adj)
    for operator in (op, to_sparse(op, "coo"), to_sparse(op, "csr")):
        assert max_diff(ours(x, operator), expected) < TOL
    wide = GraphConv(6, 9)  # the other multiplication order (propagate first, then W)
    ref_wide = pyg_nn.GCNConv(6, 9)
    with torch.no_grad():
        ref_wide.lin.weight.copy_(wide.weight.T)
    assert max_diff(wide(x, op), ref_wide(x, edge_index, edge_weight)) < TOL


@pytest.mark.parametrize("adj", GRAPHS)
@pytest.mark.parametrize("K", [1, 2, 3, 4])
@pytest.mark.parametrize("lambda_max", ["pyg-default-2", "true"])
@pytest.mark.parametrize("channels", [(5, 4), (5, 7)], ids=["weights-first", "propagate-first"])
def test_cheb_graph_conv_matches_pyg_chebconv(adj, K, lambda_max, channels):
    torch.manual_seed(0)
    n = adj.size(0)
    ours = ChebGraphConv(*channels, K=K)
    nn.init.normal_(ours.bias)
    ref = pyg_nn.ChebConv(*channels, K=K, normalization="sym")
    with torch.no_grad():
        for k in range(K):
            ref.lins[k].weight.copy_(ours.weight[k].T)
        ref.bias.copy_(ours.bias)
    x = torch.randn(n, 5)
    edge_index, edge_weight = edge_list(adj)
    if lambda_max == "true":
        lam = torch.linalg.eigvalsh(laplacian(adj)).max().item()
        operator, expected = scaled_laplacian(adj), ref(x, edge_index, edge_weight, lambda_max=lam)
    else:
        operator, expected = scaled_laplacian(adj, lambda_max=2.0), ref(x, edge_index, edge_weight)
    assert max_diff(ours(x, operator), expected) < TOL
    assert max_diff(ours(x, to_sparse(operator)), expected) < TOL


@pytest.mark.parametrize("layer", [GraphConv(3, 5), ChebGraphConv(3, 5, K=3)], ids=["GraphConv", "ChebGraphConv"])
def test_batched_input_equals_each_sample_alone(layer):
    adj = random_graph(8, seed=4)
    op = normalized_adjacency(adj) if isinstance(layer, GraphConv) else scaled_laplacian(adj)
    x = torch.randn(2, 3, 8, 3)  # (batch, time, nodes, channels)
    out = layer(x, op)
    assert out.shape == (2, 3, 8, 5)
    for b in range(2):
        assert max_diff(layer(x[b], op), out[b]) < 1e-6  # (time, nodes, channels) as (batch, nodes, channels)
        for t in range(3):
            assert max_diff(layer(x[b, t], op), out[b, t]) < 1e-6
    assert max_diff(layer(x, to_sparse(op, "csr")), out) < 1e-6


def test_gradients_flow_through_sparse_operators():
    adj = random_graph(8, seed=5)
    op = normalized_adjacency(adj)
    grads = []
    for operator in (op, to_sparse(op, "coo"), to_sparse(op, "csr")):
        torch.manual_seed(0)
        layer = GraphConv(3, 2)
        x = torch.randn(4, 8, 3, requires_grad=True)
        layer(x, operator).square().sum().backward()
        grads.append((x.grad, layer.weight.grad))
    for gx, gw in grads[1:]:
        assert max_diff(gx, grads[0][0]) < 1e-5 and max_diff(gw, grads[0][1]) < 1e-5


def test_repr_says_what_the_layer_is():
    assert repr(GraphConv(3, 16)) == "GraphConv(3, 16, bias=True)"
    assert repr(ChebGraphConv(3, 16, K=3, bias=False)) == "ChebGraphConv(3, 16, K=3, bias=False)"
    block = repr(DeepGCNBlock(GraphConv(4, 4), nn.LayerNorm(4), nn.ReLU(), block="res"))
    assert "block='res'" in block and "GraphConv(4, 4, bias=True)" in block and "LayerNorm" in block


def test_reset_parameters_restores_the_initial_draw():
    for layer in (GraphConv(3, 4), ChebGraphConv(3, 4, K=2)):
        torch.manual_seed(1)
        layer.reset_parameters()
        first = [p.clone() for p in layer.parameters()]
        with torch.no_grad():
            for p in layer.parameters():
                p.add_(1.0)
        torch.manual_seed(1)
        layer.reset_parameters()
        assert all(torch.equal(a, b) for a, b in zip(first, layer.parameters(), strict=True))
        assert torch.equal(layer.bias, torch.zeros(4))


# --- deep blocks ---------------------------------------------------------------------------------
@pytest.mark.parametrize("block", ["res+", "res", "dense", "plain"])
def test_deep_gcn_block_matches_pyg_deepgcnlayer(block):
    torch.manual_seed(0)
    adj = random_graph(10, seed=6)
    conv = GraphConv(8, 8)
    norm = nn.LayerNorm(8)
    nn.init.normal_(norm.weight)
    nn.init.normal_(norm.bias)
    ours = DeepGCNBlock(conv, norm, nn.ReLU(), block=block, dropout=0.3)
    ref_conv = pyg_nn.GCNConv(8, 8)
    with torch.no_grad():
        ref_conv.lin.weight.copy_(conv.weight.T)
        ref_conv.bias.copy_(conv.bias)
    ref_norm = nn.LayerNorm(8)
    ref_norm.load_state_dict(norm.state_dict())
    ref = pyg_nn.DeepGCNLayer(ref_conv, ref_norm, nn.ReLU(), block=block, dropout=0.3)
    ours.eval(), ref.eval()
    x = torch.randn(10, 8)
    edge_index, edge_weight = edge_list(adj)
    expected = ref(x, edge_index, edge_weight)
    got = ours(x, normalized_adjacency(adj))
    assert got.shape == expected.shape == ((10, 16) if block == "dense" else (10, 8))
    assert max_diff(got, expected) < TOL


@pytest.mark.parametrize("block", ["res+", "res", "dense", "plain"])
def test_checkpointing_gives_identical_outputs_and_gradients_and_saves_memory(block):
    adj = random_graph(16, seed=7)
    op = normalized_adjacency(adj)
    x = torch.randn(3, 16, 4)
    results = {}
    for ckpt in (False, True):
        torch.manual_seed(0)
        model = GCNStack(4, 8, 2, num_layers=4, block=block, dropout=0.2, ckpt_grad=ckpt).train()
        saved = []  # numbers of elements of the tensors autograd keeps for backward
        with torch.autograd.graph.saved_tensors_hooks(lambda t, saved=saved: saved.append(t.numel()) or t, lambda t: t):
            torch.manual_seed(1)  # same dropout masks in both runs
            out = model(x, op)
        out.square().mean().backward()
        results[ckpt] = out, [p.grad for p in model.parameters()], sum(saved)
    (out0, grads0, saved0), (out1, grads1, saved1) = results[False], results[True]
    assert torch.equal(out0, out1)
    assert all(max_diff(a, b) < 1e-6 for a, b in zip(grads0, grads1, strict=True))
    assert saved1 < 0.8 * saved0, (saved0, saved1)  # the branch activations are not kept for backward


def test_checkpointing_refuses_batchnorm_running_statistics():
    with pytest.raises(ValueError, match="running statistics of BatchNorm1d twice"):
        DeepGCNBlock(GraphConv(4, 4), nn.BatchNorm1d(4), ckpt_grad=True)
    DeepGCNBlock(GraphConv(4, 4), nn.BatchNorm1d(4, track_running_stats=False), ckpt_grad=True)


def test_gcn_stack_shapes_and_embeddings():
    adj = random_graph(9, seed=8)
    x = torch.randn(2, 5, 9, 3)
    for block, width in [("plain", 6), ("res", 6), ("res+", 6), ("dense", 6 * 4)]:
        model = GCNStack(3, 6, 2, num_layers=3, block=block)
        assert model(x, normalized_adjacency(adj)).shape == (2, 5, 9, 2)
        assert model.embed(x, normalized_adjacency(adj)).shape == (2, 5, 9, width)
    assert GCNStack(3, 6, 2, num_layers=0)(x, normalized_adjacency(adj)).shape == (2, 5, 9, 2)
    plain = GCNStack(3, 6, 2, num_layers=3, block="plain")
    outputs = plain.layer_outputs(x, normalized_adjacency(adj))
    assert len(outputs) == 4 and torch.equal(outputs[-1], plain.embed(x, normalized_adjacency(adj)))


# --- smoothness statistics -------------------------------------------------------------------------
def test_mean_pairwise_cosine_against_explicit_pairs():
    x = torch.randn(2, 6, 3)
    got = mean_pairwise_cosine(x)
    for b in range(2):
        pairs = [torch.cosine_similarity(x[b, i], x[b, j], dim=0) for i in range(6) for j in range(6) if i != j]
        assert got[b].item() == pytest.approx(torch.stack(pairs).mean().item(), abs=1e-6)
    same_direction = torch.rand(5, 1) * torch.tensor([[1.0, 2.0, 3.0]])
    assert mean_pairwise_cosine(same_direction).item() == pytest.approx(1.0, abs=1e-6)


def test_dirichlet_energy_against_edge_sum_and_its_zero():
    adj = small_graph()
    x = torch.randn(5, 3, dtype=torch.float64)
    a = add_self_loops(adj).double()
    d = a.sum(1)
    by_edges = 0.5 * sum(a[i, j] * ((x[i] / d[i].sqrt() - x[j] / d[j].sqrt()) ** 2).sum()
                         for i in range(5) for j in range(5))
    assert dirichlet_energy(x, adj.double()).item() == pytest.approx(by_edges.item(), rel=1e-10)
    # the fixed point of repeated GCN propagation, sqrt(d~) times any row vector, has zero energy
    smooth = d.sqrt()[:, None] * torch.randn(1, 3, dtype=torch.float64)
    assert dirichlet_energy(smooth, adj.double()).item() == pytest.approx(0.0, abs=1e-10)
    rel = dirichlet_energy(torch.randn(4, 5, 3), adj, relative=True)
    assert rel.shape == (4,) and bool(((rel >= 0) & (rel < 2)).all())


def test_repeated_propagation_over_smooths():
    adj = random_graph(15, p=0.4, seed=9)
    op = normalized_adjacency(adj)
    h = torch.randn(15, 8)
    cos, energy = [], []
    for _ in range(30):
        cos.append(mean_pairwise_cosine(h).item())
        energy.append(dirichlet_energy(h, adj, relative=True).item())
        h = propagate(op, h)
    assert cos[-1] > 0.99 > cos[0] and energy[-1] < 1e-3 < energy[0]


# --- bad input ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("fn", [add_self_loops, degree, normalized_adjacency, laplacian, scaled_laplacian])
def test_bad_adjacency_is_refused_with_expected_and_given(fn):
    with pytest.raises(ValueError, match=r"square matrix of shape \(N, N\), got shape \(3, 4\)"):
        fn(torch.ones(3, 4))
    with pytest.raises(ValueError, match=r"non-negative edge weights, got minimum -0.5"):
        fn(torch.tensor([[0.0, -0.5], [-0.5, 0.0]]))
    with pytest.raises(ValueError, match="must be finite"):
        fn(torch.tensor([[0.0, float("nan")], [1.0, 0.0]]))
    with pytest.raises(TypeError, match="got list"):
        fn([[0.0, 1.0], [1.0, 0.0]])


def test_laplacian_needs_a_symmetric_adjacency():
    with pytest.raises(ValueError, match=r"symmetric .* got max \|adj - adj.T\| = 1"):
        laplacian(torch.tensor([[0.0, 1.0], [0.0, 0.0]]))
    with pytest.raises(ValueError, match=r"lambda_max must be a finite number in \(0, inf\], got -1"):
        scaled_laplacian(small_graph(), lambda_max=-1.0)


def test_layers_refuse_mismatched_nodes_channels_and_shapes():
    op = normalized_adjacency(small_graph())
    for layer in (GraphConv(3, 2), ChebGraphConv(3, 2, K=2)):
        with pytest.raises(ValueError, match="x has 6 nodes on axis -2 .* operator has 5 nodes"):
            layer(torch.randn(6, 3), op)
        with pytest.raises(ValueError, match=r"3 channels on its last axis, got shape \(5, 4\)"):
            layer(torch.randn(5, 4), op)
        with pytest.raises(ValueError, match="got 5 axes"):
            layer(torch.randn(1, 1, 1, 5, 3), op)
        with pytest.raises(ValueError, match=r"operator must have shape \(N, N\), got \(5, 4\)"):
            layer(torch.randn(5, 3), op[:, :4])


def test_bad_hyperparameters_are_refused():
    for K in (0, -1, 1.5):
        with pytest.raises(ValueError, match=f"must be an int >= 1, got {K}"):
            ChebGraphConv(3, 2, K=K)
        with pytest.raises(ValueError, match=f"must be an int >= 1, got {K}"):
            chebyshev_basis(torch.eye(3), K)
    with pytest.raises(ValueError, match="in_channels must be an int >= 1, got 0"):
        GraphConv(0, 2)
    with pytest.raises(ValueError, match=r"block must be one of .*, got 'resnet'"):
        DeepGCNBlock(GraphConv(2, 2), block="resnet")
    with pytest.raises(ValueError, match=r"dropout must be a finite number in \[0, 1\), got 1.5"):
        DeepGCNBlock(GraphConv(2, 2), dropout=1.5)
    with pytest.raises(ValueError, match="layout must be one of 'coo', 'csr', got 'csc'"):
        to_sparse(torch.eye(3), "csc")
    with pytest.raises(ValueError, match=r"N >= 2 nodes, got \(1, 3\)"):
        mean_pairwise_cosine(torch.ones(1, 3))
