"""Dense and sparse graph operators give the same results (issue 19): the graph layers, the STGCN with
both graph convolutions and every Chebyshev order, forward and backward, in float64; "auto" picks the
layout by the graph's size and density; the command line's --graph-operator changes nothing but speed."""

import json

import pytest
import torch
from cli_helpers import run_cli, write_network

from helpers.data import load_metro
from helpers.graph import (
    SPARSE_MAX_DENSITY,
    SPARSE_MIN_NODES,
    ChebGraphConv,
    GraphConv,
    as_layout,
    choose_layout,
    normalized_adjacency,
    scaled_laplacian,
    to_sparse,
)
from helpers.models import STGCN, STGCNConfig, graph_operator

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def sparse_graph(nodes: int, degree: float, seed: int = 0, symmetric: bool = True) -> torch.Tensor:
    """A random graph: a ring (every node linked) plus random links, about `degree` links per node."""
    g = torch.Generator().manual_seed(seed)
    adj = torch.zeros(nodes, nodes, dtype=torch.float64)
    i = torch.arange(nodes)
    adj[i, (i + 1) % nodes] = 1.0
    extra = max(0, int(degree * nodes / 2) - nodes)
    src, dst = torch.randint(0, nodes, (2, extra), generator=g)
    adj[src, dst] = torch.rand(extra, generator=g, dtype=torch.float64) + 0.5
    adj.fill_diagonal_(0)
    return adj + adj.T if symmetric else adj


def layouts(operator):
    return {"dense": operator, "coo": to_sparse(operator, "coo"), "csr": to_sparse(operator, "csr"),
            "auto": as_layout(operator, "sparse")}


@pytest.mark.parametrize("K", [1, 2, 3, 4])
def test_cheb_conv_is_the_same_with_a_sparse_operator_forward_and_backward(K):
    torch.manual_seed(0)
    op = scaled_laplacian(sparse_graph(40, 3.0))
    conv = ChebGraphConv(5, 3, K=K).double()
    x0 = torch.randn(2, 4, 40, 5, dtype=torch.float64)
    results = {}
    for name, operator in layouts(op).items():
        conv.zero_grad()
        x = x0.clone().requires_grad_()
        out = conv(x, operator)
        (out * torch.linspace(-1, 1, out.numel(), dtype=torch.float64).view_as(out)).sum().backward()
        results[name] = (out.detach(), x.grad, conv.weight.grad.clone())
    for name, got in results.items():
        for a, b in zip(got, results["dense"], strict=True):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12, msg=name)


def test_graph_conv_is_the_same_with_a_sparse_directed_operator():
    torch.manual_seed(0)
    op = normalized_adjacency(sparse_graph(30, 3.0, symmetric=False))
    assert not torch.equal(op, op.T)  # a transposed product would differ
    for conv in (GraphConv(4, 6).double(), GraphConv(6, 2).double()):  # propagate before / after W
        x0 = torch.randn(3, 30, conv.in_channels, dtype=torch.float64)
        grads = {}
        for name, operator in layouts(op).items():
            x = x0.clone().requires_grad_()
            conv(x, operator).pow(2).sum().backward()
            grads[name] = x.grad
        for name, grad in grads.items():
            torch.testing.assert_close(grad, grads["dense"], rtol=1e-12, atol=1e-12, msg=name)


@pytest.mark.parametrize("graph_conv,Ks", [("cheb", 1), ("cheb", 2), ("cheb", 3), ("cheb", 4), ("gcn", 3)])
def test_stgcn_is_the_same_with_a_dense_or_sparse_operator(graph_conv, Ks):
    adj = sparse_graph(24, 2.5).float()
    x = torch.randn(3, 10, 24, 2, dtype=torch.float64)
    y = torch.randn(3, 2, 24, dtype=torch.float64)
    results = {}
    for layout in ("dense", "sparse"):
        torch.manual_seed(0)
        config = STGCNConfig(num_nodes=24, input_len=10, horizon=2, in_channels=2, blocks=((8, 4, 8),) * 2,
                             Kt=2, Ks=Ks, graph_conv=graph_conv, graph_operator=layout)
        model = STGCN(config, adj).double()
        assert (model.operator.layout == torch.strided) == (layout == "dense")
        assert model.operator.dtype == torch.float64
        out = model(x)
        torch.nn.functional.mse_loss(out, y).backward()
        results[layout] = (out.detach(), {k: p.grad for k, p in model.named_parameters()})
    torch.testing.assert_close(results["sparse"][0], results["dense"][0], rtol=1e-12, atol=1e-12)
    for name, grad in results["dense"][1].items():
        torch.testing.assert_close(results["sparse"][1][name], grad, rtol=1e-10, atol=1e-12, msg=name)


def test_auto_is_dense_for_small_or_dense_graphs_and_sparse_for_large_sparse_ones():
    metro = load_metro()
    assert STGCN(STGCNConfig(num_nodes=metro.num_nodes), metro.adjacency).operator.layout == torch.strided
    assert graph_operator(metro.adjacency).layout == torch.strided  # the notebooks' default is unchanged
    big = sparse_graph(SPARSE_MIN_NODES + 100, 2.0).float()
    assert choose_layout(graph_operator(big)) == "sparse"
    assert STGCN(STGCNConfig(num_nodes=big.size(0)), big).operator.layout == torch.sparse_coo
    assert choose_layout(graph_operator(sparse_graph(SPARSE_MIN_NODES - 1, 2.0).float())) == "dense"
    crowded = sparse_graph(SPARSE_MIN_NODES + 100, 3 * SPARSE_MAX_DENSITY * (SPARSE_MIN_NODES + 100)).float()
    assert choose_layout(graph_operator(crowded)) == "dense"
    # The older spelling still works, and every layout can be asked for explicitly.
    assert STGCN(STGCNConfig(num_nodes=51, sparse=True), metro.adjacency).operator.layout == torch.sparse_coo
    with pytest.raises(ValueError, match="graph_operator"):
        STGCNConfig(num_nodes=51, graph_operator="csc")


def test_the_benchmark_that_the_rule_cites_records_its_crossover():
    from pathlib import Path

    result = json.loads((Path(__file__).parents[1] / "benchmarks/results/graph_scaling.json").read_text())
    assert result["crossover"]["rule_in_helpers_graph"] == {"SPARSE_MIN_NODES": SPARSE_MIN_NODES,
                                                           "SPARSE_MAX_DENSITY": SPARSE_MAX_DENSITY}
    assert {"load_average_before", "threads", "torch"} <= set(result["machine"])


def test_the_command_line_gives_the_same_forecast_with_either_layout(tmp_path, capsys):
    data = write_network(tmp_path / "net", steps=120, nodes=5)
    metrics = {}
    for layout in ("dense", "sparse"):
        status, out, err = run_cli(["--data", data, "--epochs", "1", "--out", tmp_path / layout, "--channels",
                                    "4,2,4", "--blocks", "1", "--kt", "2", "--input-len", "6", "--horizon", "2",
                                    "--batch-size", "16", "--threads", "1", "--json",
                                    "--graph-operator", layout], capsys)
        assert status == 0, err
        metrics[layout] = json.loads(out.splitlines()[-1])["metrics"]["overall"]
    assert metrics["sparse"] == pytest.approx(metrics["dense"], rel=1e-4)
