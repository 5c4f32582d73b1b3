"""The spatio-temporal graph convolutional network (STGCN) of Yu, Yin and Zhu (IJCAI 2018).

Layout: every tensor here is `(batch, time, nodes, channels)`, channels last, like `helpers.graph`.
The authors' TensorFlow code uses `[batch, time, nodes, channels]` too; the study notes use
`(batch, channels, time, nodes)` or `(batch, nodes, time, features)`. Only the temporal convolution
needs channels first, and `TemporalConv` permutes internally (a free view: a contiguous
`(B, T, N, C)` tensor permuted to `(B, C, T, N)` is exactly the channels-last memory layout `Conv2d`
likes).

The pieces, smallest first:
- `TemporalConv`: a `Conv2d` with kernel (Kt, 1) that takes and returns `(B, T, N, C)` tensors.
- `Align`: makes a skip connection's channels match (identity, zero-padding, or a 1x1 projection).
- `TemporalGatedConv`: a 1-d convolution over time (kernel `Kt`, no padding: time shrinks by
  `Kt - 1`) with a gate, either the authors' code's GLU with residual `(P + x) * sigmoid(Q)` (the paper's equation
  has no residual: `P * sigmoid(Q)`) or the notes'
  form `relu(P * sigmoid(Q) + R)` (three convolutions).
- `STConvBlock`: the "sandwich" temporal - spatial - temporal, with a residual around the graph
  convolution, then normalisation and dropout. Its parts are passed in, so swapping Chebyshev for
  first-order graph convolution (or LayerNorm for BatchNorm) is one argument.
- `OutputBlock`: a temporal convolution over all remaining time steps, normalisation and a two-layer
  fully connected head producing `horizon` steps at once.
- `STGCN(config, adj)`: two (or more) blocks and the output block, built from an `STGCNConfig`.
- `graph_operator` (the matrix the graph convolutions multiply by, dense or sparse: the faster for the
  graph unless `STGCNConfig.graph_operator` says which), `count_parameters`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from helpers.checks import check_choice, check_int, check_number
from helpers.graph import (
    OPERATOR_LAYOUTS,
    ChebGraphConv,
    GraphConv,
    as_layout,
    normalized_adjacency,
    scaled_laplacian,
)

GATES = ("glu", "notes")
GRAPH_CONVS = ("cheb", "gcn")
NORMS = ("layer", "batch", "none")


def count_parameters(model: nn.Module) -> int:
    """The number of trainable parameters (elements) of a model."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# --- graph operator -----------------------------------------------------------------------------
def graph_operator(adj: Tensor, kind: str = "cheb", sparse: bool = False, layout: str = "dense"
                   ) -> Tensor:
    """The matrix a graph layer multiplies node features by, built from an adjacency.

    adj: (N, N) symmetric, non-negative. Its diagonal is ignored (some datasets, like Los-loop,
    store self-loops; others do not), so every dataset gets the same operator:
    kind="cheb": the scaled Laplacian 2 L / lambda_max - I of the paper (for `ChebGraphConv`);
    kind="gcn": the GCN operator D^-1/2 (A + I) D^-1/2 (for `GraphConv`).
    layout: "dense", "sparse" (a COO tensor; `sparse=True` is the same) or "auto" (the faster of the
    two for this graph: `helpers.graph.as_layout`). Returns (N, N).
    """
    check_choice("kind", kind, GRAPH_CONVS)
    check_choice("layout", layout, OPERATOR_LAYOUTS)
    if not isinstance(adj, Tensor) or adj.dim() != 2 or adj.size(0) != adj.size(1):
        given = tuple(adj.shape) if isinstance(adj, Tensor) else type(adj).__name__
        raise ValueError(f"adj must be a square (N, N) tensor, got {given}")
    adj = adj.float() if not adj.is_floating_point() else adj
    adj = adj * (1 - torch.eye(adj.size(0), dtype=adj.dtype, device=adj.device))  # no self-loops
    operator = scaled_laplacian(adj) if kind == "cheb" else normalized_adjacency(adj)
    return as_layout(operator, "sparse" if sparse else layout)


