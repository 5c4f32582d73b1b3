"""helpers.models.stgcn against references no one here wrote: torch's conv1d and F.glu for the temporal gate,
PyTorch Geometric's ChebConv / GCNConv applied to each time step for the spatial part; plus shapes,
bad input, sparse operators and torch.compile tracing."""

import copy

import pytest
import torch
import torch.nn.functional as F
import torch_geometric.nn as pyg_nn
from torch import nn

from helpers.graph import ChebGraphConv, GraphConv, normalized_adjacency, scaled_laplacian, to_sparse
from helpers.models import (
    STGCN,
    Align,
    OutputBlock,
    STConvBlock,
    STGCNConfig,
    TemporalConv,
    TemporalGatedConv,
    count_parameters,
    graph_operator,
)

TOL = 1e-5
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def ring_graph(n: int = 7, chord: bool = True) -> torch.Tensor:
    """A ring of n stations, plus one chord 0-3 weighted 2: symmetric, zero diagonal."""
    adj = torch.zeros(n, n)
    for i in range(n):
        adj[i, (i + 1) % n] = adj[(i + 1) % n, i] = 1.0
    if chord:
        adj[0, 3] = adj[3, 0] = 2.0
    return adj


def edge_list(adj: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    target, source = adj.nonzero(as_tuple=True)
    return torch.stack([source, target]), adj[target, source]


def max_diff(a, b) -> float:
    return (a - b).abs().max().item()


# --- temporal gated convolution -----------------------------------------------------------------
def conv_over_time_reference(x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """The same convolution as torch's conv1d, node by node: x (B, T, N, C) -> (B, T', N, C_out)."""
    b, t, n, c = x.shape
    per_node = x.permute(0, 2, 3, 1).reshape(b * n, c, t)  # (B*N, C, T): one 1-d signal per node
    out = F.conv1d(per_node, conv.weight[..., 0], conv.bias)  # (B*N, C_out, T')
    return out.reshape(b, n, -1, out.size(-1)).permute(0, 3, 1, 2)


@pytest.mark.parametrize("c_in,c_out", [(4, 4), (3, 6), (6, 2)])
def test_glu_gate_matches_conv1d_and_F_glu(c_in, c_out):
    torch.manual_seed(0)
    layer = TemporalGatedConv(c_in, c_out, kernel_size=3, gate="glu")
    x = torch.randn(2, 9, 5, c_in)
    h = conv_over_time_reference(x, layer.conv)  # (B, 7, N, 2 C_out)
    residual = layer.align(x[:, 2:])
    expected = F.glu(torch.cat([h[..., :c_out] + residual, h[..., c_out:]], dim=-1), dim=-1)
    out = layer(x)
    assert out.shape == (2, 7, 5, c_out)
    assert max_diff(out, expected) < TOL


def test_notes_gate_matches_relu_of_gated_conv_plus_third_conv():
    torch.manual_seed(1)
    layer = TemporalGatedConv(3, 4, kernel_size=2, gate="notes")
    x = torch.randn(2, 6, 5, 3)
    p, q, r = conv_over_time_reference(x, layer.conv).chunk(3, dim=-1)
    assert max_diff(layer(x), torch.relu(p * torch.sigmoid(q) + r)) < TOL
    assert layer.align is None and layer.conv.out_channels == 12


def test_temporal_conv_is_causal_in_its_window():
    """Output step t sees input steps t .. t + Kt - 1 only: changing the first input step changes only output 0."""
    torch.manual_seed(2)
    layer = TemporalGatedConv(2, 3, kernel_size=3)
    x = torch.randn(1, 8, 4, 2)
    y = x.clone()
    y[:, 0] += 1.0
    diff = (layer(x) - layer(y)).abs().amax(dim=(0, 2, 3))
    assert diff[0] > 0 and torch.all(diff[1:] == 0)


def test_align_pads_projects_or_passes_through():
    x = torch.randn(2, 3, 4, 5)
    assert torch.equal(Align(5, 5)(x), x)
    padded = Align(5, 8)(x)
    assert torch.equal(padded[..., :5], x) and torch.all(padded[..., 5:] == 0)
    projected = Align(5, 2)
    assert projected(x).shape == (2, 3, 4, 2) and count_parameters(projected) == 10


@pytest.mark.parametrize("bad", [torch.randn(2, 6, 5), torch.randn(2, 6, 5, 4), torch.randn(2, 2, 5, 3)])
def test_temporal_conv_rejects_bad_shapes(bad):
    with pytest.raises(ValueError, match=r"\(batch, time >= 3, nodes, 3\)"):
        TemporalGatedConv(3, 4, kernel_size=3)(bad)


@pytest.mark.parametrize("kwargs,match", [
    (dict(gate="tanh"), "gate must be one of"),
    (dict(kernel_size=0), "kernel_size must be an int >= 1"),
    (dict(in_channels=2.0), "in_channels must be an int >= 1"),
])
def test_temporal_conv_rejects_bad_arguments(kwargs, match):
    args = dict(in_channels=2, out_channels=3, kernel_size=3) | kwargs
    with pytest.raises(ValueError, match=match):
        TemporalGatedConv(**args)


# --- the ST-Conv block: the graph convolution acts on each time step, as PyG layers on snapshots -----
@pytest.mark.parametrize("kind", ["cheb", "gcn"])
def test_st_block_equals_pyg_layer_applied_per_time_step(kind):
    torch.manual_seed(3)
    adj = ring_graph()
    n, b, t = adj.size(0), 2, 7
    spatial = ChebGraphConv(4, 3, K=3) if kind == "cheb" else GraphConv(4, 3)
    block = STConvBlock(TemporalGatedConv(2, 4, 3), spatial, TemporalGatedConv(3, 5, 3), norm=nn.LayerNorm([n, 5]))
    x = torch.randn(b, t, n, 2)
    operator = graph_operator(adj, kind)

    # Reference: PyG's layer with the same weights, called on each (sample, time step) snapshot in turn.
    edge_index, edge_weight = edge_list(adj)
    if kind == "cheb":
        lambda_max = torch.linalg.eigvalsh(torch.eye(n) - normalized_adjacency(adj, add_self_loops=False)).max()
        ref = pyg_nn.ChebConv(4, 3, K=3, normalization="sym")
        for k, lin in enumerate(ref.lins):
            lin.weight.data = spatial.weight[k].T.clone()
        call = lambda h: ref(h, edge_index, edge_weight, lambda_max=lambda_max)  # noqa: E731
    else:
        ref = pyg_nn.GCNConv(4, 3)
        ref.lin.weight.data = spatial.weight.T.clone()
        call = lambda h: ref(h, edge_index, edge_weight)  # noqa: E731
    ref.bias.data = spatial.bias.detach().clone()
    h = block.temporal_in(x)
    g = torch.stack([torch.stack([call(h[i, s]) for s in range(h.size(1))]) for i in range(b)])
    expected = block.norm(block.temporal_out(torch.relu(g + block.spatial_align(h))))

    out = block(x, operator)
    assert out.shape == (b, t - 4, n, 5)
    assert max_diff(out, expected) < 1e-4


def test_st_block_takes_its_parts_and_resets_them():
    block = STConvBlock(TemporalGatedConv(1, 4, 2), GraphConv(4, 4), TemporalGatedConv(4, 4, 2), dropout=0.1)
    assert isinstance(block.spatial, GraphConv) and block.norm is None
    before = [p.detach().clone() for p in block.parameters()]
    torch.manual_seed(4)
    block.reset_parameters()
    changed = [not torch.equal(a, p) for a, p in zip(before, block.parameters(), strict=True)]
    assert sum(changed) >= 4  # both convolutions' weights and the graph weight were re-drawn
    with pytest.raises(TypeError, match="spatial must be an nn.Module"):
        STConvBlock(TemporalGatedConv(1, 4, 2), "cheb", TemporalGatedConv(4, 4, 2))


def test_output_block_predicts_every_horizon_step():
    out = OutputBlock(6, time_steps=4, horizon=3, out_channels=2, hidden_channels=8, norm=nn.LayerNorm([5, 6]))
    y = out(torch.randn(2, 4, 5, 6))
    assert y.shape == (2, 3, 5, 2)
    assert out.temporal.kernel_size == 4


def layer_norm_reference(h: torch.Tensor, norm: nn.LayerNorm) -> torch.Tensor:
    """LayerNorm over the last two axes (nodes, channels) of each (sample, time step), by hand."""
    mean = h.mean(dim=(-2, -1), keepdim=True)
    var = h.var(dim=(-2, -1), unbiased=False, keepdim=True)
    return (h - mean) / torch.sqrt(var + norm.eps) * norm.weight + norm.bias


def test_output_block_values_follow_horizon_then_node_order():
    """Every output value by hand: node i's features go through fc1 - ReLU - fc2, whose output k * C + c is
    horizon step k, channel c, placed at out[b, k, i, c]."""
    torch.manual_seed(3)
    out = OutputBlock(6, time_steps=4, horizon=3, out_channels=2, hidden_channels=8, norm=nn.LayerNorm([5, 6]))
    nn.init.normal_(out.norm.weight)
    nn.init.normal_(out.norm.bias)
    x = torch.randn(2, 4, 5, 6)
    y = out(x)
    h = layer_norm_reference(out.temporal(x), out.norm)[:, 0]  # (B, N, C): the one time step left
    expected = torch.empty(2, 3, 5, 2)
    for b in range(2):
        for i in range(5):
            hidden = torch.relu(out.fc1.weight @ h[b, i] + out.fc1.bias)
            head = out.fc2.weight @ hidden + out.fc2.bias  # (horizon * out_channels,)
            for k in range(3):
                for c in range(2):
                    expected[b, k, i, c] = head[k * 2 + c]
    assert max_diff(y, expected) < TOL


def test_stgcn_layer_norm_is_over_nodes_and_channels():
    """The paper's LayerNorm: each time step of each sample normalised over all nodes and channels together."""
    torch.manual_seed(4)
    model = STGCN(small_config(norm="layer"), ring_graph())
    norms = [block.norm for block in model.blocks] + [model.output.norm]
    for norm in norms:
        assert norm.normalized_shape == (7, 8)
        nn.init.normal_(norm.weight)
        nn.init.normal_(norm.bias)
        h = 3 + 2 * torch.randn(2, 4, 7, 8) + torch.arange(7.0)[:, None]  # nodes with different levels
        assert max_diff(norm(h), layer_norm_reference(h, norm)) < TOL


# --- the model ----------------------------------------------------------------------------------
def small_config(**kwargs) -> STGCNConfig:
    return STGCNConfig(**(dict(num_nodes=7, input_len=8, horizon=3, blocks=((8, 4, 8), (8, 4, 8)), Kt=2,
                               hidden_channels=16) | kwargs))


@pytest.mark.parametrize("graph_conv,gate,norm", [("cheb", "glu", "layer"), ("gcn", "notes", "batch"),
                                                   ("cheb", "notes", "none"), ("gcn", "glu", "layer")])
def test_stgcn_shapes_and_gradients(graph_conv, gate, norm):
    torch.manual_seed(5)
    model = STGCN(small_config(graph_conv=graph_conv, gate=gate, norm=norm), ring_graph())
    x = torch.randn(4, 8, 7, 1)
    y = model(x)
    assert y.shape == (4, 3, 7)
    y.square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    assert torch.equal(model(x[..., 0]), model(x)) or norm == "batch"  # (B, T, N) is accepted for one channel


def test_stgcn_multichannel_input_and_output():
    """Two input and two output channels: the values are the blocks, then the output head read as (horizon,
    channel) per node; every input channel matters."""
    torch.manual_seed(8)
    model = STGCN(small_config(in_channels=2, out_channels=2, blocks=((8, 4, 8),), input_len=5), ring_graph())
    model.eval()
    x = torch.randn(3, 5, 7, 2)
    y = model(x)
    assert y.shape == (3, 3, 7, 2)
    h = x
    for block in model.blocks:
        h = block(h, model.operator)
    z = layer_norm_reference(model.output.temporal(h), model.output.norm)[:, 0]  # (B, N, C)
    head = model.output.fc2(torch.relu(model.output.fc1(z)))  # (B, N, horizon * out_channels)
    expected = torch.stack([torch.stack([head[:, :, 2 * k + c] for c in range(2)], dim=-1) for k in range(3)],
                           dim=1)  # (B, horizon, N, out_channels)
    assert max_diff(y, expected) < TOL
    for channel in range(2):
        changed = x.clone()
        changed[..., channel] += 1.0
        assert max_diff(model(changed), y) > 1e-3


def test_stgcn_samples_are_independent_in_eval_mode():
    """Vectorised over the batch with no mixing: a sample's forecast does not depend on its batch mates."""
    torch.manual_seed(6)
    model = STGCN(small_config(), ring_graph()).eval()
    x = torch.randn(5, 8, 7, 1)
    assert max_diff(model(x)[2:3], model(x[2:3])) < TOL


@pytest.mark.parametrize("layout", ["coo", "csr"])
def test_sparse_operator_gives_the_dense_result(layout):
    torch.manual_seed(7)
    model = STGCN(small_config(), ring_graph())
    x = torch.randn(2, 8, 7, 1)
    assert max_diff(model(x, to_sparse(model.operator, layout)), model(x)) < TOL
    sparse_model = STGCN(small_config(sparse=True), ring_graph())
    sparse_model.load_state_dict(model.state_dict())
    assert sparse_model.operator.is_sparse and max_diff(sparse_model(x), model(x)) < TOL


def test_graph_operator_ignores_stored_self_loops():
    adj = ring_graph()
    with_loops = adj + torch.eye(adj.size(0))
    assert torch.allclose(graph_operator(with_loops, "cheb"), scaled_laplacian(adj))
    assert torch.allclose(graph_operator(with_loops, "gcn"), normalized_adjacency(adj))
    with pytest.raises(ValueError, match="kind must be one of"):
        graph_operator(adj, "gat")


def test_state_dict_holds_weights_not_the_graph():
    model = STGCN(small_config(), ring_graph())
    assert "operator" not in model.state_dict()
    assert count_parameters(model) == sum(v.numel() for k, v in model.state_dict().items()
                                          if "running" not in k and "num_batches" not in k)


@pytest.mark.parametrize("shape", [(2, 7, 7, 1), (2, 8, 6, 1), (2, 8, 7, 2), (8, 7), (2, 7, 8, 1)])
def test_stgcn_rejects_a_wrong_layout_naming_the_expected_one(shape):
    model = STGCN(small_config(), ring_graph())
    with pytest.raises(ValueError, match=r"expects x of shape \(batch, time=8, nodes=7, channels=1\)"):
        model(torch.randn(*shape))


@pytest.mark.parametrize("kwargs,match", [
    (dict(input_len=4), "input_len=4 is too short for 2 blocks with Kt=2"),
    (dict(graph_conv="gat"), "graph_conv must be one of"),
    (dict(gate="tanh"), "gate must be one of"),
    (dict(norm="group"), "norm must be one of"),
    (dict(blocks=((8, 4),)), "channel triples"),
    (dict(blocks=()), "channel triples"),
    (dict(dropout=1.0), r"dropout must be a finite number in \[0, 1\)"),
    (dict(num_nodes=0), "num_nodes must be an int >= 1"),
])
def test_config_rejects_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        small_config(**kwargs)


def test_adjacency_must_match_the_node_count():
    with pytest.raises(ValueError, match=r"adj must have shape \(7, 7\)"):
        STGCN(small_config(), torch.ones(6, 6))


def test_reset_parameters_redraws_every_weight_reproducibly():
    model = STGCN(small_config(), ring_graph())
    torch.manual_seed(8)
    model.reset_parameters()
    first = {k: v.clone() for k, v in model.state_dict().items()}
    torch.manual_seed(8)
    model.reset_parameters()
    assert all(torch.equal(first[k], v) for k, v in model.state_dict().items())
    torch.manual_seed(9)
    model.reset_parameters()
    weights = [k for k in first if k.endswith("weight") and "norm" not in k]
    assert all(not torch.equal(first[k], model.state_dict()[k]) for k in weights)


def test_repr_says_what_the_model_is():
    model = STGCN(small_config(), ring_graph())
    text = repr(model)
    assert f"parameters={count_parameters(model):,}" in text
    assert "input_len=8 -> horizon=3" in text and "graph_conv='cheb' (Ks=3)" in text
    assert f"norm='layer', parameters={count_parameters(model):,}" in text
    assert "TemporalGatedConv(\n" in text and "1, 8, Kt=2, gate='glu'" in text
    assert "ChebGraphConv(8, 4, K=3" in text and "Align(\n        8, 4, project" in text


def test_config_round_trips_through_a_plain_dict():
    config = small_config(dropout=0.1)
    d = config.to_dict()
    assert d["blocks"] == [[8, 4, 8], [8, 4, 8]]
    assert STGCNConfig(**d) == config


def test_torch_compile_traces_the_whole_model_without_graph_breaks():
    torch.manual_seed(10)
    model = STGCN(small_config(), ring_graph()).eval()
    compiled = torch.compile(model, backend="eager", fullgraph=True)
    x = torch.randn(2, 8, 7, 1)
    assert max_diff(compiled(x), model(x)) < TOL


@pytest.mark.parametrize("device", DEVICES)
def test_model_follows_the_device(device):
    """Weights and the graph operator move with .to(device), and the forecasts there are the CPU ones."""
    torch.manual_seed(12)
    model = STGCN(small_config(), ring_graph()).eval()
    x = torch.randn(2, 8, 7, 1)
    expected = model(x)
    moved = copy.deepcopy(model).to(device)
    assert moved.operator.device.type == device
    assert all(t.device.type == device for t in [*moved.parameters(), *moved.buffers()])
    y = moved(x.to(device))
    assert y.device.type == device
    assert max_diff(y.cpu(), expected) < (TOL if device == "cpu" else 1e-3)  # cuDNN may use TF32


def test_predict_change_adds_the_last_input_step_to_the_same_network():
    torch.manual_seed(11)
    plain = STGCN(small_config(in_channels=2), ring_graph()).eval()
    change = STGCN(small_config(in_channels=2, predict_change=True), ring_graph()).eval()
    change.load_state_dict(plain.state_dict())
    x = torch.randn(3, 8, 7, 2)
    assert max_diff(change(x), plain(x) + x[:, -1:, :, 0]) < TOL
    assert "predict_change=True" in repr(change)
    with pytest.raises(ValueError, match="needs out_channels <= in_channels"):
        small_config(out_channels=2, predict_change=True)


# --- notebook 08's claim on the shipped data ------------------------------------------------------
def test_on_metro_the_stgcn_beats_the_lstm_which_beats_the_historical_average():
    """Notebook 08 trains both networks with these settings (6 epochs each, seeds 0, 2 threads) on the metro
    data with the clock as input, and compares their test MAE over the 3 horizon steps (45 minutes)."""
    from torch.utils.data import DataLoader

    from helpers.data import add_time_of_day, load_metro, make_splits
    from helpers.models import baseline_forecast
    from helpers.train import evaluate, fit_lstm_forecaster, forecast_metrics, train_forecaster

    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        ds = add_time_of_day(load_metro())
        splits = make_splits(ds, input_len=12, output_len=3)
        torch.manual_seed(0)
        config = STGCNConfig(num_nodes=ds.num_nodes, input_len=12, horizon=3, in_channels=ds.num_channels,
                             blocks=((16, 8, 16), (16, 8, 16)), Kt=3, Ks=3)
        stgcn = STGCN(config, ds.adjacency)
        train_forecaster(stgcn, splits, epochs=6, batch_size=64, lr=5e-3, seed=0)
        lstm = fit_lstm_forecaster(ds, input_len=12, horizon=3, epochs=6, seed=0)
    finally:
        torch.set_num_threads(threads)
    test = DataLoader(splits.test, batch_size=256)
    mae = {
        "stgcn": evaluate(stgcn, test, splits.scaler, min_target=10)["overall"]["mae"],
        "lstm": evaluate(lstm.model, DataLoader(lstm.splits.test, batch_size=256), lstm.splits.scaler,
                         min_target=10)["overall"]["mae"],
        "ha": forecast_metrics(*baseline_forecast("ha", ds, splits), min_target=10)["overall"]["mae"],
    }
    assert mae["stgcn"] < 0.97 * mae["lstm"] and mae["lstm"] < 0.95 * mae["ha"], mae


def test_on_los_loop_two_epochs_beat_persistence_clearly(shared_dir):
    """Notebook 08's real-data claim, with its settings: an STGCN forecasting the change from the last reading,
    trained for 2 epochs, beats last-value persistence by more than 5% in RMSE and MAE on the test part."""
    from torch.utils.data import DataLoader

    from helpers.data import load_los_loop, make_splits
    from helpers.models import baseline_forecast
    from helpers.train import evaluate, forecast_metrics, train_forecaster

    los = load_los_loop(shared_dir / "data" / "los-loop", download=False)
    splits = make_splits(los, input_len=12, output_len=3)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        torch.manual_seed(0)
        model = STGCN(STGCNConfig(num_nodes=los.num_nodes, input_len=12, horizon=3, blocks=((16, 8, 16),) * 2,
                                  graph_conv="gcn", predict_change=True), los.adjacency)
        train_forecaster(model, splits, epochs=2, batch_size=16, lr=3e-3, loss="huber", seed=0)
    finally:
        torch.set_num_threads(threads)
    stgcn = evaluate(model, DataLoader(splits.test, batch_size=256), splits.scaler)["overall"]
    persistence = forecast_metrics(*baseline_forecast("persistence", los, splits))["overall"]
    assert stgcn["rmse"] < 0.95 * persistence["rmse"] and stgcn["mae"] < 0.95 * persistence["mae"], (stgcn, persistence)


@pytest.mark.parametrize("c_in, kernel", [(1, 3), (4, 3), (3, 4)])
def test_temporal_conv_matches_conv2d_forward_and_backward(c_in, kernel):
    """`TemporalConv`'s matrix-product weight gradient against torch's own conv2d (float64)."""
    torch.manual_seed(0)
    conv = TemporalConv(c_in, 6, kernel).double()
    x = torch.randn(2, 7, 5, c_in, dtype=torch.float64, requires_grad=True)
    grad = torch.randn(2, 8 - kernel, 5, 6, dtype=torch.float64)
    ours = conv(x)
    ours_grads = torch.autograd.grad(ours, [x, conv.weight, conv.bias], grad)
    ref = F.conv2d(x.permute(0, 3, 1, 2), conv.weight, conv.bias).permute(0, 2, 3, 1)
    ref_grads = torch.autograd.grad(ref, [x, conv.weight, conv.bias], grad)
    assert isinstance(conv, nn.Conv2d) and ours.shape == (2, 8 - kernel, 5, 6)
    assert (ours - ref).abs().max() < 1e-12
    for a, b in zip(ours_grads, ref_grads, strict=True):
        assert (a - b).abs().max() < 1e-12
    assert torch.autograd.gradcheck(conv, (x,))


def test_temporal_conv_skips_gradients_nobody_asked_for_and_keeps_hooks():
    conv = TemporalConv(2, 3, 2)
    conv.weight.requires_grad_(False)
    seen = []
    conv.register_forward_hook(lambda module, inputs, output: seen.append(tuple(output.shape)))
    x = torch.randn(1, 4, 3, 2)  # no gradient for the input either
    conv(x).sum().backward()
    assert conv.weight.grad is None and conv.bias.grad is not None and seen == [(1, 3, 3, 3)]