# --- building blocks ----------------------------------------------------------------------------
class Align(nn.Module):
    """Match channels for a skip connection, as in the authors' code: x (..., C_in) -> (..., C_out).

    C_in == C_out: identity; C_in < C_out: zero-pad the extra channels (no parameters);
    C_in > C_out: a learned 1x1 projection (a bias-free Linear on the channel axis).
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.in_channels = check_int("in_channels", in_channels)
        self.out_channels = check_int("out_channels", out_channels)
        projects = in_channels > out_channels
        self.proj = nn.Linear(in_channels, out_channels, bias=False) if projects else None

    def reset_parameters(self) -> None:
        if self.proj is not None:
            self.proj.reset_parameters()

    def forward(self, x: Tensor) -> Tensor:
        if self.proj is not None:
            return self.proj(x)
        if self.out_channels > self.in_channels:
            return F.pad(x, (0, self.out_channels - self.in_channels))
        return x

    def extra_repr(self) -> str:
        if self.proj is not None:
            how = "project"
        else:
            how = "zero-pad" if self.out_channels > self.in_channels else "identity"
        return f"{self.in_channels}, {self.out_channels}, {how}"


class TemporalConv(nn.Conv2d):
    """A convolution over time for channels-last tensors: a `Conv2d` with kernel (Kt, 1) (its
    parameters and state_dict) that takes x (B, T, N, C_in) and returns (B, T - Kt + 1, N, C_out),
    `conv2d(x.permute(0, 3, 1, 2))` permuted back.

    On a CPU without autocast the weight gradient is one matrix product (`_TimeConvFunction`)
    instead of oneDNN's convolution backward, which was slower for the STGCN's layers
    (benchmarks/results/large_network.json); the results are the same up to rounding (tested).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int):
        super().__init__(in_channels, out_channels, kernel_size=(kernel_size, 1))

    def forward(self, x: Tensor) -> Tensor:
        if x.device.type == "cpu" and not torch.is_autocast_enabled("cpu"):
            return _TimeConvFunction.apply(x, self.weight, self.bias)
        return super().forward(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


class _TimeConvFunction(torch.autograd.Function):
    """conv2d over time of channels-last x, with the weight gradient as one matrix product. Row r of
    the windows matrix holds the Kt input steps that output row r (one of B T' N) saw, C_in
    channels each: grad_weight = windows^T grad_out, all taps at once. The input gradient is the
    transposed convolution of grad_out, as in torch's own backward."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        ctx.save_for_backward(x, weight)
        return F.conv2d(x.permute(0, 3, 1, 2), weight, bias).permute(0, 2, 3, 1)

    @staticmethod
    def backward(ctx, grad_out: Tensor) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
        x, weight = ctx.saved_tensors
        c_out, c_in, kt = weight.shape[:3]
        steps, g = grad_out.size(1), grad_out.reshape(-1, c_out)  # (B T' N, C_out)
        grad_x = grad_weight = None
        if ctx.needs_input_grad[0]:
            grad_x = F.conv_transpose2d(grad_out.permute(0, 3, 1, 2), weight).permute(0, 2, 3, 1)
        if ctx.needs_input_grad[1]:
            windows = torch.cat([x[:, k : k + steps] for k in range(kt)], dim=-1)  # (B, T', N, Kt C_in)
            grad_weight = (windows.reshape(-1, kt * c_in).T @ g).view(kt, c_in, c_out)
            grad_weight = grad_weight.permute(2, 1, 0).unsqueeze(-1).contiguous()
        return grad_x, grad_weight, g.sum(0) if ctx.needs_input_grad[2] else None


class TemporalGatedConv(nn.Module):
    """Temporal gated convolution (时间门控卷积): a 1-d convolution over time, shared by all
    nodes, then a gate.

    x: (batch, time, nodes, in_channels) -> (batch, time - Kt + 1, nodes, out_channels).
    One `Conv2d` with kernel (Kt, 1) computes all the convolutions at once (2 or 3 times
    `out_channels` output channels), then the output is split:
    gate="glu"   (the authors' code): (P + Align(x)[:, Kt-1:]) * sigmoid(Q); the residual is the
                 input's last time steps, the ones the convolution window ends on (the paper's
                 equation has no residual: P * sigmoid(Q)).
    gate="notes" (the study notes, PyTorch Geometric Temporal): relu(P * sigmoid(Q) + R).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, gate: str = "glu"):
        super().__init__()
        self.in_channels = check_int("in_channels", in_channels)
        self.out_channels = check_int("out_channels", out_channels)
        self.kernel_size = check_int("kernel_size", kernel_size)
        self.gate = check_choice("gate", gate, GATES)
        parts = 2 if gate == "glu" else 3
        self.conv = TemporalConv(in_channels, parts * out_channels, kernel_size)
        self.align = Align(in_channels, out_channels) if gate == "glu" else None

    def reset_parameters(self) -> None:
        self.conv.reset_parameters()
        if self.align is not None:
            self.align.reset_parameters()

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.size(-1) != self.in_channels or x.size(1) < self.kernel_size:
            raise ValueError(f"x must have shape (batch, time >= {self.kernel_size}, nodes, "
                             f"{self.in_channels}), got {tuple(x.shape)}")
        h = self.conv(x)  # (B, T', N, parts * C_out)
        if self.gate == "glu":
            p, q = h.chunk(2, dim=-1)
            return (p + self.align(x[:, self.kernel_size - 1 :])) * torch.sigmoid(q)
        p, q, r = h.chunk(3, dim=-1)
        return torch.relu(p * torch.sigmoid(q) + r)

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, Kt={self.kernel_size}, gate={self.gate!r}"


class STConvBlock(nn.Module):
    """The spatio-temporal convolution block (时空卷积块): temporal - spatial - temporal, then
    norm and dropout.

    forward(x, operator): x (batch, time, nodes, C_in) -> (batch, time - 2 (Kt - 1), nodes, C_out).
      h = temporal_in(x)                          # (B, T - Kt + 1, N, C_t)
      h = relu(spatial(h, operator) + Align(h))   # the graph convolution acts on every time step
      h = dropout(norm(temporal_out(h)))          # (B, T - 2 (Kt - 1), N, C_out)
    The parts are modules passed in: `temporal_in`/`temporal_out` are `TemporalGatedConv`s (or
    anything with the same shapes), `spatial` is a `ChebGraphConv` or `GraphConv` (any module called
    `spatial(x, operator)` with `in_channels`/`out_channels` attributes), `norm` acts on
    (B, T, N, C) (e.g. `nn.LayerNorm([N, C])`, the paper's choice) or is None.
    """

    def __init__(self, temporal_in: nn.Module, spatial: nn.Module, temporal_out: nn.Module,
                 norm: nn.Module | None = None, dropout: float = 0.0):
        super().__init__()
        parts = {"temporal_in": temporal_in, "spatial": spatial, "temporal_out": temporal_out}
        for name, part in parts.items():
            if not isinstance(part, nn.Module):
                raise TypeError(f"{name} must be an nn.Module, got {type(part).__name__}")
        check_number("dropout", dropout, 0, 1, high_open=True)
        self.temporal_in, self.spatial, self.temporal_out = temporal_in, spatial, temporal_out
        self.spatial_align = Align(spatial.in_channels, spatial.out_channels)
        self.norm = norm
        self.dropout = nn.Dropout(dropout)

    def reset_parameters(self) -> None:
        parts = (self.temporal_in, self.spatial, self.spatial_align, self.temporal_out, self.norm)
        for module in parts:
            if module is not None and hasattr(module, "reset_parameters"):
                module.reset_parameters()

    def forward(self, x: Tensor, operator: Tensor) -> Tensor:
        h = self.temporal_in(x)
        h = torch.relu(self.spatial(h, operator) + self.spatial_align(h))
        h = self.temporal_out(h)
        if self.norm is not None:
            h = self.norm(h)
        return self.dropout(h)


class OutputBlock(nn.Module):
    """Output block: collapse the remaining time steps, normalise, and predict every horizon step
    at once.

    x: (batch, time_steps, nodes, in_channels) -> (batch, horizon, nodes, out_channels).
    A `TemporalGatedConv` whose kernel spans all `time_steps` leaves one step; `norm`; then a fully
    connected head Linear(in, hidden) - ReLU - Linear(hidden, horizon * out_channels), applied per
    node.
    """

    def __init__(self, in_channels: int, time_steps: int, horizon: int, out_channels: int = 1,
                 hidden_channels: int = 128, gate: str = "glu", norm: nn.Module | None = None):
        super().__init__()
        check_int("time_steps", time_steps)
        self.horizon = check_int("horizon", horizon)
        self.out_channels = check_int("out_channels", out_channels)
        check_int("hidden_channels", hidden_channels)
        self.temporal = TemporalGatedConv(in_channels, in_channels, time_steps, gate=gate)
        self.norm = norm
        self.fc1 = nn.Linear(in_channels, hidden_channels)
        self.fc2 = nn.Linear(hidden_channels, horizon * out_channels)

    def reset_parameters(self) -> None:
        for module in (self.temporal, self.norm, self.fc1, self.fc2):
            if module is not None and hasattr(module, "reset_parameters"):
                module.reset_parameters()

    def forward(self, x: Tensor) -> Tensor:
        h = self.temporal(x)  # (B, 1, N, C)
        if self.norm is not None:
            h = self.norm(h)
        h = self.fc2(torch.relu(self.fc1(h[:, 0])))  # (B, N, horizon * out_channels)
        b, n = h.shape[:2]  # to (B, horizon, N, out_channels):
        return h.reshape(b, n, self.horizon, self.out_channels).transpose(1, 2)

    def extra_repr(self) -> str:
        return f"horizon={self.horizon}, out_channels={self.out_channels}"


# --- the model ----------------------------------------------------------------------------------
@dataclass
class STGCNConfig:
    """Everything that defines an STGCN except the graph.

    blocks: one (temporal, spatial, temporal) channel triple per ST-Conv block; the paper uses
    ((64, 16, 64), (64, 16, 64)). Each block shortens time by 2 (Kt - 1); the output block then
    spans what is left, so `input_len > 2 (Kt - 1) len(blocks)` is required.
    graph_conv: "cheb" (Chebyshev of order Ks, the paper) or "gcn" (first order, common code; Ks
    unused). gate: "glu" (the authors' code) or "notes"; norm: "layer" (LayerNorm over nodes and channels, the
    paper), "batch" (BatchNorm over channels) or "none". graph_operator: the layout of the graph
    operator, "auto" (sparse for a large sparse graph, dense otherwise: `helpers.graph.as_layout`),
    "dense" or "sparse"; results agree up to rounding. sparse=True is an older spelling of "sparse".
    out_channels=1 gives outputs (batch, horizon, nodes); more gives (batch, horizon, nodes,
    out_channels). predict_change: the network forecasts the change from the last input step, which
    is added back, so an untrained model starts as the persistence forecast; the targets must be the
    first `out_channels` input channels (as `make_splits` arranges: target channel 0).
    """

    num_nodes: int
    input_len: int = 12
    horizon: int = 3
    in_channels: int = 1
    out_channels: int = 1
    blocks: tuple[tuple[int, int, int], ...] = ((64, 16, 64), (64, 16, 64))
    Kt: int = 3
    Ks: int = 3
    graph_conv: str = "cheb"
    gate: str = "glu"
    norm: str = "layer"
    dropout: float = 0.0
    hidden_channels: int = 128
    sparse: bool = False
    predict_change: bool = False
    graph_operator: str = "auto"

    def __post_init__(self):
        for name in ("num_nodes", "input_len", "horizon", "in_channels", "out_channels", "Kt", "Ks",
                     "hidden_channels"):
            check_int(name, getattr(self, name))
        self.blocks = tuple(tuple(b) for b in self.blocks)
        if not self.blocks or any(len(b) != 3 for b in self.blocks):
            raise ValueError(f"blocks must be a non-empty sequence of (temporal, spatial, "
                             f"temporal) channel triples, got {self.blocks!r}")
        for width in (c for b in self.blocks for c in b):
            check_int("every channel width in blocks", width)
        for name, allowed in (("graph_conv", GRAPH_CONVS), ("gate", GATES), ("norm", NORMS),
                              ("graph_operator", OPERATOR_LAYOUTS)):
            check_choice(name, getattr(self, name), allowed)
        check_number("dropout", self.dropout, 0, 1, high_open=True)
        if self.predict_change and self.out_channels > self.in_channels:
            raise ValueError(f"predict_change adds the last input step to the forecast, so it "
                             f"needs out_channels <= in_channels, got out_channels="
                             f"{self.out_channels} > in_channels={self.in_channels}")
        if self.time_left < 1:
            removed = 2 * (self.Kt - 1)
            raise ValueError(f"input_len={self.input_len} is too short for {len(self.blocks)} "
                             f"blocks with Kt={self.Kt}: each block removes 2 (Kt - 1) = "
                             f"{removed} steps; expected input_len > {removed * len(self.blocks)}")

    @property
    def time_left(self) -> int:
        """Time steps that reach the output block."""
        return self.input_len - 2 * (self.Kt - 1) * len(self.blocks)

    def to_dict(self) -> dict:
        """Plain types only (for JSON and `torch.load(weights_only=True)`)."""
        d = asdict(self)
        d["blocks"] = [list(b) for b in self.blocks]
        return d


class STGCN(nn.Module):
    """STGCN: ST-Conv blocks, then an output block; predicts `horizon` steps for every node at once.

    STGCN(config, adj): adj (N, N) is the network's adjacency; the matching graph operator
    (`graph_operator`) is kept as a buffer that follows `.to(device)` but is not saved in
    `state_dict` (it is data, rebuilt from the adjacency). forward(x, operator=None):
      x: (batch, input_len, nodes, in_channels), or (batch, input_len, nodes) when in_channels == 1
      -> (batch, horizon, nodes) when out_channels == 1, else (batch, horizon, nodes, out_channels).
    `operator` overrides the stored one (same node count; e.g. to run on a sparse version).
    """

    def __init__(self, config: STGCNConfig, adj: Tensor):
        super().__init__()
        if not isinstance(config, STGCNConfig):
            raise TypeError(f"config must be an STGCNConfig, got {type(config).__name__}")
        if not isinstance(adj, Tensor) or adj.shape != (config.num_nodes, config.num_nodes):
            given = tuple(adj.shape) if isinstance(adj, Tensor) else type(adj).__name__
            raise ValueError(f"adj must have shape ({config.num_nodes}, {config.num_nodes}) to "
                             f"match config.num_nodes, got {given}")
        self.config = c = config
        operator = graph_operator(adj, c.graph_conv, c.sparse, c.graph_operator)
        self.register_buffer("operator", operator, persistent=False)
        channels = c.in_channels
        self.blocks = nn.ModuleList()
        for t_channels, s_channels, out_channels in c.blocks:
            spatial = (ChebGraphConv(t_channels, s_channels, K=c.Ks) if c.graph_conv == "cheb"
                       else GraphConv(t_channels, s_channels))
            self.blocks.append(STConvBlock(
                TemporalGatedConv(channels, t_channels, c.Kt, gate=c.gate),
                spatial,
                TemporalGatedConv(s_channels, out_channels, c.Kt, gate=c.gate),
                norm=self._norm(out_channels),
                dropout=c.dropout,
            ))
            channels = out_channels
        self.output = OutputBlock(channels, c.time_left, c.horizon, c.out_channels,
                                  c.hidden_channels, gate=c.gate, norm=self._norm(channels))

    def _norm(self, channels: int) -> nn.Module | None:
        if self.config.norm == "layer":
            return nn.LayerNorm([self.config.num_nodes, channels])
        if self.config.norm == "batch":
            return _ChannelBatchNorm(channels)
        return None

    def reset_parameters(self) -> None:
        for block in self.blocks:
            block.reset_parameters()
        self.output.reset_parameters()

    def forward(self, x: Tensor, operator: Tensor | None = None) -> Tensor:
        c = self.config
        x = self._as_4d(x)  # (B, input_len, N, in_channels)
        operator = self.operator if operator is None else operator
        h = x
        for block in self.blocks:
            h = block(h, operator)
        out = self.output(h)  # (B, horizon, N, out_channels)
        if c.predict_change:  # add back the last observed step of the target channels
            out = out + x[:, -1:, :, : c.out_channels]
        return out.squeeze(-1) if c.out_channels == 1 else out

    def _as_4d(self, x: Tensor) -> Tensor:
        """x as (batch, input_len, nodes, in_channels) (a channel axis added to 3-d x), checked."""
        c = self.config
        if isinstance(x, Tensor) and x.dim() == 3 and c.in_channels == 1:
            x = x.unsqueeze(-1)
        expected = (c.input_len, c.num_nodes, c.in_channels)
        if not isinstance(x, Tensor) or x.dim() != 4 or tuple(x.shape[1:]) != expected:
            given = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"STGCN expects x of shape (batch, time={c.input_len}, "
                             f"nodes={c.num_nodes}, channels={c.in_channels}), time before nodes "
                             f"(not the notes' (batch, nodes, time, features)), got {given}")
        return x

    def extra_repr(self) -> str:
        c = self.config
        return (f"nodes={c.num_nodes}, input_len={c.input_len} -> horizon={c.horizon}, "
                f"graph_conv={c.graph_conv!r}{'' if c.graph_conv == 'gcn' else f' (Ks={c.Ks})'}, "
                f"Kt={c.Kt}, gate={c.gate!r}, norm={c.norm!r}"
                f"{', predict_change=True' if c.predict_change else ''}, "
                f"parameters={count_parameters(self):,}")


class _ChannelBatchNorm(nn.BatchNorm2d):
    """BatchNorm over the channel axis of (batch, time, nodes, channels) tensors."""

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
